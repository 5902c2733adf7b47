"""Cluster tier (`make test-k8s`, also run by `.ci/run`): a real single-node Kubernetes v1.20.2
built from Debian's source package (scripts/k8s-build.sh) and started by scripts/k8s-cluster.sh.
Not part of `make test`: the first build takes 7-15 minutes (cached outside the repository).

The hub and workspace images are this tree's own, built by `tools.images` (cached by input
hash) and imported into the cluster's containerd; SPE_K8S_HUB_IMAGE / SPE_K8S_WORKSPACE_IMAGE
name prebuilt ones instead."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tools.images import ensure_images, workspace_tag
from tools.images import options_from_environ as image_options
from tests.helm.conftest import helm, tools  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("SPE_K8S_RUN", "/tmp/spe-k8s"))


@pytest.fixture(scope="session")
def cluster(tools):  # noqa: F811
    """KUBECONFIG of a running cluster; started here (and stopped) unless already up."""
    built = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-build.sh")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    up = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-cluster.sh"), "up"], capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    started_here = "already up" not in up.stderr
    kubeconfig = RUN / "admin.kubeconfig"
    yield kubeconfig
    if started_here and not os.environ.get("SPE_K8S_KEEP"):
        subprocess.run(["bash", str(ROOT / "scripts" / "k8s-cluster.sh"), "down"], capture_output=True, text=True)


def import_image(image: str) -> None:
    """Copy a local Docker image into the cluster's containerd (pods use imagePullPolicy Never);
    skipped when containerd already holds that tag (tags are input hashes)."""
    sock = str(RUN / "containerd" / "containerd.sock")
    have = subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "ls", "-q"],
                          capture_output=True, text=True, check=True).stdout.split()
    if f"docker.io/{image}" in have or image in have:
        return
    assert subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0, \
        f"image {image} is not in the local Docker engine"
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:  # closes the pipe
        out = subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "import", "-"],
                             stdin=save.stdout, capture_output=True, text=True)
        save.wait()
    assert out.returncode == 0 and save.returncode == 0, out.stderr


@pytest.fixture(scope="session")
def images(cluster) -> dict[str, str]:
    """{"hub": tag, "workspace": tag} of this tree's images, present in the cluster."""
    hub, ws = os.environ.get("SPE_K8S_HUB_IMAGE"), os.environ.get("SPE_K8S_WORKSPACE_IMAGE")
    if not (hub and ws):
        options = image_options()
        built = ensure_images(verbose=True, options=options, hub=True)
        hub = hub or workspace_tag(built, options.hub_repo)
        ws = ws or workspace_tag(built, options.workspace_repo)
    for image in (hub, ws):
        import_image(image)
    return {"hub": hub, "workspace": ws}


def kubectl(tools, kubeconfig, *args, check=True, stdin=None):  # noqa: F811
    out = subprocess.run([str(tools / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                         capture_output=True, text=True, input=stdin)
    if check:
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out


@pytest.fixture
def namespace(tools, cluster):  # noqa: F811
    ns = f"spe-t-{uuid.uuid4().hex[:8]}"
    kubectl(tools, cluster, "create", "namespace", ns)
    yield ns
    # gone before the next test makes its volumes: a claim left pending here (the chart keeps
    # evidence PVCs) would otherwise bind the next test's static PVs
    kubectl(tools, cluster, "delete", "namespace", ns, "--wait=true", "--timeout=180s", check=False)


def make_volumes(tools, kubeconfig, namespace: str, count: int = 8) -> list[str]:  # noqa: F811
    """Static hostPath PVs for `namespace` (the test cluster has no provisioner), owned by uid 1000."""
    names = []
    for i in range(count):
        path = RUN / "pv" / namespace / str(i)
        path.mkdir(parents=True)
        os.chown(path, 1000, 1000)
        # the kubelet makes a missing subPath directory (the inflow volume's mirror/, imports/)
        # as root with the volume root's mode: setgid and group-writable, so uid/gid 1000 can write it
        path.chmod(0o2775)
        name = f"{namespace}-pv{i}"
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
              "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                       "storageClassName": "local-path", "persistentVolumeReclaimPolicy": "Delete",
                       "hostPath": {"path": str(path), "type": "Directory"}}}
        kubectl(tools, kubeconfig, "apply", "-f", "-", stdin=json.dumps(pv))
        names.append(name)
    return names


@pytest.fixture
def volumes(tools, cluster, namespace):  # noqa: F811
    names = make_volumes(tools, cluster, namespace)
    yield names
    for name in names:
        kubectl(tools, cluster, "delete", "pv", name, "--wait=false", check=False)


def khelm(tools, kubeconfig, *args, check=True):  # noqa: F811
    return helm(tools, "--kubeconfig", str(kubeconfig), *args, check=check)
