"""JupyterHub configuration of SPE on Kubernetes (shipped by the Helm chart, hub/configmap.yaml).

An entry point, the only place that reads the environment: the chart's values file
($SPE_HUB_VALUES), SPE_HOME and SPE_DB_URL, the proxy's and the egress service's tokens, the
pod's IP (SPE_POD_IP, where the front office listens) and the Kubernetes API's address (for the
lifecycle service's backend).
The configuration itself is hub.hubapp.config_kube (the same as on one host, plus the
Kubernetes spawner and services; `hub.config.<Class>.<trait>` last).
"""

import asyncio
import os

from hub.hubapp.config_kube import VALUES_FILE, configure_kube, load_values
from hub.settings import Settings

values = load_values(os.environ.get("SPE_HUB_VALUES") or VALUES_FILE)
settings = Settings.from_env(env=os.environ, actor="hub")
# `c` is provided by JupyterHub when it loads this file
configure_kube(c, values, settings, proxy_token=os.environ["CONFIGPROXY_AUTH_TOKEN"],  # noqa: F821
               egress_api_token=os.environ["SPE_EGRESS_API_TOKEN"], pod_ip=os.environ.get("SPE_POD_IP", ""),
               service_env={k: os.environ[k] for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
                            if k in os.environ})

# Start-up self-check: does the network plugin enforce the workspace NetworkPolicy?
# (hub.spawner.netpolcheck: a probe pod under the policy without the netlock; the answer goes
# to this log, the audit trail and the spe_networkpolicy_enforced metric.) JupyterHub loads
# this file inside its running event loop, so the probe runs beside the hub's own start.
if values["workspace"].get("networkPolicySelfCheck"):
    from hub.spawner.netpolcheck import check_args, start_self_check

    start_self_check(asyncio.get_running_loop(), **check_args(values, db_url=settings.db_url, environ=os.environ))
