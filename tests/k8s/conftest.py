"""Cluster tier (`make test-k8s`): a real single-node Kubernetes v1.20.2 built from Debian's
source package (scripts/k8s-build.sh) and started by scripts/k8s-cluster.sh. Not part of
`make test`: the first build takes 7-15 minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helm.conftest import helm, tools  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("SPE_K8S_RUN", "/tmp/spe-k8s"))


@pytest.fixture(scope="session")
def cluster(tools):  # noqa: F811
    """KUBECONFIG of a running cluster; started here (and stopped) unless already up."""
    built = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-build.sh")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    started_here = not (RUN / "pid" / "apiserver").exists()
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    up = subprocess.run(["bash", str(ROOT / "scripts" / "k8s-cluster.sh"), "up"], capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    kubeconfig = RUN / "admin.kubeconfig"
    yield kubeconfig
    if started_here and not os.environ.get("SPE_K8S_KEEP"):
        subprocess.run(["bash", str(ROOT / "scripts" / "k8s-cluster.sh"), "down"], capture_output=True, text=True)


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
    kubectl(tools, cluster, "delete", "namespace", ns, "--wait=false", check=False)


def khelm(tools, kubeconfig, *args, check=True):  # noqa: F811
    return helm(tools, "--kubeconfig", str(kubeconfig), *args, check=check)


@pytest.fixture
def volumes(tools, cluster, namespace):
    """Static hostPath PVs (the test cluster has no provisioner), owned by uid 1000."""
    names = []
    for i in range(8):
        path = RUN / "pv" / namespace / str(i)
        path.mkdir(parents=True)
        os.chown(path, 1000, 1000)
        name = f"{namespace}-pv{i}"
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
              "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                       "storageClassName": "local-path", "persistentVolumeReclaimPolicy": "Delete",
                       "hostPath": {"path": str(path), "type": "Directory"}}}
        kubectl(tools, cluster, "apply", "-f", "-", stdin=json.dumps(pv))
        names.append(name)
    yield
    for name in names:
        kubectl(tools, cluster, "delete", "pv", name, "--wait=false", check=False)
