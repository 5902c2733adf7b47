"""The NetworkPolicy self-check: the probe pod, its script run for real against loopback
listeners, and the verdict read from a pod status."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from hub.metrics import Fold, WorkspaceGroup
from hub.spawner.netpolcheck import (ENFORCED, NOT_ENFORCED, PROBE_LABEL, PROBE_SCRIPT, UNKNOWN, make_probe_pod,
                                     verdict_of)

LABELS = {"spe.io/role": "workspace", "spe.io/release": "spe"}


def probe_pod():
    return make_probe_pod(name="spe-netpol-probe-1", namespace="spe", image="spe/workspace:abc", pull_policy="Never",
                          workspace_labels=LABELS, allowed=("10.0.0.5", 8081), denied=("10.254.0.1", 443))


def test_before_kubernetes_1_19_the_probe_pod_has_seccomp_by_annotation():
    modern, old = probe_pod(), make_probe_pod(
        name="p", namespace="spe", image="i", pull_policy="Never", workspace_labels=LABELS,
        allowed=("10.0.0.5", 8081), denied=("10.254.0.1", 443), seccomp=False)
    assert modern["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "annotations" not in modern["metadata"]
    assert "seccompProfile" not in old["spec"]["securityContext"]
    assert "seccompProfile" not in old["spec"]["containers"][0]["securityContext"]
    assert old["metadata"]["annotations"] == {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}


def test_probe_pod_is_selected_by_the_workspace_policy_but_has_no_lock():
    pod = probe_pod()
    assert LABELS.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"][PROBE_LABEL] == "networkpolicy"
    spec = pod["spec"]
    assert "initContainers" not in spec  # without the netlock: only the policy can block it
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] > 0
    (probe,) = spec["containers"]
    sc = probe["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert probe["command"][3:] == ["10.0.0.5", "8081", "10.254.0.1", "443", "/dev/termination-log"]
    assert "volumes" not in spec


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: a connection is refused
    return port


def run_probe(tmp_path, allowed_port, denied_port):
    out = tmp_path / "termination-log"
    done = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, "127.0.0.1",
                           str(allowed_port), "127.0.0.1", str(denied_port), str(out)], timeout=120)
    return done.returncode, json.loads(out.read_text())


def test_probe_script_reports_a_blocked_denied_endpoint_as_enforced(tmp_path, listener):
    code, message = run_probe(tmp_path, listener, closed_port())
    assert code == 0 and message == {"allowed": "open", "denied": "ConnectionRefusedError"}
    status = {"phase": "Succeeded", "containerStatuses": [
        {"state": {"terminated": {"exitCode": code, "message": json.dumps(message)}}}]}
    assert verdict_of(status).result == ENFORCED


def test_probe_script_reports_an_open_denied_endpoint_as_not_enforced(tmp_path, listener):
    code, message = run_probe(tmp_path, listener, listener)
    assert code == 2 and message == {"allowed": "open", "denied": "open"}
    status = {"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"exitCode": code, "message": json.dumps(message)}}}]}
    verdict = verdict_of(status)
    assert verdict.result == NOT_ENFORCED and "NOT enforced" in verdict.message


def test_verdict_waits_while_the_probe_runs_and_is_unknown_when_it_cannot():
    assert verdict_of(None) is None
    assert verdict_of({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}) is None
    assert verdict_of({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}) is None
    pull = verdict_of({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]})
    assert pull.result == UNKNOWN and "ErrImagePull" in pull.message
    no_hub = verdict_of({"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"exitCode": 3, "message": '{"allowed": "TimeoutError", "denied": "not tried"}'}}}]})
    assert no_hub.result == UNKNOWN and "could not reach the hub" in no_hub.message
    oom = verdict_of({"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})
    assert oom.result == UNKNOWN and "OOMKilled" in oom.reason
    # snake_case, as kubernetes_asyncio's models serialise before sanitising
    snake = verdict_of({"phase": "Succeeded", "container_statuses": [{"state": {"terminated": {"exit_code": 2}}}]})
    assert snake.result == NOT_ENFORCED


def test_the_last_check_becomes_the_metric():
    group = WorkspaceGroup()
    fold = Fold([group])
    assert group.networkpolicy is None
    for seq, result in enumerate(["unknown", "not-enforced"], start=1):
        fold.apply({"seq": seq, "action": "kube.networkpolicy_check", "outcome": "ok", "actor": "hub",
                    "detail": json.dumps({"result": result}), "ts": "2026-11-23T10:00:00Z"})
    assert group.networkpolicy == "not-enforced"
