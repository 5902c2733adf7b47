"""hub/jupyterhub_config.py, loaded as JupyterHub loads it: the SPE_* environment, then the site's
SPE_HUB_EXTRA_CONFIG, on a real Docker network (the entry point prepares the host before it
configures the hub)."""

from __future__ import annotations

import uuid

import docker
import pytest
from traitlets.config import PyFileConfigLoader

from hub.hubapp.process import REPO_ROOT

pytestmark = pytest.mark.docker


def test_entry_point_reads_the_environment_then_the_site_config(tmp_path, monkeypatch):
    run = uuid.uuid4().hex[:6]
    network, bridge = f"spe-e{run}", f"spee{run}"
    site = tmp_path / "site_config.py"
    site.write_text("c = get_config()\n"
                    "c.SpeHub.idle_timeout_seconds = 600\n"
                    "c.SpeDockerHub.hub_port = 9999\n"
                    "c.SpeNotify.smtp_host = 'mail.example.org'\n"
                    "c.JupyterHub.authenticator_class = 'generic-oauth'\n"
                    "c.JupyterHub.services.append({'name': 'reports', 'api_token': 'r3ports'})\n")
    home = tmp_path / "spe"
    for var, value in {"SPE_HOME": str(home), "SPE_DB_URL": f"sqlite:///{home / 'registry.db'}",
                       "SPE_NETWORK": network, "SPE_BRIDGE": bridge, "SPE_FIREWALL": "external",
                       "SPE_HUB_PORT": "9081", "SPE_IDLE_TIMEOUT_SECONDS": "7200",
                       "SPE_LIFECYCLE_PERIOD_SECONDS": "7", "SPE_NAME_PREFIX": f"spe-e{run}",
                       "SPE_HUB_EXTRA_CONFIG": str(site)}.items():
        monkeypatch.setenv(var, value)
    client = docker.from_env()
    try:
        c = PyFileConfigLoader("jupyterhub_config.py", str(REPO_ROOT / "hub")).load_config()
        gateway = client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"]
    finally:
        try:
            client.networks.get(network).remove()
        except docker.errors.NotFound:
            pass
    # the environment (lifecycle period, name prefix), overridden by the site file (hub port, idle timeout)
    assert c.JupyterHub.hub_bind_url == f"http://{gateway}:9999"
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert "--timeout=600" in services["idle-culler"]["command"]
    life = services["spe-lifecycle"]["command"]
    assert (life[life.index("--period-seconds") + 1], life[life.index("--name-prefix") + 1]) == ("7", f"spe-e{run}")
    # an SMTP server in the site file: the hub runs the notifier, which reads the same file
    assert services["notifier"]["environment"]["SPE_HUB_EXTRA_CONFIG"] == str(site)
    # the site's other settings are applied last: its authenticator, its service beside SPE's
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert {"idle-culler", "spe-lifecycle", "session-recorder", "egress", "reports"} <= set(services)
    assert c.PermitSpawner.spe_home == str(home) and (home / "hub").is_dir()
