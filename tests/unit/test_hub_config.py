"""One hub configuration for both backends (hub.hubapp.config) and the SpeHub settings, on traitlets Configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hub.cli import main as spe_cli
from hub.exceptions import InvalidInput
from hub.hubapp.config import (CUSTOM_SCOPES, EGRESS_ACCESS, FRONTOFFICE_ACCESS, GROUP_SCOPES, SERVER_TOKEN_SCOPES,
                               configure_hub, egress_service)
from hub.hubapp.config_docker import configure_docker
from hub.hubapp.config_kube import configure_kube
from hub.hubapp.options import ENVIRONMENT, SpeDockerHub, SpeHub, settings_from, site_config
from hub.settings import Settings
from tests.hubconfig_support import assert_backends_agree, assert_keeps_shared, services

GATEWAY = "172.30.0.1"
# the shape of the chart's rendered hub values (helm/spe/templates/hub/_values.tpl; tests/helm renders the real one)
KUBE_VALUES = {
    "config": {}, "release": "spe", "namespace": "spe-test", "registryDb": "sqlite", "egressPort": 8090,
    "names": {"hub": "spe-hub", "proxyApi": "spe-proxy-api", "egress": "spe-egress", "extracts": "spe-extracts",
              "recorder": "spe-recorder"},
    "workspace": {"image": "spe/workspace:0.1.0", "pullPolicy": "IfNotPresent", "imagePullSecrets": [], "uid": 1000,
                  "storageCapacity": "1Gi", "storageClassName": "", "startTimeoutSeconds": 300, "allowDNS": False,
                  "seccompField": True, "networkPolicySelfCheck": True,
                  "labels": {"spe.io/role": "workspace", "spe.io/release": "spe"},
                  "netlock": {"enabled": True, "image": "spe/hub:0.1.0", "pullPolicy": "IfNotPresent"}},
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, db_url=f"sqlite:///{tmp_path / 'registry.db'}")


def docker_config(settings, env=None, *configs, egress=True) -> tuple[Config, SpeDockerHub]:
    spe = settings_from(env or {}, *configs)
    c = Config()
    configure_docker(c, spe, settings, GATEWAY, egress_available=egress)
    return c, spe


def kube_config(settings, passthrough=None) -> tuple[Config, SpeHub]:
    c = Config()
    spe = configure_kube(c, {**KUBE_VALUES, "config": passthrough or {}}, settings,
                         proxy_token="t0ken", egress_api_token="egr3ss")
    return c, spe


def test_configure_hub_sets_roles_scopes_and_named_servers(settings):
    c = Config()
    configure_hub(c, SpeHub(), settings, [egress_service("http://egress:8090", api_token="x")])
    assert c.JupyterHub.custom_scopes == CUSTOM_SCOPES
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    # a role per group and one per SPE service that runs: no culler, no lifecycle here
    assert set(roles) == {"spe-researchers", "spe-output-checkers", "spe-auditors", "spe-operators", "spe-egress",
                          "spe-applicants", "spe-hdab-assessors", "spe-hdab-deciders", "spe-data-holders",
                          "spe-citizens"}
    assert "custom:spe:decide" in roles["spe-hdab-deciders"]["scopes"]
    assert not set(roles["spe-hdab-deciders"]["scopes"]) & set(roles["spe-hdab-assessors"]["scopes"]) - {
        "self", EGRESS_ACCESS, FRONTOFFICE_ACCESS}  # four eyes: the two HDAB roles share no power
    assert roles["spe-researchers"]["groups"] == ["researchers"]
    assert {"custom:spe:submit", "custom:spe:download"} <= set(roles["spe-researchers"]["scopes"])
    assert {"custom:spe:review", "custom:spe:release"} <= set(roles["spe-output-checkers"]["scopes"])
    assert "custom:spe:audit" in roles["spe-auditors"]["scopes"]
    assert roles["spe-egress"]["services"] == ["egress"]
    # operators administer servers but can never open one (no access to data)
    assert "admin:servers" in GROUP_SCOPES["operators"]
    assert not any(s.startswith("access:servers") for scopes in GROUP_SCOPES.values() for s in scopes)
    assert all(EGRESS_ACCESS in scopes for group, scopes in GROUP_SCOPES.items() if group != "citizens")
    # a citizen reaches the citizens' pages only: no egress, no front office, no workspace
    assert GROUP_SCOPES["citizens"] == ["self", "access:services!service=citizens"]
    # a workspace's own token may submit for its user, on any spawner
    assert c.Spawner.server_token_scopes == SERVER_TOKEN_SCOPES and "custom:spe:submit!user" in SERVER_TOKEN_SCOPES
    assert c.JupyterHub.allow_named_servers is True and c.JupyterHub.redirect_to_server is False
    assert (Path(c.JupyterHub.template_paths[0]) / "home.html").is_file()
    assert c.JupyterHub.template_vars["spe_permits"](None) == []
    assert c.JupyterHub.cleanup_servers is False
    # the demo authenticator (SpeHub's default) with its users file and audit; every login audited
    assert c.JupyterHub.authenticator_class == "hub.hubapp.auth.SpeDemoAuthenticator"
    assert c.SpeDemoAuthenticator.users_file == str(settings.hub_dir / "demo-users.json")
    assert c.SpeDemoAuthenticator.audit_db_url == settings.db_url
    assert callable(c.Authenticator.post_auth_hook) and callable(c.JupyterHub.tornado_settings["log_function"])


def test_configure_hub_leaves_the_authenticator_to_the_site_with_oidc(settings):
    c = Config()
    configure_hub(c, SpeHub(authenticator="oidc", stop_workspaces_with_hub=True), settings, [])
    assert "authenticator_class" not in c.JupyterHub and "SpeDemoAuthenticator" not in c
    assert callable(c.Authenticator.post_auth_hook)  # logins are audited with any authenticator
    assert c.JupyterHub.cleanup_servers is True
    assert [r["name"] for r in c.JupyterHub.load_roles] == [f"spe-{g}" for g in GROUP_SCOPES]


@pytest.mark.parametrize("backend", ["docker", "kube"])
def test_each_backend_keeps_everything_configure_hub_sets(settings, backend):
    """A backend adds to the shared configuration and never changes it afterwards."""
    c, spe = docker_config(settings) if backend == "docker" else kube_config(settings)
    assert_keeps_shared(c, spe, settings)


def test_both_backends_share_roles_scopes_and_egress_registration(settings):
    docker, _ = docker_config(settings)
    kube, _ = kube_config(settings)
    assert_backends_agree(docker, kube)
    d, k = services(docker)["egress"], services(kube)["egress"]
    assert d["url"] == f"http://{GATEWAY}:8100" and k["url"] == "http://spe-egress:8090"
    assert d["command"][1:] == ["-m", "egress.app"] and k["api_token"] == "egr3ss" and "command" not in k


def test_the_notifier_runs_only_with_an_smtp_server_and_gets_its_settings(settings, monkeypatch):
    for var in ("SPE_SMTP_HOST", "SPE_HUB_EXTRA_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    c, _ = docker_config(settings)
    assert "notifier" not in services(c)  # no SMTP server: mail is off, nothing queues
    monkeypatch.setenv("SPE_SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("SPE_SMTP_PASSWORD_FILE", "/run/secrets/smtp")
    c, _ = docker_config(settings)
    notifier = services(c)["notifier"]
    assert notifier["command"][1:] == ["-m", "hub.cli", "notify", "run"] and "url" not in notifier
    env = notifier["environment"]
    assert (env["SPE_SMTP_HOST"], env["SPE_SMTP_PASSWORD_FILE"], env["SPE_HOME"]) == (
        "mail.example.org", "/run/secrets/smtp", str(settings.home))
    monkeypatch.setenv("SPE_SMTP_SECURITY", "none")  # a bad mail setting stops the hub's configuration
    with pytest.raises(InvalidInput, match="SPE_SMTP_SECURITY"):
        docker_config(settings)
    # on the cluster the chart's config.SpeNotify turns it on, its settings in the notifier's environment
    assert "notifier" not in services(kube_config(settings)[0])
    kube, _ = kube_config(settings, {"SpeNotify": {"smtp_host": "smtp.hdab.example", "smtp_port": 465,
                                                   "smtp_security": "tls"}})
    env = services(kube)["notifier"]["environment"]
    assert (env["SPE_SMTP_HOST"], env["SPE_SMTP_PORT"], env["SPE_SMTP_SECURITY"]) == ("smtp.hdab.example", "465", "tls")


def test_docker_adds_listeners_spawner_and_service_processes(settings):
    c, spe = docker_config(settings, {"SPE_HUB_PORT": "9081", "SPE_IDLE_TIMEOUT_SECONDS": "900",
                                      "SPE_NAME_PREFIX": "spe-x", "SPE_RECORDER_PORT": "8765"})
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.hub_bind_url == c.JupyterHub.hub_connect_url == f"http://{GATEWAY}:9081"
    assert c.ConfigurableHTTPProxy.should_start is True
    assert c.JupyterHub.db_url == f"sqlite:///{settings.hub_dir / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.spawner_class == "hub.spawner.docker.RecordedPermitSpawner"
    assert c.PermitSpawner.egress_url == f"http://{GATEWAY}:8100/services/egress/"
    assert c.PermitSpawner.name_prefix == "spe-x" and c.PermitSpawner.pull_policy == "never"
    assert c.SessionRecordingMixin.session_recorder_url == "http://127.0.0.1:8765"
    assert c.JupyterHub.cleanup_servers is True  # the proxy and recorder stop with the hub here
    svc = services(c)
    assert set(svc) == {"idle-culler", "spe-lifecycle", "session-recorder", "egress", "package-mirror", "frontoffice",
                        "citizens"}
    assert svc["citizens"]["command"][1:] == ["-m", "hub.citizens.web"]
    assert svc["citizens"]["url"].startswith("http://127.0.0.1:")  # never on the workspaces' gateway
    assert svc["frontoffice"]["command"][1:] == ["-m", "hub.frontoffice.web"]
    assert svc["frontoffice"]["url"].startswith("http://127.0.0.1:")  # never on the workspaces' gateway
    assert svc["idle-culler"]["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=900", "--cull-every=90",
                                                 "--remove-named-servers=false"]
    assert svc["spe-lifecycle"]["command"][1:] == ["-m", "hub.lifecycle", "--period-seconds", "30",
                                                   "--grace-days", "30", "--checkpoint-every-seconds", "3600",
                                                   "--verify-every-seconds", "86400", "--name-prefix", "spe-x"]
    assert svc["session-recorder"]["command"][svc["session-recorder"]["command"].index("--port") + 1] == "8765"
    # the package mirror listens on the gateway, read-only over the mirror directory; workspaces get its URL
    assert svc["package-mirror"]["command"][1:] == ["-m", "hub.mirror.serve", "--ip", GATEWAY, "--port", "8110",
                                                   "--root", str(settings.mirror_dir)]
    assert c.PermitSpawner.mirror_url == f"http://{GATEWAY}:8110/"
    assert "package-mirror" not in {s for r in c.JupyterHub.load_roles for s in r.get("services", [])}
    for name in ("spe-lifecycle", "session-recorder", "egress", "frontoffice"):
        assert svc[name]["environment"]["SPE_DB_URL"] == settings.db_url, name
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["spe-idle-culler"]["services"] == ["idle-culler"] and "delete:servers" in roles["spe-idle-culler"]["scopes"]
    assert roles["spe-lifecycle"]["services"] == ["spe-lifecycle"]
    assert spe.stop_workspaces_with_hub is True


def test_docker_without_egress_installed_registers_no_egress(settings):
    c, _ = docker_config(settings, egress=False)
    assert "egress" not in services(c)
    assert "spe-egress" not in {r["name"] for r in c.JupyterHub.load_roles}


def test_kube_adds_its_spawner_external_egress_and_passthrough_last(settings):
    c, spe = kube_config(settings, {"JupyterHub": {"services": [{"name": "reports", "api_token": "r"}],
                                                   "authenticator_class": "dummy", "redirect_to_server": True},
                                    "SpeHub": {"stop_workspaces_with_hub": True}})
    assert c.JupyterHub.spawner_class == "hub.spawner.kube.RecordedPermitKubeSpawner"
    assert c.ConfigurableHTTPProxy.should_start is False and c.ConfigurableHTTPProxy.auth_token == "t0ken"
    assert c.JupyterHub.hub_connect_url == "http://spe-hub:8081"
    assert c.PermitKubeSpawner.egress_service == "spe-egress:8090" and c.PermitKubeSpawner.spe_db_url == settings.db_url
    # hub.config extends the chart's services
    assert set(services(c)) == {"egress", "idle-culler", "spe-lifecycle", "reports"}
    assert c.JupyterHub.authenticator_class == "dummy" and c.JupyterHub.redirect_to_server is True
    # hub.config.SpeHub reaches the shared settings
    assert spe.stop_workspaces_with_hub is True and c.JupyterHub.cleanup_servers is True


def test_kube_defaults_keep_workspaces_and_leave_the_authenticator_to_the_site(settings):
    c, spe = kube_config(settings)
    assert spe.authenticator == "oidc" and "authenticator_class" not in c.JupyterHub
    assert c.JupyterHub.cleanup_servers is False  # a hub pod restart must not kill running workspaces
    assert [s["name"] for s in c.JupyterHub.services] == ["egress", "idle-culler", "spe-lifecycle"]


def test_kube_runs_culler_lifecycle_and_front_office_in_the_hub_pod_behind_the_recorder(settings):
    c = Config()
    configure_kube(c, {**KUBE_VALUES, "config": {}}, settings, proxy_token="t0ken", egress_api_token="egr3ss",
                   service_env={"KUBERNETES_SERVICE_HOST": "10.254.0.1", "KUBERNETES_SERVICE_PORT": "443"},
                   pod_ip="10.253.0.7")
    svc = services(c)
    assert set(svc) == {"egress", "idle-culler", "spe-lifecycle", "frontoffice", "citizens"}
    assert svc["citizens"]["command"][1:] == ["-m", "hub.citizens.web"] and svc["citizens"]["url"].endswith(":8130")
    # every workspace is reached through the recorder, its own pod behind its own Service
    assert c.JupyterHub.spawner_class == "hub.spawner.kube.RecordedPermitKubeSpawner"
    assert c.SessionRecordingMixin.session_recorder_url == "http://spe-recorder:8765"
    life = svc["spe-lifecycle"]["command"]
    assert life[1:3] == ["-m", "hub.lifecycle"] and life[life.index("--backend") + 1] == "kube"
    assert life[life.index("--namespace") + 1] == "spe-test"
    # by default a signed checkpoint every hour, the whole trail verified every day
    assert (life[life.index("--checkpoint-every-seconds") + 1], life[life.index("--verify-every-seconds") + 1]) == (
        "3600", "86400")
    assert "--remove-named-servers=false" in svc["idle-culler"]["command"]
    assert svc["frontoffice"]["url"] == "http://10.253.0.7:8120"
    for name in ("spe-lifecycle", "frontoffice"):
        env = svc[name]["environment"]
        assert (env["SPE_DB_URL"], env["SPE_HOME"]) == (settings.db_url, str(settings.home))
        assert env["KUBERNETES_SERVICE_HOST"] == "10.254.0.1"
        assert settings.db_url not in svc[name]["command"]  # a PostgreSQL password never on a command line
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["spe-lifecycle"]["services"] == ["spe-lifecycle"] and "delete:servers" in roles["spe-lifecycle"]["scopes"]
    assert roles["spe-idle-culler"]["services"] == ["idle-culler"]
    assert roles["spe-frontoffice"]["services"] == ["frontoffice"]
    # without the pod's IP there is nowhere for the front office to listen: not registered
    c2, _ = kube_config(settings)
    assert "frontoffice" not in services(c2)


def test_kube_refuses_a_bad_spehub_value(settings):
    with pytest.raises(InvalidInput, match=r"SpeHub.extract_grace_days .*= 400: must be 0..183 days"):
        kube_config(settings, {"SpeHub": {"extract_grace_days": 400}})


def test_environment_sets_the_traits():
    env = {var: "" for var in ENVIRONMENT}  # empty: the default
    env.update({"SPE_PUBLIC_PORT": "9000", "SPE_FIREWALL": "external", "SPE_EXTRACT_GRACE_DAYS": "0",
                "SPE_AUTHENTICATOR": "oidc", "SPE_IMAGE": "spe/workspace:abc"})
    spe = settings_from(env)
    assert (spe.public_port, spe.firewall, spe.extract_grace_days, spe.authenticator, spe.image) == (
        9000, "external", 0, "oidc", "spe/workspace:abc")
    assert (spe.hub_port, spe.idle_timeout_seconds, spe.name_prefix) == (8081, 3600, "spe")


def test_the_audit_schedule_reaches_the_lifecycle_service():
    from hub.hubapp.config import lifecycle_command
    spe = settings_from({"SPE_AUDIT_CHECKPOINT_SECONDS": "600", "SPE_AUDIT_VERIFY_SECONDS": "3600"})
    cmd = lifecycle_command(spe, "python")
    assert (cmd[cmd.index("--checkpoint-every-seconds") + 1], cmd[cmd.index("--verify-every-seconds") + 1]) == (
        "600", "3600")


def test_a_config_file_wins_over_the_environment():
    site = Config()
    site.SpeHub.idle_timeout_seconds = 600
    site.SpeDockerHub.hub_port = 9999
    spe = settings_from({"SPE_IDLE_TIMEOUT_SECONDS": "7200", "SPE_HUB_PORT": "9081", "SPE_EGRESS_PORT": "9100"}, site)
    assert (spe.idle_timeout_seconds, spe.hub_port, spe.egress_port) == (600, 9999, 9100)
    assert "SpeHub" in site and site.SpeHub.idle_timeout_seconds == 600  # the config itself is untouched


@pytest.mark.parametrize("var, raw, message", [
    ("SPE_EXTRACT_GRACE_DAYS", "184", "must be 0..183 days"),
    ("SPE_LIFECYCLE_PERIOD_SECONDS", "61", "must be 1..60 seconds"),
    ("SPE_IDLE_TIMEOUT_SECONDS", "5", "must be at least 60 seconds"),
    ("SPE_AUDIT_CHECKPOINT_SECONDS", "10", "must be at least 60 seconds"),
    ("SPE_AUDIT_VERIFY_SECONDS", "604801", "must be 60..604800 seconds"),
    ("SPE_FIREWALL", "off", "must be one of enforce, external"),
    ("SPE_AUTHENTICATOR", "pam", "must be one of demo, oidc"),
    ("SPE_HUB_PORT", "eighty", "SPE_HUB_PORT must be a whole number, not 'eighty'"),
    ("SPE_PUBLIC_PORT", "70000", "must be a TCP port"),
    ("SPE_RECORDER_PORT", "-1", "or 0 for a free one"),
    ("SPE_BRIDGE", "much-too-long-bridge", "must be 1-15 characters"),
    ("SPE_FIREWALL_CHAIN", "-j ACCEPT", "must be 1-28 characters"),
    ("SPE_NAME_PREFIX", "Spe_1", "must be 1-20 characters [a-z0-9-] starting with a letter"),
    ("SPE_NAME_PREFIX", "x" * 21, "must be 1-20 characters"),
])
def test_bad_values_are_one_line_naming_the_variable(var, raw, message):
    with pytest.raises(InvalidInput) as err:
        settings_from({var: raw})
    text = str(err.value)
    assert var in text and message in text and raw in text and "\n" not in text


def test_traits_validate_when_set_in_python_too():
    with pytest.raises(TraitError, match=r"SpeHub.lifecycle_period_seconds .*= 0: must be 1..60"):
        SpeHub(lifecycle_period_seconds=0)
    assert SpeDockerHub(config=Config({"SpeHub": {"public_port": 8443}})).public_port == 8443


def test_every_setting_is_documented_with_its_default():
    for name, trait in SpeDockerHub.class_traits(config=True).items():
        assert "default" in (trait.help or "").lower(), name
    # every variable names a trait; only the workspaces-with-the-hub policy is config-only
    assert set(SpeDockerHub.class_traits(config=True)) - set(ENVIRONMENT.values()) == {"stop_workspaces_with_hub"}


def test_site_config_feeds_settings_and_merges_last(settings, tmp_path):
    site_file = tmp_path / "site_config.py"
    site_file.write_text("c = get_config()\n"
                         "c.SpeHub.idle_timeout_seconds = 600\n"
                         "c.JupyterHub.authenticator_class = 'generic-oauth'\n"
                         "c.JupyterHub.services.append({'name': 'reports', 'api_token': 'r'})\n")
    site = site_config(str(site_file))
    c, _ = docker_config(settings, {"SPE_IDLE_TIMEOUT_SECONDS": "7200"}, site)
    c.merge(site)  # as hub/jupyterhub_config.py does
    assert "--timeout=600" in services(c)["idle-culler"]["command"]
    assert set(services(c)) == {"idle-culler", "spe-lifecycle", "session-recorder", "egress", "package-mirror",
                                "frontoffice", "citizens", "reports"}
    assert c.JupyterHub.authenticator_class == "generic-oauth"


@pytest.mark.parametrize("text, message", [(None, "no such file"), ("c.JupyterHub.x = (", "SyntaxError")])
def test_site_config_errors_are_one_line(tmp_path, text, message):
    path = tmp_path / "site.py"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InvalidInput, match=message) as err:
        site_config(str(path))
    assert "SPE_HUB_EXTRA_CONFIG" in str(err.value) and "\n" not in str(err.value)


def test_spe_hub_start_refuses_bad_settings_before_starting(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPE_LIFECYCLE_PERIOD_SECONDS", "600")
    assert spe_cli(["--home", str(tmp_path), "hub", "start"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SPE_LIFECYCLE_PERIOD_SECONDS" in err and "must be 1..60 seconds" in err
    # nothing started: no pid file, no hub log
    assert not (tmp_path / "hub" / "hub-process.json").exists() and not (tmp_path / "hub" / "hub.log").exists()
