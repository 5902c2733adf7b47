"""SPE's hub on one Docker host: what it adds to `hub.hubapp.config.configure_hub`.

Public proxy on `public_ip:public_port`, started by the hub; the hub API, the egress service
and the package mirror on the internal network's gateway, the only host addresses a workspace
can reach (hub.netfw). Workspaces are `RecordedPermitSpawner` containers behind the session
recorder. Every service is a process the hub starts: idle culler, lifecycle, session recorder,
package mirror, front office, citizens' service, the notifier (when an SMTP server is set) and
(when installed) egress. Sets values on `c` only; the host is prepared by hub.hubapp.host. Must not
import `egress`.

Supervised (`SpeDockerHub.supervised`, `spe hub start`): supervisord runs the proxy and the
services (hub.hubapp.supervise); the hub only registers them, each with its API token, keeps
the proxy's routes up to date (hub.hubapp.proxy) and leaves the workspaces running when it stops.
"""

from __future__ import annotations

import os
import sys

from hub.hubapp.config import (EGRESS_PREFIX, LIFECYCLE, MIRROR, RECORDER, citizens_service, configure_hub,
                                egress_service, frontoffice_service, idle_culler_service, lifecycle_command,
                                notifier_service)
from hub.hubapp.options import SpeDockerHub, site_config
from hub.hubapp.process import REPO_ROOT, free_loopback_port
from hub.hubapp.supervise import externalize
from hub.notify.settings import notifier_environment
from hub.settings import Settings

CITIZENS_ENVIRONMENT = ("SPE_OPTOUT_DELAY_DAYS", "SPE_OPTOUT_PROPAGATE_SECONDS")  # hub.citizens.web.app


def egress_url(spe: SpeDockerHub, gateway_ip: str) -> str:
    """Where a workspace reaches the egress service (SPE_EGRESS_URL)."""
    return f"http://{gateway_ip}:{spe.egress_port}{EGRESS_PREFIX}"


def mirror_url(spe: SpeDockerHub, gateway_ip: str) -> str:
    """Where a workspace reaches the package mirror (each gets its permit's index under it)."""
    return f"http://{gateway_ip}:{spe.mirror_port}/"


def make_services(spe: SpeDockerHub, settings: Settings, gateway_ip: str, egress_available: bool,
                  recorder_port: int, python: str = sys.executable) -> list[dict]:
    """Every SPE service as a process of the hub, with the registry's location in its environment."""
    env = {"SPE_HOME": str(settings.home), "SPE_DB_URL": settings.db_url, "PYTHONPATH": str(REPO_ROOT)}
    here = {"cwd": str(REPO_ROOT), "environment": env}
    services = [
        idle_culler_service(spe, python),
        {"name": LIFECYCLE, **here, "command": [*lifecycle_command(spe, python), "--name-prefix", spe.name_prefix]},
        # the session recorder: every workspace is reached through it (hub.sessionlog)
        {"name": RECORDER, **here,
         "command": [python, "-m", "hub.sessionlog.proxy", "--ip", "127.0.0.1", "--port", str(recorder_port),
                     "--home", str(settings.home), "--db-url", settings.db_url]},
        # the package mirror: reviewed wheels, read-only, on the gateway (hub.mirror.serve)
        {"name": MIRROR, **here,
         "command": [python, "-m", "hub.mirror.serve", "--ip", gateway_ip, "--port", str(spe.mirror_port),
                     "--root", str(settings.mirror_dir)]},
    ]
    # the front office listens on loopback (browsers reach it through the proxy, never a workspace)
    services.append(frontoffice_service(f"http://127.0.0.1:{spe.frontoffice_port or free_loopback_port()}", **here,
                                        command=[python, "-m", "hub.frontoffice.web"]))
    # the citizens' service, on loopback too (hub.citizens.web)
    # (its opt-out delay and propagation period pass through from the hub's environment)
    passed = {k: os.environ[k] for k in CITIZENS_ENVIRONMENT if k in os.environ}
    services.append(citizens_service(f"http://127.0.0.1:{spe.citizens_port or free_loopback_port()}", cwd=str(REPO_ROOT),
                                     environment={**env, **passed}, command=[python, "-m", "hub.citizens.web"]))
    # the notifier, when an SMTP server is set (hub.notify), with its SPE_SMTP_* settings
    extra_config = os.environ.get("SPE_HUB_EXTRA_CONFIG")
    mail = notifier_environment(os.environ, site_config(extra_config))
    if mail is not None:  # (the site file too: SpeNotify's retry and digest settings)
        passed = {"SPE_HUB_EXTRA_CONFIG": extra_config} if extra_config else {}
        services.append(notifier_service(python, cwd=str(REPO_ROOT), environment={**env, **mail, **passed}))
    if egress_available:
        services.append(egress_service(f"http://{gateway_ip}:{spe.egress_port}", **here,
                                       command=[python, "-m", "egress.app"]))
    return services


def configure_docker(c, spe: SpeDockerHub, settings: Settings, gateway_ip: str, egress_available: bool,
                     service_tokens: dict | None = None) -> None:
    """SPE's hub on this host: listeners, proxy, JupyterHub's state, the Docker spawner, the
    services as processes (or, supervised, as external services with `service_tokens`); then
    everything both backends share (`configure_hub`)."""
    state = settings.hub_dir
    # --- where things listen
    c.JupyterHub.bind_url = f"http://{spe.public_ip}:{spe.public_port}"
    c.JupyterHub.hub_bind_url = f"http://{gateway_ip}:{spe.hub_port}"
    c.JupyterHub.hub_connect_url = f"http://{gateway_ip}:{spe.hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{spe.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = not spe.supervised
    if spe.supervised:
        c.JupyterHub.proxy_class = "hub.hubapp.proxy.SupervisedProxy"
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

    # --- workspaces: a container per (permit, user), reached through the session recorder
    c.JupyterHub.spawner_class = "hub.spawner.docker.RecordedPermitSpawner"
    recorder_port = spe.recorder_port or free_loopback_port()
    c.SessionRecordingMixin.session_recorder_url = f"http://127.0.0.1:{recorder_port}"
    c.PermitSpawner.spe_home = str(settings.home)
    c.PermitSpawner.spe_db_url = settings.db_url
    c.PermitSpawner.image = spe.image
    c.PermitSpawner.pull_policy = "never"  # images are built locally (make images); never from a registry
    c.PermitSpawner.network_name = spe.network
    c.PermitSpawner.name_prefix = spe.name_prefix
    c.PermitSpawner.egress_url = egress_url(spe, gateway_ip)
    c.PermitSpawner.mirror_url = mirror_url(spe, gateway_ip)
    c.PermitSpawner.cmd = ["jupyterhub-singleuser"]
    c.PermitSpawner.notebook_dir = "/home/jovyan/work"
    c.PermitSpawner.default_url = "/lab"
    c.PermitSpawner.start_timeout = 180  # includes the readiness wait; 10 spawns at once on 2 busy cores
    c.PermitSpawner.http_timeout = 120
    c.PermitSpawner.poll_interval = 30

    services = make_services(spe, settings, gateway_ip, egress_available, recorder_port)
    if spe.supervised:
        if not (spe.recorder_port and spe.frontoffice_port and spe.citizens_port):  # the supervisor's programs listen there
            raise ValueError("supervised: SpeDockerHub.recorder_port, frontoffice_port and citizens_port must be set "
                             "(spe hub start chooses them)")
        services, _ = externalize(services, service_tokens or {}, hub_api_url(spe, gateway_ip), str(REPO_ROOT))
    configure_hub(c, spe, settings, services)


def hub_api_url(spe: SpeDockerHub, gateway_ip: str) -> str:
    """Where the services reach the hub API (the internal network's gateway)."""
    return f"http://{gateway_ip}:{spe.hub_port}/hub/api"
