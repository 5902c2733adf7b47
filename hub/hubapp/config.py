"""Build the JupyterHub configuration of SPE from `HubOptions` (pure: sets values on `c`, no I/O).

Public proxy on `public_ip:public_port`; the hub API and the egress service on the internal
network's gateway, the only host addresses a workspace can reach (hub.netfw). Named
servers, one per permit, run by `PermitSpawner`. Groups, roles and the custom scopes the
egress service checks. Hub-managed services: the idle culler, the permit lifecycle task
and (when installed) the egress service. Must not import `egress`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hub.hubapp.options import HubOptions

REPO_ROOT = Path(__file__).resolve().parents[2]

CUSTOM_SCOPES = {
    "custom:spe:submit": {"description": "Submit outputs of a permit's workspace for output checking."},
    "custom:spe:review": {"description": "Review output requests as an output checker."},
    "custom:spe:release": {"description": "Release approved outputs."},
    "custom:spe:download": {"description": "Download released outputs of one's own permits."},
    "custom:spe:audit": {"description": "Read and verify the audit trail."},
    "custom:spe:operate": {"description": "Operate permits, extracts and workspaces."},
}

EGRESS_ACCESS = "access:services!service=egress"  # log in to the egress pages (OAuth)
EGRESS_PREFIX = "/services/egress/"  # the egress service's routes (JupyterHub's prefix for the service)

GROUP_SCOPES = {
    "researchers": ["self", EGRESS_ACCESS, "custom:spe:submit", "custom:spe:download"],
    "output-checkers": ["self", EGRESS_ACCESS, "custom:spe:review", "custom:spe:release"],
    "auditors": ["self", EGRESS_ACCESS, "custom:spe:audit"],
    # operators run the service but must not see data: server admin, never access:servers
    "operators": ["self", EGRESS_ACCESS, "custom:spe:operate", "admin-ui", "list:users", "read:users",
                  "read:servers", "admin:servers", "read:groups"],
}

# the workspace's own token (JUPYTERHUB_API_TOKEN) may submit outputs to egress for its user
SERVER_TOKEN_SCOPES = ["access:servers!server", "users:activity!user", "custom:spe:submit!user"]


def make_roles(services: list[str]) -> list[dict]:
    roles = [{"name": f"spe-{group}", "description": f"SPE {group}", "scopes": scopes, "groups": [group]}
             for group, scopes in GROUP_SCOPES.items()]
    if "idle-culler" in services:
        roles.append({"name": "spe-idle-culler", "services": ["idle-culler"],
                      "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]})
    if "spe-lifecycle" in services:
        roles.append({"name": "spe-lifecycle", "services": ["spe-lifecycle"],
                      "scopes": ["list:users", "read:users", "read:servers", "delete:servers"]})
    if "egress" in services:
        roles.append({"name": "spe-egress", "services": ["egress"],
                      "scopes": ["list:users", "read:users", "read:groups", "read:roles:users"]})
    return roles


def make_services(opts: HubOptions, gateway_ip: str, egress_available: bool, python: str = sys.executable,
                  recorder_port: int = 8765) -> list[dict]:
    env = {**opts.service_env(), "PYTHONPATH": str(REPO_ROOT)}
    services = [
        {"name": "idle-culler",
         "command": [python, "-m", "jupyterhub_idle_culler", f"--timeout={opts.idle_timeout_seconds}",
                     f"--cull-every={max(60, opts.idle_timeout_seconds // 10)}", "--remove-named-servers=false"]},
        {"name": "spe-lifecycle", "cwd": str(REPO_ROOT), "environment": env,
         "command": [python, "-m", "hub.lifecycle", "--period-seconds", str(opts.lifecycle_period_seconds),
                     "--grace-days", str(opts.extract_grace_days), "--name-prefix", opts.name_prefix]},
    ]
    # the session recorder: every workspace is reached through it (hub.sessionlog)
    services.append({"name": "session-recorder", "cwd": str(REPO_ROOT), "environment": env,
                     "command": [python, "-m", "hub.sessionlog.proxy", "--ip", "127.0.0.1",
                                 "--port", str(recorder_port), "--home", str(opts.home), "--db-url", opts.db_url]})
    if egress_available:
        services.append(egress_service(f"http://{gateway_ip}:{opts.egress_port}", cwd=str(REPO_ROOT),
                                       environment=env, command=[python, "-m", "egress.app"]))
    return services


def egress_service(url: str, **how: object) -> dict:
    """The `egress` service entry (OAuth for its pages, SPE's scopes in its tokens); `how`:
    started by the hub (`command`, ...) on one host, or an `api_token` when it runs elsewhere."""
    return {"name": "egress", "url": url, "oauth_no_confirm": True, "display": True,
            "oauth_client_allowed_scopes": sorted(CUSTOM_SCOPES), **how}


def free_loopback_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def egress_url(opts: HubOptions, gateway_ip: str) -> str:
    return f"http://{gateway_ip}:{opts.egress_port}{EGRESS_PREFIX}"


def configure(c, opts: HubOptions, gateway_ip: str, egress_available: bool) -> None:
    """Set every SPE-relevant JupyterHub option on config object `c`."""
    state = opts.state_dir
    # --- where things listen
    c.JupyterHub.bind_url = f"http://{opts.public_ip}:{opts.public_port}"
    c.JupyterHub.hub_bind_url = f"http://{gateway_ip}:{opts.hub_port}"
    c.JupyterHub.hub_connect_url = f"http://{gateway_ip}:{opts.hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{opts.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True  # `make stop` leaves no workspace running
    c.JupyterHub.tornado_settings = {"log_function": _log_function(opts)}

    # --- workspaces: one named server per permit
    c.JupyterHub.spawner_class = "hub.spawner.docker.RecordedPermitSpawner"
    recorder_port = opts.recorder_port or free_loopback_port()
    c.SessionRecordingMixin.session_recorder_url = f"http://127.0.0.1:{recorder_port}"
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0
    c.JupyterHub.redirect_to_server = False  # land on the home page that lists the user's permits
    c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates")]
    c.JupyterHub.template_vars = {"spe_permits": _permits_for_template(opts)}
    c.PermitSpawner.spe_home = str(opts.home)
    c.PermitSpawner.spe_db_url = opts.db_url
    c.PermitSpawner.image = opts.image
    c.PermitSpawner.pull_policy = "never"  # images are built locally (make images); never from a registry
    c.PermitSpawner.network_name = opts.network
    c.PermitSpawner.name_prefix = opts.name_prefix
    c.PermitSpawner.egress_url = egress_url(opts, gateway_ip)
    c.PermitSpawner.cmd = ["jupyterhub-singleuser"]
    c.PermitSpawner.server_token_scopes = SERVER_TOKEN_SCOPES
    c.PermitSpawner.notebook_dir = "/home/jovyan/work"
    c.PermitSpawner.default_url = "/lab"
    c.PermitSpawner.start_timeout = 180  # includes the readiness wait; 10 spawns at once on 2 busy cores
    c.PermitSpawner.http_timeout = 120
    c.PermitSpawner.poll_interval = 30

    # --- people
    if opts.authenticator == "demo":
        c.JupyterHub.authenticator_class = "hub.hubapp.auth.SpeDemoAuthenticator"
        c.SpeDemoAuthenticator.users_file = str(opts.users_file)
        c.SpeDemoAuthenticator.audit_db_url = opts.db_url
        c.SpeDemoAuthenticator.manage_groups = True
    c.Authenticator.post_auth_hook = _audit_login_hook(opts)
    # groups come from the authenticator (manage_groups); roles name them, which creates them
    c.JupyterHub.custom_scopes = CUSTOM_SCOPES
    services = make_services(opts, gateway_ip, egress_available, recorder_port=recorder_port)
    c.JupyterHub.services = services
    from hub.db import make_engine
    from hub.metrics import install_hub_metrics

    install_hub_metrics(make_engine(opts.db_url))  # SPE families on /hub/metrics
    c.JupyterHub.load_roles = make_roles([s["name"] for s in services])


def _log_function(opts: HubOptions):
    from hub.hubapp.audit_log import make_log_function

    return make_log_function(opts.db_url)


def _audit_login_hook(opts: HubOptions):
    from hub.hubapp.auth import make_audit_login_hook

    return make_audit_login_hook(opts.db_url)


def _permits_for_template(opts: HubOptions):
    def permits(user) -> list[dict]:
        from hub.db import make_engine
        from hub.permits.store import PermitStore

        if user is None:
            return []
        from hub.naming import server_name_for

        out = []
        for p in PermitStore(make_engine(opts.db_url)).active_for_user(user.name):
            server = server_name_for(p.id)
            spawner = user.spawners.get(server) if hasattr(user, "spawners") else None
            out.append({"id": p.id, "title": p.title, "valid_until": str(p.valid_until), "server": server,
                        "running": bool(spawner and spawner.active)})
        return out

    return permits
