"""The chart against a real Kubernetes v1.20.2 API server."""

from __future__ import annotations

import json

import pytest

from tests.helm.conftest import CHART, CI_DIR, render_text
from tests.k8s.conftest import khelm, kubectl

pytestmark = pytest.mark.k8s


def test_server_side_dry_run_accepts_the_chart(tools, cluster, namespace):
    manifest = render_text(tools, CI_DIR / "kube-1.20-values.yaml", "--namespace", namespace)
    out = kubectl(tools, cluster, "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifest)
    assert "deployment.apps/spe-hub created (server dry run)" in out.stdout


def test_install_upgrade_uninstall(tools, cluster, namespace):
    khelm(tools, cluster, "install", "spe", str(CHART), "-n", namespace, "-f", str(CI_DIR / "sqlite-pvc-values.yaml"))
    deps = json.loads(kubectl(tools, cluster, "-n", namespace, "get", "deploy", "-o", "json").stdout)
    assert sorted(d["metadata"]["name"] for d in deps["items"]) == ["spe-egress", "spe-hub", "spe-mirror", "spe-proxy",
                                                                    "spe-recorder"]
    assert not kubectl(tools, cluster, "-n", namespace, "get", "pdb", "-o", "name").stdout.strip()
    # the real 1.20 API has no policy/v1: the chart must pick v1beta1 by itself
    khelm(tools, cluster, "upgrade", "spe", str(CHART), "-n", namespace, "-f", str(CI_DIR / "sqlite-pvc-values.yaml"),
          "--set", "hub.pdb.enabled=true")
    pdb = json.loads(kubectl(tools, cluster, "-n", namespace, "get", "pdb", "spe-hub", "-o", "json").stdout)
    assert pdb["apiVersion"] == "policy/v1beta1"
    status = khelm(tools, cluster, "status", "spe", "-n", namespace, "-o", "json")
    assert json.loads(status.stdout)["version"] == 2
    khelm(tools, cluster, "uninstall", "spe", "-n", namespace)
    assert not kubectl(tools, cluster, "-n", namespace, "get", "deploy", "-o", "name").stdout.strip()
    # evidence outlives the release: extracts, registry state, egress store, keys
    pvcs = kubectl(tools, cluster, "-n", namespace, "get", "pvc", "-o", "name").stdout.split()
    assert sorted(pvcs) == ["persistentvolumeclaim/spe-egress-store", "persistentvolumeclaim/spe-extracts",
                            "persistentvolumeclaim/spe-inflow", "persistentvolumeclaim/spe-keys",
                            "persistentvolumeclaim/spe-state"]


def test_bad_values_fail_at_install_with_schema_message(tools, cluster, namespace, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workspace:\n  networkPolicy: {allowDNS: maybe, egressAnywhere: true}\n")
    out = khelm(tools, cluster, "install", "spe", str(CHART), "-n", namespace, "-f", str(bad), check=False)
    assert out.returncode != 0
    assert "Additional property egressAnywhere is not allowed" in out.stderr
    assert "workspace.networkPolicy.allowDNS: Invalid type. Expected: boolean" in out.stderr
    assert not kubectl(tools, cluster, "-n", namespace, "get", "all", "-o", "name").stdout.strip()


def can_i(tools, cluster, namespace, *args):
    out = kubectl(tools, cluster, "auth", "can-i", *args, "--as", f"system:serviceaccount:{namespace}:spe-hub", check=False)
    return out.stdout.strip()


def test_hub_service_account_manages_pods_only_in_its_namespace(tools, cluster, namespace):
    khelm(tools, cluster, "install", "spe", str(CHART), "-n", namespace, "-f", str(CI_DIR / "kube-1.20-values.yaml"))
    assert can_i(tools, cluster, namespace, "create", "pods", "-n", namespace) == "yes"
    assert can_i(tools, cluster, namespace, "delete", "persistentvolumeclaims", "-n", namespace) == "yes"
    assert can_i(tools, cluster, namespace, "create", "jobs.batch", "-n", namespace) == "yes"
    assert can_i(tools, cluster, namespace, "create", "pods", "-n", "default") == "no"
    assert can_i(tools, cluster, namespace, "list", "pods", "--all-namespaces") == "no"
    assert can_i(tools, cluster, namespace, "get", "secrets", "-n", namespace) == "no"
    # `pods/exec` would be read as the resource "pods"; a subresource must be named as such
    assert can_i(tools, cluster, namespace, "create", "pods", "--subresource=exec", "-n", namespace) == "no"
    assert can_i(tools, cluster, namespace, "patch", "pods", "-n", namespace) == "no"
    assert can_i(tools, cluster, namespace, "create", "rolebindings", "-n", namespace) == "no"
    assert can_i(tools, cluster, namespace, "create", "networkpolicies", "-n", namespace) == "no"
    khelm(tools, cluster, "uninstall", "spe", "-n", namespace)
