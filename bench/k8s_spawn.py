"""Spawn-to-ready latency on a real Kubernetes cluster: PermitKubeSpawner vs a plain KubeSpawner.

`python -m bench.k8s_spawn [--rounds N] [--full]`: on the single-node Kubernetes v1.20.2 of
`make test-k8s` (built and started if needed, cached outside the repository), installs the
chart four times in turn, in fresh namespaces, with this tree's hub and workspace images:

* `permit`: the chart as shipped (PermitKubeSpawner: registry lookups, the permit's extract
  read-only, a per-(permit, user) work PVC, the netlock init container);
* `plain`: the same chart and image with `hub.config.JupyterHub.spawner_class` set to
  `kubespawner.KubeSpawner` and the same resource limits (no permit, no PVC, no init container);
  the goal is judged against this one;
* `plain_storage` (information): `plain` plus KubeSpawner's own per-user PVC mounted at the
  work directory, as zero-to-jupyterhub sets up by default: a pod with any volume waits for
  the kubelet's volume check (0.3 s steps), which the permit pod cannot avoid either;
* `z2jh_default` (information): `plain_storage` plus the init container zero-to-jupyterhub
  adds by default (`singleuser.cloudMetadata.blockWithIptables: true`): NET_ADMIN, one
  iptables rule dropping the cloud metadata address. That is the pod a z2jh site runs today,
  and it pays the same kubelet costs as the permit pod's netlock (see docs/benchmarks.md).

All stay installed while it measures, through each hub's REST API, the time from `POST
/users/bob/servers/<name>` to the server being ready, taking the variants in turn
(one at a time; the server is stopped and its pod gone before the next), so that a change in the
machine's load falls on all alike. The first spawn of each is reported apart (it binds the
work PVC and may unpack the image on the node). Reports p50/p95 and the ratio permit/plain of the p50 (goal ≤ 1.2). JSON to
stdout and bench/results/k8s_spawn.json.

The cluster plumbing (images into containerd, kubectl, helm, static volumes) is the cluster
test tier's own (tests/k8s), reused so that the benchmark measures exactly what the tests check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import yaml

from bench.common import percentile, write_report
from tools.images import ensure_images, workspace_tag
from tools.images import options_from_environ as image_options
from tests.conftest import EXAMPLES
from tests.helm.conftest import CHART, ROOT
from tests.k8s.conftest import RUN, import_image, khelm, kubectl, make_volumes
from tests.k8s.test_workspace_on_cluster import PERMIT, SERVER, TOKEN, values_file, wait

SCRIPTS = ROOT / "scripts"


def say(message: str) -> None:
    print(f"k8s_spawn: {message}", file=sys.stderr, flush=True)


def cluster_up() -> tuple[Path, Path, bool]:
    """(tools dir, kubeconfig, started here): build (cached), fetch tools, start the cluster."""
    tools = Path(subprocess.run(["bash", str(SCRIPTS / "k8s-tools.sh")], capture_output=True, text=True,
                                check=True, env={**os.environ, "PYTHON": sys.executable}).stdout.split()[-1])
    say("building Kubernetes v1.20.2 if not cached (first time 7-15 min)")
    subprocess.run(["bash", str(SCRIPTS / "k8s-build.sh")], check=True, stdout=subprocess.DEVNULL)
    started = not (RUN / "pid" / "apiserver").exists()
    subprocess.run(["bash", str(SCRIPTS / "k8s-cluster.sh"), "up"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"})
    return tools, RUN / "admin.kubeconfig", started


def install(tools, kubeconfig, namespace: str, images: dict, variant: str, tmp: Path) -> str:
    """Install the chart for `variant`; return the hub API URL (through the proxy's ClusterIP)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = values_file(tmp, images)
    if variant != "permit":
        values = yaml.safe_load(path.read_text())
        config = values["hub"]["config"]
        config["JupyterHub"]["spawner_class"] = "kubespawner.KubeSpawner"
        # the same image, user and limits as the permit workspace (demo permit: 2G, 1 CPU)
        config["KubeSpawner"].update({"cmd": ["jupyterhub-singleuser"], "mem_limit": "2G", "mem_guarantee": "2G",
                                      "cpu_limit": 1.0, "cpu_guarantee": 0.1})
        if variant in ("plain_storage", "z2jh_default"):
            # KubeSpawner's own per-user PVC at the work directory, as zero-to-jupyterhub sets
            # up by default (the kubelet waits for a pod's volumes in 0.3 s steps)
            config["KubeSpawner"].update({
                "storage_pvc_ensure": True, "storage_class": "local-path", "storage_capacity": "1Gi",
                "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "claim-{user_server}"}}],
                "volume_mounts": [{"name": "work", "mountPath": "/home/jovyan/work"}]})
        if variant == "z2jh_default":
            # z2jh's block-cloud-metadata init container, on the image the permit pod's netlock uses
            config["KubeSpawner"]["init_containers"] = [{
                "name": "block-cloud-metadata", "image": images["hub"], "imagePullPolicy": "Never",
                "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination",
                            "169.254.169.254", "--destination-port", "80", "--jump", "DROP"],
                "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}}]
        path.write_text(yaml.safe_dump(values))
    khelm(tools, kubeconfig, "install", "spe", str(CHART), "-n", namespace, "-f", str(path))
    for dep in ("spe-hub", "spe-proxy", "spe-recorder"):  # every workspace is reached through the recorder
        kubectl(tools, kubeconfig, "-n", namespace, "rollout", "status", f"deploy/{dep}", "--timeout=300s")
    if variant == "permit":
        def hub_exec(*cmd, stdin=None):
            return kubectl(tools, kubeconfig, "-n", namespace, "exec", "-i", "deploy/spe-hub", "--", *cmd, stdin=stdin)

        hub_exec("spe", "dataset", "add-example")
        hub_exec("sh", "-c", "cat > /tmp/permit.yaml", stdin=(EXAMPLES / "demo-gibleed.yaml").read_text())
        hub_exec("spe", "permit", "apply", "/tmp/permit.yaml")
        hub_exec("spe", "permit", "provision", PERMIT)
    proxy_ip = kubectl(tools, kubeconfig, "-n", namespace, "get", "svc", "spe-proxy", "-o",
                       "jsonpath={.spec.clusterIP}").stdout
    return f"http://{proxy_ip}/hub/api"


def spawn_once(api: str, tools, kubeconfig, namespace: str) -> float:
    """Seconds from the start request to `ready`; then stop it and wait for the pod to go."""
    auth = {"Authorization": f"token {TOKEN}"}
    started = time.monotonic()
    r = requests.post(f"{api}/users/bob/servers/{SERVER}", headers=auth, timeout=120)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"{namespace}: spawn refused: {r.status_code} {r.text[:300]}")
    while True:
        server = requests.get(f"{api}/users/bob", headers=auth, timeout=30).json().get("servers", {}).get(SERVER)
        if server and server.get("ready"):
            break
        if server is None and time.monotonic() - started > 5:
            raise RuntimeError(f"{namespace}: spawn failed (the server is gone; see the hub log)")
        if time.monotonic() - started > 600:
            raise RuntimeError(f"{namespace}: spawn not ready after 600 s")
        time.sleep(0.1)
    seconds = time.monotonic() - started
    requests.delete(f"{api}/users/bob/servers/{SERVER}", headers=auth, timeout=120)
    wait("server stopped", 300, lambda: SERVER not in requests.get(
        f"{api}/users/bob", headers=auth, timeout=30).json().get("servers", {}))
    wait("workspace pod gone", 300, lambda: not kubectl(
        tools, kubeconfig, "-n", namespace, "get", "pods", "-l", "component=singleuser-server",
        "-o", "name", check=False).stdout.strip())
    return seconds


def summary(seconds: list[float]) -> dict:
    first, rest = seconds[0], seconds[1:]
    return {"first_spawn_seconds": round(first, 3), "rounds": len(rest), "seconds": [round(s, 3) for s in rest],
            "p50_seconds": round(statistics.median(rest), 3), "p95_seconds": round(percentile(rest, 95), 3)}


def measure(rounds: int, tools, kubeconfig, images: dict) -> dict:
    variants = ("permit", "plain", "plain_storage", "z2jh_default")
    namespaces = {v: f"spe-bench-{v.replace('_', '-')}-{uuid.uuid4().hex[:6]}" for v in variants}
    pvs: list[str] = []
    try:
        apis = {}
        with tempfile.TemporaryDirectory() as tmp:
            for variant, namespace in namespaces.items():
                kubectl(tools, kubeconfig, "create", "namespace", namespace)
                pvs += make_volumes(tools, kubeconfig, namespace)
                say(f"{variant}: installing the chart in {namespace}")
                apis[variant] = install(tools, kubeconfig, namespace, images, variant, Path(tmp) / variant)
        auth = {"Authorization": f"token {TOKEN}"}
        for api in apis.values():
            requests.post(f"{api}/users/bob", headers=auth, timeout=30)
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        for i in range(rounds + 1):
            for variant in variants:
                seconds[variant].append(spawn_once(apis[variant], tools, kubeconfig, namespaces[variant]))
            say(f"  round {i + 1}/{rounds + 1}: " + ", ".join(f"{v} {seconds[v][-1]:.2f} s" for v in variants))
    finally:
        for namespace in namespaces.values():
            khelm(tools, kubeconfig, "uninstall", "spe", "-n", namespace, check=False)
            kubectl(tools, kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
        for pv in pvs:
            kubectl(tools, kubeconfig, "delete", "pv", pv, "--wait=false", check=False)
    return {v: summary(seconds[v]) for v in variants}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.k8s_spawn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured spawns per spawner (after a first one)")
    parser.add_argument("--full", action="store_true", help="15 rounds")
    args = parser.parse_args(argv)
    rounds = 15 if args.full else args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    tools, kubeconfig, started = cluster_up()
    try:
        options = image_options()
        built = ensure_images(verbose=True, options=options, hub=True)
        images = {"hub": workspace_tag(built, options.hub_repo), "workspace": workspace_tag(built, options.workspace_repo)}
        for image in images.values():
            import_image(image)
        results = measure(rounds, tools, kubeconfig, images)
    finally:
        if started and not os.environ.get("SPE_K8S_KEEP"):
            subprocess.run(["bash", str(SCRIPTS / "k8s-cluster.sh"), "down"], capture_output=True)
    ratio = results["permit"]["p50_seconds"] / results["plain"]["p50_seconds"]
    ratio_storage = results["permit"]["p50_seconds"] / results["plain_storage"]["p50_seconds"]
    ratio_z2jh = results["permit"]["p50_seconds"] / results["z2jh_default"]["p50_seconds"]
    write_report("k8s_spawn", {
        "cluster": "single-node Kubernetes v1.20.2 (scripts/k8s-cluster.sh), containerd, CNI bridge",
        "images": images, "permit": results["permit"], "plain_kubespawner": results["plain"],
        "plain_kubespawner_with_work_pvc": results["plain_storage"],
        "ratio_p50_vs_plain_with_work_pvc": round(ratio_storage, 3),
        "z2jh_default_kubespawner": results["z2jh_default"],
        "ratio_p50_vs_z2jh_default": round(ratio_z2jh, 3),
        "ratio_p50": round(ratio, 3), "goal_ratio_p50": 1.2, "goal_met": ratio <= 1.2,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
