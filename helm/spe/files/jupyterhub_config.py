"""JupyterHub configuration of SPE on Kubernetes (shipped by the Helm chart, hub/configmap.yaml).

The chart renders the values this file needs into a Secret mounted at SPE_HUB_VALUES
(default /usr/local/etc/spe/values.yaml): the names of the chart's Services and volumes,
the workspace settings, and `hub.config`, the traitlets passed through as
`hub.config.<Class>.<trait>` (applied last, so an operator can override anything here).
This is the entry point: the only place that reads the environment.
"""

import asyncio
import os
from pathlib import Path

import yaml

values = yaml.safe_load(Path(os.environ.get("SPE_HUB_VALUES", "/usr/local/etc/spe/values.yaml")).read_text())
names = values["names"]
ws = values["workspace"]

# Hub and proxy run in separate pods: the proxy is not started by the hub.
c.JupyterHub.hub_bind_url = "http://:8081"
c.JupyterHub.hub_connect_url = f"http://{names['hub']}:8081"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{names['proxyApi']}:8001"
c.ConfigurableHTTPProxy.auth_token = os.environ["CONFIGPROXY_AUTH_TOKEN"]
c.JupyterHub.cleanup_servers = False  # a hub restart must not kill running workspaces
if values["registryDb"] == "sqlite":
    c.JupyterHub.db_url = "sqlite:////srv/spe/state/jupyterhub.sqlite"

# One workspace per (permit, user): the named server's name is the permit id.
c.JupyterHub.allow_named_servers = True
c.JupyterHub.spawner_class = "hub.spawner.kube.PermitKubeSpawner"
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
c.PermitKubeSpawner.spe_home = "/srv/spe"
c.PermitKubeSpawner.spe_db_url = os.environ["SPE_DB_URL"]
c.PermitKubeSpawner.extracts_claim = names["extracts"]
c.PermitKubeSpawner.workspace_labels = ws["labels"]
c.PermitKubeSpawner.hub_service = f"{names['hub']}:8081"
c.PermitKubeSpawner.egress_service = f"{names['egress']}:{values['egressPort']}"
c.PermitKubeSpawner.allow_dns = ws["allowDNS"]
c.PermitKubeSpawner.seccomp_field = ws["seccompField"]
c.PermitKubeSpawner.netlock_enabled = ws["netlock"]["enabled"]
c.PermitKubeSpawner.netlock_image = ws["netlock"]["image"]
c.PermitKubeSpawner.netlock_image_pull_policy = ws["netlock"]["pullPolicy"]

# The audit trail: logins (any authenticator), server deletions by services (the idle culler);
# spawns and stops are audited by the permit spawner. SPE metrics join /hub/metrics.
from hub.db import make_engine  # noqa: E402
from hub.hubapp.audit_log import make_log_function  # noqa: E402
from hub.hubapp.auth import make_audit_login_hook  # noqa: E402
from hub.metrics import install_hub_metrics  # noqa: E402

c.Authenticator.post_auth_hook = make_audit_login_hook(os.environ["SPE_DB_URL"])
c.JupyterHub.tornado_settings = {"log_function": make_log_function(os.environ["SPE_DB_URL"])}
install_hub_metrics(make_engine(os.environ["SPE_DB_URL"]))

# Start-up self-check: does the network plugin enforce the workspace NetworkPolicy?
# (hub.spawner.netpolcheck: a probe pod under the policy without the netlock; the answer goes
# to this log, the audit trail and the spe_networkpolicy_enforced metric.) JupyterHub loads
# this file inside its running event loop, so the probe runs beside the hub's own start.
if ws.get("networkPolicySelfCheck"):
    from hub.spawner.netpolcheck import check_args, start_self_check  # noqa: E402

    start_self_check(asyncio.get_running_loop(),
                     **check_args(values, db_url=os.environ["SPE_DB_URL"], environ=os.environ))

# SPE's roles and scopes, as on Docker (hub.hubapp.config): groups researchers, output-checkers,
# auditors, operators; a workspace's own token may submit outputs for its user.
from hub.hubapp.config import CUSTOM_SCOPES, SERVER_TOKEN_SCOPES, egress_service, make_roles  # noqa: E402

c.JupyterHub.custom_scopes = CUSTOM_SCOPES
c.KubeSpawner.server_token_scopes = SERVER_TOKEN_SCOPES

# The egress service is an external JupyterHub service (its own pod, the chart's egress
# Deployment), proxied under /services/egress/: it authenticates people and workspace tokens
# through the hub API with its own token (the hub Secret's egress-api-token, in both pods).
c.JupyterHub.services = [egress_service(f"http://{names['egress']}:{values['egressPort']}",
                                        api_token=os.environ["SPE_EGRESS_API_TOKEN"])]
c.JupyterHub.load_roles = make_roles(["egress"])

# hub.config passthrough (as zero-to-jupyterhub): last, so it wins. Two lists are extended
# instead of replaced, so that extra services and roles do not drop the chart's own.
EXTENDED = {("JupyterHub", "services"), ("JupyterHub", "load_roles")}
for class_name, traits in (values.get("config") or {}).items():
    for trait, value in (traits or {}).items():
        if (class_name, trait) in EXTENDED and isinstance(value, list):
            value = list(getattr(c[class_name], trait)) + value
        setattr(c[class_name], trait, value)
