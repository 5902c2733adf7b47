"""SPE's hub on Kubernetes: what it adds to `hub.hubapp.config.configure_hub`, from the chart's values.

The chart (helm/spe/templates/hub/_values.tpl) renders the values the hub needs into a Secret
mounted at $SPE_HUB_VALUES: the names of its Services and volumes, the workspace settings,
and `config`, the traitlets passed through as `hub.config.<Class>.<trait>`. The hub and the
proxy run in separate pods; workspaces are `PermitKubeSpawner` pods; the egress service runs in
its own pod and is registered with its URL and token. The session recorder runs in its own pod
too (the chart's recorder Deployment and Service): every workspace is reached through it, and a
hub pod restart neither interrupts nor escapes the recording. As on one host, the idle culler,
the lifecycle service (with its Kubernetes backend, hub.lifecycle_backends) and the front
office are processes the hub starts, here inside the hub pod. Sets values on `c` only; the chart's config file
(helm/spe/files/jupyterhub_config.py) reads the environment. Must not import `egress`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets.config import Config

from hub.exceptions import InvalidInput, NotFound
from hub.hubapp.config import (LIFECYCLE, citizens_service, configure_hub, egress_service, frontoffice_service,
                                idle_culler_service, lifecycle_command, notifier_service)
from hub.hubapp.options import SpeHub, settings_from
from hub.notify.settings import notifier_environment
from hub.settings import Settings

VALUES_FILE = "/usr/local/etc/spe/values/values.yaml"  # where the chart mounts them in the hub pod
HUB_PORT = 8081
PROXY_API_PORT = 8001
RECORDER_PORT = 8765  # the session recorder's Service (the proxy's only way to a workspace)
FRONTOFFICE_PORT = 8120  # the front office in the hub pod, at the pod's IP (the proxy routes /services/frontoffice/)
CITIZENS_PORT = 8130  # the citizens' service beside it (/services/citizens/)
# hub.config lists that extend the chart's own instead of replacing them
EXTENDED = {("JupyterHub", "services"), ("JupyterHub", "load_roles")}


def load_values(path: str, field: str = "SPE_HUB_VALUES") -> dict:
    """The hub's chart values from `path`; a missing, unreadable or foreign file is one line."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no chart values at {p}")
    try:
        values = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{p} is not valid YAML: {str(err).splitlines()[0]}", field=field) from None
    missing = [k for k in ("namespace", "names", "workspace") if not isinstance(values, dict) or k not in values]
    if missing:
        raise InvalidInput(f"{p} is not the hub's chart values (missing {', '.join(missing)})", field=field)
    return values


def kube_settings(values: dict) -> SpeHub:
    """SpeHub from the chart: its defaults for a cluster, then `hub.config.SpeHub`."""
    chart = Config({"SpeHub": {"authenticator": "oidc"}})  # the site names it: hub.config.JupyterHub.authenticator_class
    return settings_from({}, chart, Config(values.get("config") or {}), cls=SpeHub)


def make_kube_services(spe: SpeHub, values: dict, settings: Settings, *, egress_api_token: str,
                       service_env: dict | None = None, pod_ip: str = "", python: str = sys.executable) -> list[dict]:
    """SPE's services on the cluster that call the hub API: egress in its own pod; the idle
    culler, the lifecycle service and (with `pod_ip`) the front office and the citizens' service as processes of the hub
    pod. (The session recorder calls no hub API: it is not a service of the hub.) `service_env`: what they need of the pod's environment beyond SPE_HOME/SPE_DB_URL (the
    Kubernetes API's address for the lifecycle backend); it never goes on a command line."""
    names = values["names"]
    env = {**(service_env or {}), "SPE_HOME": str(settings.home), "SPE_DB_URL": settings.db_url, "HOME": "/tmp"}
    services = [
        egress_service(f"http://{names['egress']}:{values['egressPort']}", api_token=egress_api_token),
        idle_culler_service(spe, python),
        {"name": LIFECYCLE, "environment": env,
         "command": [*lifecycle_command(spe, python), "--backend", "kube", "--namespace", values["namespace"]]},
    ]
    mail = notifier_environment({}, Config(values.get("config") or {}))
    if mail is not None:  # the chart's config.SpeNotify names an SMTP server: mail on (hub.notify)
        services.append(notifier_service(python, environment={**env, **mail}))
    if pod_ip:
        services.append(frontoffice_service(f"http://{pod_ip}:{FRONTOFFICE_PORT}", environment=env,
                                            command=[python, "-m", "hub.frontoffice.web"]))
        services.append(citizens_service(f"http://{pod_ip}:{CITIZENS_PORT}", environment=env,
                                         command=[python, "-m", "hub.citizens.web"]))
    return services


def configure_kube(c, values: dict, settings: Settings, *, proxy_token: str, egress_api_token: str,
                   service_env: dict | None = None, pod_ip: str = "") -> SpeHub:
    """SPE's hub in the chart's pod: the proxy's and the hub's addresses, the Kubernetes
    spawner behind the session recorder, SPE's services (`make_kube_services`); then what both
    backends share (`configure_hub`); then `hub.config`, last, so that an operator can override
    anything."""
    spe = kube_settings(values)
    names, ws = values["names"], values["workspace"]

    # --- hub and proxy run in separate pods: the hub does not start the proxy
    c.JupyterHub.hub_bind_url = f"http://:{HUB_PORT}"
    c.JupyterHub.hub_connect_url = f"http://{names['hub']}:{HUB_PORT}"
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://{names['proxyApi']}:{PROXY_API_PORT}"
    c.ConfigurableHTTPProxy.auth_token = proxy_token
    if values["registryDb"] == "sqlite":
        c.JupyterHub.db_url = "sqlite:////srv/spe/state/jupyterhub.sqlite"

    # --- workspaces: a pod per (permit, user)
    c.JupyterHub.spawner_class = "hub.spawner.kube.RecordedPermitKubeSpawner"
    c.SessionRecordingMixin.session_recorder_url = f"http://{names['recorder']}:{RECORDER_PORT}"
    c.KubeSpawner.namespace = values["namespace"]
    c.KubeSpawner.enable_user_namespaces = False
    c.KubeSpawner.image = ws["image"]
    c.KubeSpawner.image_pull_policy = ws["pullPolicy"]
    c.KubeSpawner.image_pull_secrets = ws["imagePullSecrets"]
    c.KubeSpawner.uid = ws["uid"]
    c.KubeSpawner.gid = ws["uid"]
    c.KubeSpawner.fs_gid = ws["uid"]
    c.KubeSpawner.start_timeout = ws["startTimeoutSeconds"]
    c.KubeSpawner.storage_capacity = ws["storageCapacity"]
    if ws["storageClassName"]:
        c.KubeSpawner.storage_class = ws["storageClassName"]
    c.PermitKubeSpawner.spe_home = str(settings.home)
    c.PermitKubeSpawner.spe_db_url = settings.db_url
    c.PermitKubeSpawner.extracts_claim = names["extracts"]
    c.PermitKubeSpawner.workspace_labels = ws["labels"]
    c.PermitKubeSpawner.hub_service = f"{names['hub']}:{HUB_PORT}"
    c.PermitKubeSpawner.egress_service = f"{names['egress']}:{values['egressPort']}"
    # the inflow airlock: approved imports (inflow PVC, imports/<permit>) and the package mirror Service
    c.PermitKubeSpawner.inflow_claim = names.get("inflow", "")
    mirror = values.get("mirror") or {}
    c.PermitKubeSpawner.mirror_service = f"{names['mirror']}:{mirror['port']}" if mirror.get("enabled") else ""
    c.PermitKubeSpawner.allow_dns = ws["allowDNS"]
    c.PermitKubeSpawner.seccomp_field = ws["seccompField"]
    c.PermitKubeSpawner.netlock_enabled = ws["netlock"]["enabled"]
    c.PermitKubeSpawner.netlock_image = ws["netlock"]["image"]
    c.PermitKubeSpawner.netlock_image_pull_policy = ws["netlock"]["pullPolicy"]

    # --- services: egress is the chart's egress Deployment, proxied under /services/egress/; it
    # asks the hub API who a request belongs to with its own token (egress-api-token, both pods)
    services = make_kube_services(spe, values, settings, egress_api_token=egress_api_token,
                                  service_env=service_env, pod_ip=pod_ip)
    configure_hub(c, spe, settings, services)
    apply_passthrough(c, values.get("config") or {})
    return spe


def apply_passthrough(c, config: dict) -> None:
    """`hub.config` (as zero-to-jupyterhub): `config[Class][trait]` set on `c`; the lists of
    EXTENDED are extended, so that extra services and roles do not drop the chart's own."""
    for class_name, traits in config.items():
        for trait, value in (traits or {}).items():
            if (class_name, trait) in EXTENDED and isinstance(value, list):
                value = list(getattr(c[class_name], trait)) + value
            setattr(c[class_name], trait, value)
