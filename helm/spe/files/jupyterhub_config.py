"""JupyterHub configuration of SPE on Kubernetes (shipped by the Helm chart, hub/configmap.yaml).

The chart renders the values this file needs into a Secret mounted at SPE_HUB_VALUES
(default /usr/local/etc/spe/values.yaml): the names of the chart's Services and volumes,
the workspace settings, and `hub.config`, the traitlets passed through as
`hub.config.<Class>.<trait>` (applied last, so an operator can override anything here).
This is the entry point: the only place that reads the environment.
"""

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
c.PermitKubeSpawner.netlock_enabled = ws["netlock"]["enabled"]
c.PermitKubeSpawner.netlock_image = ws["netlock"]["image"]
c.PermitKubeSpawner.netlock_image_pull_policy = ws["netlock"]["pullPolicy"]

# The egress service is a JupyterHub service, proxied under /services/egress/ for checkers.
c.JupyterHub.services = [{"name": "egress", "url": f"http://{names['egress']}:{values['egressPort']}"}]

# hub.config passthrough (as zero-to-jupyterhub): last, so it wins.
for class_name, traits in (values.get("config") or {}).items():
    for trait, value in (traits or {}).items():
        setattr(c[class_name], trait, value)
