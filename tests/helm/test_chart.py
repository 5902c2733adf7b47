"""The Helm chart: lint, render, schema, and what the rendered manifests promise."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml
from traitlets.config import Config

from hub.audit.tables import audit_events
from hub.db import make_engine
from hub.exceptions import InvalidInput
from hub.hubapp.config import CUSTOM_SCOPES, SERVER_TOKEN_SCOPES
from hub.hubapp.config_docker import configure_docker
from hub.hubapp.config_kube import kube_settings
from hub.hubapp.options import settings_from
from hub.identity import local_operator
from hub.settings import Settings

from tests.hubconfig_support import assert_backends_agree, assert_keeps_shared, services
from tests.helm.conftest import (CHART, CI_DIR, CI_FILES, KUBE_VERSIONS, NAMESPACE, RELEASE, ROOT, find,
                                 helm, pod_specs, render)

MODERN = [f for f in CI_FILES if f not in KUBE_VERSIONS]


def test_ci_values_files_exist():
    assert {"default-values.yaml", "postgres-values.yaml", "sqlite-pvc-values.yaml",
            "kube-1.20-values.yaml"} <= set(CI_FILES)


def test_schema_json_is_generated_from_yaml():
    out = subprocess.run([sys.executable, str(ROOT / "helm" / "tools" / "gen-schema.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_schema_closes_every_object_and_describes_every_key():
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    missing, open_objects = [], []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if "$ref" not in node and "description" not in node:
            missing.append(path or "<root>")
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{path}.{key}" if path else key)
        for key, sub in (node.get("definitions") or {}).items():
            walk(sub, f"#{key}")

    walk(schema, "")
    assert missing == [] and open_objects == []
    # every default in values.yaml is covered by the schema (helm validates the merged values)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


@pytest.mark.parametrize("values_file", CI_FILES)
def test_lint_strict(tools, values_file):
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(CI_DIR / values_file)]
    if values_file in KUBE_VERSIONS:
        args += ["--kube-version", KUBE_VERSIONS[values_file]]
    out = helm(tools, *args)
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values_file", MODERN)
@pytest.mark.parametrize("kube_version", ["1.25.0", kubernetes_validate.latest_version()])
def test_rendered_manifests_validate_strictly(rendered, values_file, kube_version):
    docs = rendered[values_file]
    assert len(docs) >= 15
    for doc in docs:
        # raises ValidationError naming the resource and the offending field
        kubernetes_validate.validate(doc, kube_version, strict=True)


def test_kube_1_20_uses_apis_it_has(rendered):
    docs = rendered["kube-1.20-values.yaml"]
    (pdb,) = find(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1beta1"
    (pdb_new,) = find(rendered["postgres-values.yaml"], "PodDisruptionBudget")
    assert pdb_new["apiVersion"] == "policy/v1"
    for doc in docs:
        assert doc["apiVersion"] in {"v1", "apps/v1", "policy/v1beta1", "networking.k8s.io/v1",
                                     "rbac.authorization.k8s.io/v1"}, doc["apiVersion"]
    # seccomp is a securityContext field from 1.19; before it, an annotation
    for _, _, spec in pod_specs(docs):
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_kube_1_18_gets_seccomp_annotation(tools):
    docs = render(tools, "default-values.yaml", "--kube-version", "1.18.0")
    for name, meta, spec in pod_specs(docs):
        assert meta["annotations"]["seccomp.security.alpha.kubernetes.io/pod"] == "runtime/default", name
        assert "seccompProfile" not in spec["securityContext"], name
    # and the hub is told, so that its workspace pods carry the annotation too
    for version, field in (("1.18.0", False), ("1.20.2", True)):
        docs = render(tools, "default-values.yaml", "--kube-version", version)
        (secret,) = find(docs, "Secret", f"{RELEASE}-hub")
        hub_values = yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))
        assert hub_values["workspace"]["seccompField"] is field, version


@pytest.mark.parametrize("values_file", CI_FILES)
def test_every_pod_is_restricted(rendered, values_file):
    workloads = pod_specs(rendered[values_file])
    assert sorted(n for n, _, _ in workloads) == [f"{RELEASE}-egress", f"{RELEASE}-hub", f"{RELEASE}-mirror",
                                                  f"{RELEASE}-proxy", f"{RELEASE}-recorder"]
    for name, _, spec in workloads:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 1000, name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, (name, c["name"])
            assert c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"], (name, c["name"])
            assert not c["image"].endswith(":latest"), (name, c["image"])
        # only the hub gets a service-account token (it spawns pods)
        assert spec["automountServiceAccountToken"] is (name == f"{RELEASE}-hub"), name


def test_image_pull_policy_configurable(rendered):
    for _, _, spec in pod_specs(rendered["sqlite-pvc-values.yaml"]):
        assert {c["imagePullPolicy"] for c in spec["containers"]} == {"Never"}
    for _, _, spec in pod_specs(rendered["default-values.yaml"]):
        assert {c["imagePullPolicy"] for c in spec["containers"]} == {"IfNotPresent"}


def _netpol(docs, name):
    (pol,) = find(docs, "NetworkPolicy", name)
    return pol["spec"]


def test_workspace_egress_denied_except_hub_egress_and_mirror(rendered):
    spec = _netpol(rendered["default-values.yaml"], f"{RELEASE}-workspace")
    assert spec["podSelector"]["matchLabels"] == {"spe.io/role": "workspace", "spe.io/release": RELEASE}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    targets = []
    for rule in spec["egress"]:
        (peer,) = rule["to"]
        assert set(peer) == {"podSelector"}, rule  # no ipBlock, no namespaceSelector: nothing outside
        targets.append((peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
                        [p["port"] for p in rule["ports"]]))
    assert targets == [("hub", [8081]), ("egress", [8090]), ("mirror", [8110])]
    # ingress to the notebook port only from the session recorder (browsers) and the hub (its checks)
    (ing,) = spec["ingress"]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in ing["from"]] == ["recorder", "hub"]
    assert ing["ports"] == [{"port": 8888, "protocol": "TCP"}]


def _peers(rules, key):
    """{component: ports} of NetworkPolicy rules (pod peers only)."""
    out = {}
    for rule in rules:
        for peer in rule.get(key, []):
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            comp = labels.get("app.kubernetes.io/component") or labels.get("spe.io/role")
            if comp:
                out.setdefault(comp, set()).update(p["port"] for p in rule["ports"])
    return out


def test_browsers_reach_workspaces_only_through_the_session_recorder(rendered):
    """proxy -> recorder -> workspace: the proxy has no way to a workspace but the recorder, the
    recorder none but to workspaces; it runs in its own pod (a hub restart does not stop it)."""
    for name, docs in rendered.items():
        proxy = _netpol(docs, f"{RELEASE}-proxy")
        assert "workspace" not in _peers(proxy["egress"], "to"), name
        assert _peers(proxy["egress"], "to")["recorder"] == {8765}
        rec = _netpol(docs, f"{RELEASE}-recorder")
        assert rec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "recorder"
        assert _peers(rec["ingress"], "from") == {"proxy": {8765}, "hub": {8765}}
        assert _peers(rec["egress"], "to") == {"workspace": {8888}}
        (svc,) = find(docs, "Service", f"{RELEASE}-recorder")
        assert svc["spec"]["ports"] == [{"name": "http", "port": 8765, "targetPort": "http"}]
        specs = {n: s for n, _, s in pod_specs(docs)}
        (c,) = specs[f"{RELEASE}-recorder"]["containers"]
        assert c["command"][:3] == ["python3", "-m", "hub.sessionlog.proxy"]
        env = {e["name"]: e for e in c["env"]}
        hub_env = {e["name"]: e for e in specs[f"{RELEASE}-hub"]["containers"][0]["env"]}
        assert env["SPE_DB_URL"] == hub_env["SPE_DB_URL"]  # the hub's registry: routes and the audit trail
        assert not any(v.get("secret") for v in specs[f"{RELEASE}-recorder"]["volumes"])  # no keys
        hub_values = yaml.safe_load(base64.b64decode(find(docs, "Secret", f"{RELEASE}-hub")[0]["data"]["values.yaml"]))
        assert hub_values["names"]["recorder"] == f"{RELEASE}-recorder"


def test_only_the_proxy_reaches_the_hub_pods_web_services(rendered):
    """The front office (8120) and the citizens' service (8130) run in the hub pod; the proxy may
    reach them, a workspace only the hub API (8081)."""
    for name, docs in rendered.items():
        hub = _peers(_netpol(docs, f"{RELEASE}-hub")["ingress"], "from")
        assert hub["proxy"] == {8081, 8120, 8130} and hub["workspace"] == {8081}, name
        assert {8120, 8130} <= _peers(_netpol(docs, f"{RELEASE}-proxy")["egress"], "to")["hub"], name
        specs = {n: s for n, _, s in pod_specs(docs)}
        ports = {p["name"]: p["containerPort"] for p in specs[f"{RELEASE}-hub"]["containers"][0]["ports"]}
        assert (ports["frontoffice"], ports["citizens"]) == (8120, 8130), name


def test_workspace_dns_only_when_allowed(rendered):
    spec = _netpol(rendered["postgres-values.yaml"], f"{RELEASE}-workspace")
    dns = [r for r in spec["egress"] if any(p["port"] == 53 for p in r["ports"])]
    assert len(dns) == 1
    assert dns[0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_each_component_has_its_own_network_policy(rendered):
    names = {d["metadata"]["name"] for d in find(rendered["default-values.yaml"], "NetworkPolicy")}
    assert names == {f"{RELEASE}-{c}" for c in ("hub", "proxy", "egress", "workspace", "provision", "mirror",
                                                "recorder")}
    for f in CHART.joinpath("templates").iterdir():
        if f.is_dir():
            assert (f / "netpol.yaml").is_file(), f.name


def test_the_mirror_serves_the_inflow_volume_read_only_and_calls_nobody(rendered):
    docs = rendered["default-values.yaml"]
    specs = {n: s for n, _, s in pod_specs(docs)}
    inflow = f"{RELEASE}-inflow"
    by_pod = {name: [(m, vol) for m, vol in _mounts(spec)
                     if vol.get("persistentVolumeClaim", {}).get("claimName") == inflow] for name, spec in specs.items()}
    # egress writes imports/ and mirror/; the mirror reads mirror/ only; nobody else mounts it
    assert {m["subPath"]: m.get("readOnly", False) for m, _ in by_pod[f"{RELEASE}-egress"]} == {
        "imports": False, "mirror": False}
    ((mount, vol),) = by_pod[f"{RELEASE}-mirror"]
    assert mount["subPath"] == "mirror" and mount["readOnly"] is True and vol["persistentVolumeClaim"]["readOnly"]
    assert not by_pod[f"{RELEASE}-hub"] and not by_pod[f"{RELEASE}-proxy"]
    mirror = specs[f"{RELEASE}-mirror"]["containers"][0]
    assert mirror["command"][:3] == ["python3", "-m", "hub.mirror.serve"] and "8110" in mirror["command"]
    spec = _netpol(docs, f"{RELEASE}-mirror")
    assert spec["egress"] == [] and set(spec["policyTypes"]) == {"Ingress", "Egress"}  # it calls nobody
    (ing,) = spec["ingress"]
    assert ing["from"] == [{"podSelector": {"matchLabels": {"spe.io/role": "workspace", "spe.io/release": RELEASE}}}]
    (svc,) = find(docs, "Service", f"{RELEASE}-mirror")
    assert svc["spec"]["ports"][0]["port"] == 8110


def test_the_hub_gives_workspaces_the_mirror_and_their_imports(rendered, tmp_path, monkeypatch):
    from hub.hubapp.config_kube import configure_kube

    (secret,) = find(rendered["default-values.yaml"], "Secret", f"{RELEASE}-hub")
    values = yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))
    c = Config()
    configure_kube(c, values, Settings(home=tmp_path, db_url=f"sqlite:///{tmp_path / 'r.db'}"),
                   proxy_token="p", egress_api_token="e")
    assert c.PermitKubeSpawner.mirror_service == f"{RELEASE}-mirror:8110"
    assert c.PermitKubeSpawner.inflow_claim == f"{RELEASE}-inflow"


def _mounts(spec):
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    return [(m, vols[m["name"]]) for c in spec["containers"] for m in c.get("volumeMounts", [])]


def _is_keys(vol):
    return (vol.get("secret", {}).get("secretName") in (f"{RELEASE}-keys", "spe-operator-keys")
            or vol.get("persistentVolumeClaim", {}).get("claimName") == f"{RELEASE}-keys")


@pytest.mark.parametrize("values_file", CI_FILES)
def test_extracts_and_keys_mounts(rendered, values_file):
    docs = rendered[values_file]
    keys_in_pvc = values_file == "sqlite-pvc-values.yaml"
    specs = {n: s for n, _, s in pod_specs(docs)}
    keys_users = set()
    for name, spec in specs.items():
        for mount, vol in _mounts(spec):
            if _is_keys(vol):
                keys_users.add(name)
                # only the hub may write keys, and only when they live on a PVC
                assert mount["readOnly"] is not (name == f"{RELEASE}-hub" and keys_in_pvc), name
            claim = vol.get("persistentVolumeClaim", {}).get("claimName")
            if claim == f"{RELEASE}-extracts" and name != f"{RELEASE}-hub":
                # only the hub (provisioning) writes extracts; everyone else reads
                assert mount["readOnly"] is True and vol["persistentVolumeClaim"]["readOnly"] is True, name
    assert keys_users == {f"{RELEASE}-egress", f"{RELEASE}-hub"}
    pvcs = {d["metadata"]["name"] for d in find(docs, "PersistentVolumeClaim")}
    expected = {f"{RELEASE}-extracts", f"{RELEASE}-egress-store", f"{RELEASE}-inflow"}
    if values_file != "postgres-values.yaml":
        expected.add(f"{RELEASE}-state")
    if keys_in_pvc:
        expected.add(f"{RELEASE}-keys")
    assert pvcs == expected
    # a chart-made keys Secret exists only when no other key source is named
    made = {d["metadata"]["name"] for d in find(docs, "Secret")}
    assert (f"{RELEASE}-keys" in made) is (values_file in ("default-values.yaml", "postgres-values.yaml"))


def test_postgres_url_from_secret_and_no_state_pvc(rendered):
    docs = rendered["postgres-values.yaml"]
    (secret,) = find(docs, "Secret", f"{RELEASE}-registry-db")
    assert base64.b64decode(secret["data"]["url"]).decode().startswith("postgresql://")
    assert not find(docs, "PersistentVolumeClaim", f"{RELEASE}-state")
    for name, _, spec in pod_specs(docs):
        env = {e["name"]: e for c in spec["containers"] for e in c.get("env", [])}
        if name in (f"{RELEASE}-hub", f"{RELEASE}-egress"):
            assert env["SPE_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{RELEASE}-registry-db", "key": "url"}
            assert "value" not in env["SPE_DB_URL"]


def test_minimal_rbac(rendered):
    for docs in rendered.values():
        kinds = {d["kind"] for d in docs}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        (role,) = find(docs, "Role")
        assert role["metadata"]["namespace"] == NAMESPACE
        granted = {}
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not {"escalate", "bind", "impersonate", "patch", "update"} & set(rule["verbs"])
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    granted[(group, res)] = set(rule["verbs"])
        assert set(granted) == {("", "pods"), ("", "persistentvolumeclaims"),
                                ("", "events"), ("batch", "jobs")}
        assert "secrets" not in {r for _, r in granted}  # the hub cannot read the keys through the API
        (binding,) = find(docs, "RoleBinding")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{RELEASE}-hub"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-hub", "namespace": NAMESPACE}]


def test_prometheus_annotations_on_hub_and_egress(rendered):
    metas = {n: m for n, m, _ in pod_specs(rendered["default-values.yaml"])}
    assert metas[f"{RELEASE}-hub"]["annotations"]["prometheus.io/scrape"] == "true"
    assert metas[f"{RELEASE}-hub"]["annotations"]["prometheus.io/path"] == "/hub/metrics"
    assert metas[f"{RELEASE}-egress"]["annotations"]["prometheus.io/port"] == "8090"
    assert metas[f"{RELEASE}-egress"]["annotations"]["prometheus.io/path"] == "/services/egress/metrics"


def test_prometheus_is_let_in_to_the_metrics_ports_only_when_named(rendered):
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    for values, docs in rendered.items():
        for name, port in ((f"{RELEASE}-hub", 8081), (f"{RELEASE}-egress", 8090)):
            rules = _netpol(docs, name)["ingress"]
            scrape = [r for r in rules if peer in r["from"]]
            if values == "postgres-values.yaml":
                assert [r["from"] for r in scrape] == [[peer]] and scrape[0]["ports"] == [{"port": port, "protocol": "TCP"}]
            else:
                assert not scrape and all("namespaceSelector" not in f for r in rules for f in r["from"])


def test_egress_pod_has_its_hub_api_token_and_service_settings(rendered):
    for docs in rendered.values():
        specs = {n: s for n, _, s in pod_specs(docs)}
        env = {e["name"]: e for e in specs[f"{RELEASE}-egress"]["containers"][0]["env"]}
        token = {"secretKeyRef": {"name": f"{RELEASE}-hub", "key": "egress-api-token"}}
        assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"] == token
        assert env["JUPYTERHUB_API_URL"]["value"] == f"http://{RELEASE}-hub:8081/hub/api"
        assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/services/egress/"
        assert env["JUPYTERHUB_CLIENT_ID"]["value"] == "service-egress"
        hub_env = {e["name"]: e for e in specs[f"{RELEASE}-hub"]["containers"][0]["env"]}
        assert hub_env["SPE_EGRESS_API_TOKEN"]["valueFrom"] == token
        (secret,) = find(docs, "Secret", f"{RELEASE}-hub")
        assert len(base64.b64decode(secret["data"]["egress-api-token"])) == 64
        assert secret["data"]["egress-api-token"] != secret["data"]["proxy-token"]


def chart_hub_config(docs, tmp_path, monkeypatch) -> tuple[Config, str]:
    """Run the shipped jupyterhub_config.py against the rendered Secret, as the hub pod does;
    (the config, the registry URL)."""
    (secret,) = find(docs, "Secret", f"{RELEASE}-hub")
    values_file = tmp_path / "values.yaml"
    values_file.write_bytes(base64.b64decode(secret["data"]["values.yaml"]))
    (cm,) = find(docs, "ConfigMap", f"{RELEASE}-hub")
    monkeypatch.setenv("SPE_HUB_VALUES", str(values_file))
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "t0ken")
    monkeypatch.setenv("SPE_EGRESS_API_TOKEN", "egr3ss")
    monkeypatch.setenv("SPE_HOME", str(tmp_path))
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"  # the chart's Secret would give PostgreSQL's URL
    monkeypatch.setenv("SPE_DB_URL", db_url)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("SPE_POD_IP", "10.253.0.7")  # the chart's downward API value
    c = Config()

    async def load_config_as_the_hub_does():  # JupyterHub loads it inside its running event loop
        exec(compile(cm["data"]["jupyterhub_config.py"], "jupyterhub_config.py", "exec"), {"c": c})
        await asyncio.gather(*(asyncio.all_tasks() - {asyncio.current_task()}))

    asyncio.run(load_config_as_the_hub_does())
    return c, db_url


def test_hub_config_passthrough_reaches_jupyterhub(rendered, tmp_path, monkeypatch):
    c, db_url = chart_hub_config(rendered["postgres-values.yaml"], tmp_path, monkeypatch)
    assert c.JupyterHub.admin_access is False
    assert c.Authenticator.admin_users == ["operator"]
    assert c.JupyterHub.spawner_class == "hub.spawner.kube.RecordedPermitKubeSpawner"
    assert c.SessionRecordingMixin.session_recorder_url == f"http://{RELEASE}-recorder:8765"
    assert c.KubeSpawner.namespace == NAMESPACE
    assert c.PermitKubeSpawner.extracts_claim == f"{RELEASE}-extracts"
    assert c.PermitKubeSpawner.workspace_labels == {"spe.io/role": "workspace", "spe.io/release": RELEASE}
    assert c.PermitKubeSpawner.hub_service == f"{RELEASE}-hub:8081"
    assert c.PermitKubeSpawner.egress_service == f"{RELEASE}-egress:8090"
    assert c.PermitKubeSpawner.allow_dns is True
    assert c.PermitKubeSpawner.seccomp_field is True
    assert c.PermitKubeSpawner.netlock_image == "spe/hub:0.1.0"
    assert c.ConfigurableHTTPProxy.auth_token == "t0ken"
    # SPE's scopes and roles as on Docker; the egress service with its token, the values' extra
    # service beside it (hub.config extends the list instead of dropping the chart's service)
    assert c.JupyterHub.custom_scopes == CUSTOM_SCOPES and c.Spawner.server_token_scopes == SERVER_TOKEN_SCOPES
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {"egress", "idle-culler", "spe-lifecycle", "frontoffice", "citizens", "reports"}
    assert services["frontoffice"]["url"] == "http://10.253.0.7:8120"
    assert services["citizens"]["url"] == "http://10.253.0.7:8130"  # the hub pod's port the proxy may reach
    assert services["egress"]["api_token"] == "egr3ss" and services["egress"]["url"] == f"http://{RELEASE}-egress:8090"
    assert services["egress"]["oauth_client_allowed_scopes"] == sorted(CUSTOM_SCOPES)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["spe-egress"]["services"] == ["egress"] and roles["spe-researchers"]["groups"] == ["researchers"]
    # logins and service deletions (the culler) reach the audit trail, as with the Docker hub
    assert callable(c.Authenticator.post_auth_hook)
    assert callable(c.JupyterHub.tornado_settings["log_function"])
    # the start-up self-check ran; outside a cluster it cannot tell, and says so in the trail
    with make_engine(db_url).connect() as conn:
        (check,) = conn.execute(sa.select(audit_events).where(
            audit_events.c.action == "kube.networkpolicy_check")).mappings().all()
    detail = json.loads(check["detail"])
    assert detail["result"] == "unknown" and "KUBERNETES_SERVICE_HOST" in detail["reason"]


def test_chart_and_single_host_configure_the_same_hub(rendered, tmp_path, monkeypatch):
    """The chart's config file and the single host's both go through configure_hub: the chart's
    hub carries everything it sets and agrees with the single host on what both share."""
    (secret,) = find(rendered["default-values.yaml"], "Secret", f"{RELEASE}-hub")
    values = yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))
    kube, db_url = chart_hub_config(rendered["default-values.yaml"], tmp_path, monkeypatch)
    settings = Settings(home=tmp_path, db_url=db_url)
    assert_keeps_shared(kube, kube_settings(values), settings)
    docker = Config()
    configure_docker(docker, settings_from({}), settings, "172.30.0.1", egress_available=True)
    assert_backends_agree(docker, kube)
    # the backends differ where they must: a hub restart keeps pods, the site names the authenticator
    assert kube.JupyterHub.cleanup_servers is False and "authenticator_class" not in kube.JupyterHub
    # every SPE service of the single host runs on the cluster too; the package mirror and the
    # session recorder as their own Deployments
    assert set(services(docker)) - set(services(kube)) == {"package-mirror", "session-recorder"}


def test_spehub_settings_pass_through_and_bad_ones_stop_the_hub(tools, tmp_path, monkeypatch):
    docs = render(tools, "default-values.yaml", "--set", "hub.config.SpeHub.stop_workspaces_with_hub=true",
                  "--set", "hub.config.SpeHub.authenticator=demo")
    c, _ = chart_hub_config(docs, tmp_path, monkeypatch)
    assert c.JupyterHub.cleanup_servers is True
    assert c.JupyterHub.authenticator_class == "hub.hubapp.auth.SpeDemoAuthenticator"
    docs = render(tools, "default-values.yaml", "--set", "hub.config.SpeHub.extract_grace_days=400")
    with pytest.raises(InvalidInput, match=r"SpeHub.extract_grace_days .*= 400: must be 0..183 days"):
        chart_hub_config(docs, tmp_path, monkeypatch)


def test_netpol_check_cli_reruns_the_check_from_the_rendered_values(rendered, tmp_path, monkeypatch, capsys):
    """`spe kube netpol-check` builds the check from the hub's rendered values; outside a pod
    the probe cannot start, so the verdict is "unknown": printed, exit 21, audited as the operator."""
    from hub.cli import main

    (secret,) = find(rendered["postgres-values.yaml"], "Secret", f"{RELEASE}-hub")
    values_file = tmp_path / "values.yaml"
    values_file.write_bytes(base64.b64decode(secret["data"]["values.yaml"]))
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("SPE_HUB_VALUES", str(values_file))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["--db-url", db_url, "kube", "netpol-check"]) == 2
    assert "KUBERNETES_SERVICE_HOST is not set" in capsys.readouterr().err
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    assert main(["--db-url", db_url, "--actor", "olivia", "kube", "netpol-check"]) == 21
    assert "could not be determined" in capsys.readouterr().out
    with make_engine(db_url).connect() as conn:
        (check,) = conn.execute(sa.select(audit_events).where(
            audit_events.c.action == "kube.networkpolicy_check")).mappings().all()
    detail = json.loads(check["detail"])  # --actor is a claim; the actor is the Unix account (hub.identity)
    assert (check["actor"], check["role"], detail["result"], detail["claimed_actor"]) == (
        local_operator().actor, "operator", "unknown", "olivia")


@pytest.mark.parametrize("text, message", [
    (None, "no chart values at"),
    ("a: [", "is not valid YAML"),
    ("names: {}\n", "is not the hub's chart values (missing namespace, workspace)"),
])
def test_netpol_check_cli_refuses_bad_values_file(tmp_path, capsys, text, message):
    from hub.cli import main

    path = tmp_path / "values.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["--db-url", f"sqlite:///{tmp_path / 'r.db'}", "kube", "netpol-check", "--values", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_netpol_check_exit_codes_cover_every_verdict_apart_from_errors():
    from hub.cli.kube import VERDICT_EXIT_CODES
    from hub.spawner.netpolcheck import ENFORCED, NOT_ENFORCED, UNKNOWN

    assert set(VERDICT_EXIT_CODES) == {ENFORCED, NOT_ENFORCED, UNKNOWN}
    assert VERDICT_EXIT_CODES[ENFORCED] == 0 and not {1, 2, 3} & set(VERDICT_EXIT_CODES.values())


BAD_VALUES = [
    ("hub:\n  bogus: 1\n", "Additional property bogus is not allowed"),
    ("workspace:\n  uid: root\n", "Invalid type. Expected: integer, given: string"),
    ("registry:\n  db:\n    type: mysql\n", "registry.db.type"),
    ("hub:\n  image: {name: spe/hub, tag: latest, pullPolicy: Always}\n", "hub.image.tag"),
    ("workspace:\n  networkPolicy: {allowDNS: \"yes\"}\n", "Invalid type. Expected: boolean"),
    ("registry:\n  db: {type: postgres}\n", "set registry.db.url or registry.db.existingSecret"),
]


@pytest.mark.parametrize("text, message", BAD_VALUES)
def test_bad_values_fail_with_schema_message(tools, tmp_path, text, message):
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(text)
    out = helm(tools, "template", RELEASE, str(CHART), "-f", str(bad), check=False)
    # `helm install` runs the same schema check before rendering, but needs a reachable cluster
    # even with --dry-run=client (helm 3.17), so it is exercised in the cluster tier only.
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_provisioning_jobs_are_selected_by_their_own_closed_policy(rendered):
    from hub.provision.kubejob import make_provision_job

    docs = rendered["postgres-values.yaml"]
    (policy,) = find(docs, "NetworkPolicy", f"{RELEASE}-provision")
    (hub,) = find(docs, "Deployment", f"{RELEASE}-hub")
    job = make_provision_job(hub["spec"]["template"], "DEMO-2026-001", release=RELEASE, namespace=NAMESPACE,
                             suffix="abc12", actor="olga")
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and policy["spec"]["ingress"] == []
    # egress: DNS and the hub's extra rules (the PostgreSQL registry), never the workspaces or the world
    (hub_policy,) = find(docs, "NetworkPolicy", f"{RELEASE}-hub")
    extra = [r for r in policy["spec"]["egress"] if not any(p.get("port") == 53 for p in r.get("ports", []))]
    assert extra and all(r in hub_policy["spec"]["egress"] for r in extra)
    assert not any(not r.get("to") for r in policy["spec"]["egress"])  # no rule without a destination


def test_alert_rules_are_a_valid_prometheus_rule_file_on_spe_metrics(tools, rendered, tmp_path):
    """The rule file the chart ships passes promtool (Debian's `prometheus` package), names only
    metrics SPE serves, and the PrometheusRule carries the same rules when asked for."""
    import re
    import shutil

    from hub.metrics import HUB_GROUPS, Scrape

    (cm,) = find(rendered["default-values.yaml"], "ConfigMap", f"{RELEASE}-alerts")
    text = cm["data"]["spe-alerts.yaml"]
    rules = yaml.safe_load(text)
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"SpeAuditTrailDamaged", "SpeAuditNotVerified", "SpeAuditNotCheckpointed",
            "SpeNetworkPolicyNotEnforced"} <= set(alerts)
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (scripts/system-deps.sh installs Debian's prometheus)"
    (tmp_path / "spe-alerts.yaml").write_text(text)
    out = subprocess.run([promtool, "check", "rules", str(tmp_path / "spe-alerts.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    served = set()
    from hub.db import make_engine
    with make_engine(f"sqlite:///{tmp_path / 'registry.db'}").connect() as conn:  # an empty registry
        for make in HUB_GROUPS.values():
            group = make()
            if hasattr(group, "networkpolicy"):
                group.networkpolicy = "enforced"  # Kubernetes only: served once the self-check ran
            served |= {m.name for m in group.collect(Scrape(conn=conn, permit_rows=[], head_seq=0))}
    named = {n for r in alerts.values() for n in re.findall(r"\bspe_[a-z_]+", r["expr"])}
    assert named and named <= served, named - served
    assert not find(rendered["default-values.yaml"], "PrometheusRule")
    docs = render(tools, "default-values.yaml", "--set", "metrics.alerts.prometheusRule=true",
                  "--set", "metrics.alerts.labels.release=kube-prometheus")
    (rule,) = find(docs, "PrometheusRule", f"{RELEASE}-alerts")
    assert rule["spec"] == rules and rule["metadata"]["labels"]["release"] == "kube-prometheus"
    assert not find(render(tools, "default-values.yaml", "--set", "metrics.alerts.enabled=false"), "ConfigMap",
                    f"{RELEASE}-alerts")


def test_the_chart_made_keys_secret_signs_audit_checkpoints(rendered, tmp_path):
    """keys.store=secret without existingSecret: the Secret carries an Ed25519 key the hub signs
    checkpoints with (mounted read-only at SPE_HOME/keys; nothing has to create it)."""
    from hub.audit.checkpoint import KEY_FILE, load_or_create_signer

    (secret,) = [s for s in find(rendered["default-values.yaml"], "Secret") if KEY_FILE in s.get("data", {})]
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / KEY_FILE).write_bytes(base64.b64decode(secret["data"][KEY_FILE]))
    keys.chmod(0o500)  # as mounted: read-only
    try:
        signer = load_or_create_signer(keys)
    finally:
        keys.chmod(0o700)
    assert signer.algorithm == "ed25519" and signer.verifier() is not None
    assert sorted(p.name for p in keys.iterdir()) == [KEY_FILE]
