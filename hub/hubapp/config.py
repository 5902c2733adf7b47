"""One JupyterHub configuration of SPE for both backends: `configure_hub` (sets values on `c`).

Everything the single host (hub.hubapp.config_docker) and Kubernetes (hub.hubapp.config_kube)
share is set here once: named servers, one per permit, listed on SPE's home page; groups,
their roles and the custom scopes the egress service checks; the scopes of a workspace's own
token; the authenticator wiring and the login audit; the audit of service deletions (the idle
culler); whether workspaces stop with the hub; SPE's metric families on /hub/metrics. A
backend adds only its spawner settings and how its services run (a command on one host, an
external URL and token on a cluster): it builds its list of services, with the builders below,
and the roles follow from the names in that list. Must not import `egress`.
"""

from __future__ import annotations

from pathlib import Path

from hub.frontoffice.roles import SCOPE_DESCRIPTIONS as FRONTOFFICE_SCOPES
from hub.hubapp.options import SpeHub
from hub.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"

CUSTOM_SCOPES = {
    "custom:spe:submit": {"description": "Submit outputs of a permit's workspace for output checking."},
    "custom:spe:review": {"description": "Review output requests as an output checker."},
    "custom:spe:release": {"description": "Release approved outputs."},
    "custom:spe:download": {"description": "Download released outputs of one's own permits."},
    "custom:spe:import": {"description": "Ask to import files and packages into one's own permits' workspaces."},
    "custom:spe:audit": {"description": "Read and verify the audit trail."},
    "custom:spe:operate": {"description": "Operate permits, extracts and workspaces."},
    **{scope: {"description": text} for scope, text in FRONTOFFICE_SCOPES.items()},
}

EGRESS_ACCESS = "access:services!service=egress"  # log in to the egress pages (OAuth)
EGRESS_PREFIX = "/services/egress/"  # the egress service's routes (JupyterHub's prefix for the service)
FRONTOFFICE_ACCESS = "access:services!service=frontoffice"  # the front office's pages (catalogue, applications)
CITIZENS_ACCESS = "access:services!service=citizens"  # the citizens' pages (opt-out, who used my data)

GROUP_SCOPES = {
    "researchers": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:submit", "custom:spe:download",
                    "custom:spe:import"],
    "output-checkers": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:review", "custom:spe:release"],
    "auditors": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:audit"],
    # operators run the service but must not see data: server admin, never access:servers
    "operators": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:operate", "admin-ui", "list:users",
                  "read:users", "read:servers", "admin:servers", "read:groups"],
    # the front office (hub.frontoffice): applicants become principal investigators of their permits
    # (workspace, submit, download); the HDAB's assessors and deciders; data holders
    "applicants": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:apply", "custom:spe:submit",
                   "custom:spe:download"],
    "hdab-assessors": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:assess"],
    "hdab-deciders": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:decide"],
    "data-holders": ["self", EGRESS_ACCESS, FRONTOFFICE_ACCESS, "custom:spe:catalogue"],
    # citizens (hub.citizens): their own pages only; linked to a national identifier's keyed hash at login
    "citizens": ["self", CITIZENS_ACCESS],
}

# the workspace's own token (JUPYTERHUB_API_TOKEN) may submit outputs to egress for its user
SERVER_TOKEN_SCOPES = ["access:servers!server", "users:activity!user", "custom:spe:submit!user"]

# SPE's services, by the name JupyterHub knows them under
IDLE_CULLER, LIFECYCLE, RECORDER, EGRESS = "idle-culler", "spe-lifecycle", "session-recorder", "egress"
FRONTOFFICE = "frontoffice"
NOTIFIER = "notifier"  # calls no hub API: no role
CITIZENS = "citizens"  # calls no hub API beyond OAuth: no role
MIRROR = "package-mirror"  # calls no hub API: no role

# the role of each service that calls the hub API: granted when the backend runs that service
SERVICE_ROLES = {
    IDLE_CULLER: {"name": "spe-idle-culler",
                  "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    LIFECYCLE: {"name": "spe-lifecycle", "scopes": ["list:users", "read:users", "read:servers", "delete:servers"]},
    EGRESS: {"name": "spe-egress", "scopes": ["list:users", "read:users", "read:groups", "read:roles:users"]},
    # team members named in an application must have an account (hub.frontoffice.users.HubUsers)
    FRONTOFFICE: {"name": "spe-frontoffice", "scopes": ["read:users:name"]},
}


def make_roles(services: list[str]) -> list[dict]:
    """One role per SPE group, and one per SPE service in `services` (pure)."""
    roles = [{"name": f"spe-{group}", "description": f"SPE {group}", "scopes": scopes, "groups": [group]}
             for group, scopes in GROUP_SCOPES.items()]
    roles += [{**SERVICE_ROLES[name], "services": [name]} for name in services if name in SERVICE_ROLES]
    return roles


def egress_service(url: str, **how: object) -> dict:
    """The `egress` service entry (OAuth for its pages, SPE's scopes in its tokens); `how`:
    started by the hub (`command`, ...) on one host, or an `api_token` when it runs elsewhere."""
    return {"name": EGRESS, "url": url, "oauth_no_confirm": True, "display": True,
            "oauth_client_allowed_scopes": sorted(CUSTOM_SCOPES), **how}


def notifier_service(python: str, **how: object) -> dict:
    """The `notifier` service (hub.notify: mail turned from the audit trail, `spe notify run`):
    no URL, no hub API; run only when an SMTP server is set (hub.notify.settings.mail_configured)."""
    return {"name": NOTIFIER, **how, "command": [python, "-m", "hub.cli", "notify", "run"]}


def frontoffice_service(url: str, **how: object) -> dict:
    """The `frontoffice` service entry (catalogue, applications, fees; hub.frontoffice.web): OAuth
    for its pages, the front office's scopes (and the operator's) in its tokens."""
    scopes = sorted([*FRONTOFFICE_SCOPES, "custom:spe:operate"])
    return {"name": FRONTOFFICE, "url": url, "oauth_no_confirm": True, "display": True,
            "oauth_client_allowed_scopes": scopes, **how}


def citizens_service(url: str, **how: object) -> dict:
    """The `citizens` service entry (hub.citizens.web): OAuth for its pages, no custom scopes."""
    return {"name": CITIZENS, "url": url, "oauth_no_confirm": True, "display": False,
            "oauth_client_allowed_scopes": [], **how}


def idle_culler_service(spe: SpeHub, python: str) -> dict:
    """The idle culler (jupyterhub-idle-culler), run by the hub: stops servers idle longer than
    `spe.idle_timeout_seconds`, keeps the named servers themselves (one per permit)."""
    timeout = spe.idle_timeout_seconds
    return {"name": IDLE_CULLER,
            "command": [python, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}",
                        f"--cull-every={max(60, timeout // 10)}", "--remove-named-servers=false"]}


def lifecycle_command(spe: SpeHub, python: str) -> list[str]:
    """`python -m hub.lifecycle` with this hub's period, grace and audit schedule (hub.lifecycle_audit);
    a backend appends its own flags."""
    return [python, "-m", "hub.lifecycle", "--period-seconds", str(spe.lifecycle_period_seconds),
            "--grace-days", str(spe.extract_grace_days),
            "--checkpoint-every-seconds", str(spe.audit_checkpoint_seconds),
            "--verify-every-seconds", str(spe.audit_verify_seconds)]


def configure_hub(c, spe: SpeHub, settings: Settings, services: list[dict]) -> None:
    """Set everything SPE's hub is on either backend on config `c`; `services` as the backend runs them.

    The one side effect: SPE's metric families join the hub's Prometheus registry."""
    from hub.db import make_engine
    from hub.hubapp.audit_log import make_log_function
    from hub.hubapp.auth import demo_users_file, make_audit_login_hook
    from hub.metrics import install_hub_metrics
    from hub.ui.web import hub_template_vars

    # --- workspaces: one named server per permit, started from SPE's home page
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0  # bounded by the user's permits (the spawner refuses others)
    c.JupyterHub.redirect_to_server = False  # land on the home page that lists the user's permits
    c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]
    c.JupyterHub.template_vars = {"spe_permits": permits_for_home_page(settings.db_url),
                                  **hub_template_vars(settings.db_url)}  # the frame (hub.ui)
    c.JupyterHub.cleanup_servers = spe.stop_workspaces_with_hub
    c.Spawner.server_token_scopes = SERVER_TOKEN_SCOPES

    # --- people: groups come from the authenticator (manage_groups); roles name them, which creates them
    if spe.authenticator == "demo":
        c.JupyterHub.authenticator_class = "hub.hubapp.auth.SpeDemoAuthenticator"
        c.SpeDemoAuthenticator.users_file = str(demo_users_file(settings))
        c.SpeDemoAuthenticator.audit_db_url = settings.db_url
        c.SpeDemoAuthenticator.manage_groups = True
    else:  # the site picks the class (docs/operator-oidc.md); SPE's OIDC authenticator audits refusals here
        c.SpeOIDCAuthenticator.audit_db_url = settings.db_url
    c.JupyterHub.custom_scopes = CUSTOM_SCOPES
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = make_roles([s["name"] for s in services])

    # --- audit and metrics: logins (any authenticator), server deletions by services (the
    # idle culler); spawns and stops are audited by the permit spawner itself
    from hub.citizens.identity import make_citizen_login_hook

    # a citizen's login (group `citizens`) is linked to the keyed hash of its national identifier claim
    c.Authenticator.post_auth_hook = make_citizen_login_hook(settings.db_url, settings.keys_dir,
                                                             inner=make_audit_login_hook(settings.db_url))
    c.JupyterHub.tornado_settings = {"log_function": make_log_function(settings.db_url)}
    install_hub_metrics(make_engine(settings.db_url))


def permits_for_home_page(db_url: str):
    """`spe_permits(user)` for the home page template: the user's active permits, each with its
    server name and whether that workspace runs."""
    def permits(user) -> list[dict]:
        from hub.db import make_engine
        from hub.permits.store import PermitStore
        from hub.naming import server_name_for

        if user is None:
            return []
        out = []
        for p in PermitStore(make_engine(db_url)).active_for_user(user.name):
            server = server_name_for(p.id)
            spawner = user.spawners.get(server) if hasattr(user, "spawners") else None
            out.append({"id": p.id, "title": p.title, "valid_until": str(p.valid_until), "server": server,
                        "running": bool(spawner and spawner.active)})
        return out

    return permits
