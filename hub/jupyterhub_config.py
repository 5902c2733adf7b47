"""JupyterHub configuration of SPE: `jupyterhub -f hub/jupyterhub_config.py` (see `spe hub start`).

An entry point: the only hub-side place that reads the environment (hub.hubapp.options
lists the variables). It prepares the host (internal network + firewall, fail closed) and
then sets the configuration built by `hub.hubapp.config.configure`.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, _ROOT)

from hub.hubapp.config import configure  # noqa: E402
from hub.hubapp.host import egress_available, prepare_host  # noqa: E402
from hub.hubapp.options import HubOptions  # noqa: E402

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
_opts = HubOptions.from_env(os.environ)
_gateway_ip = prepare_host(_opts)
configure(c, _opts, _gateway_ip, egress_available())

# Site configuration on top (production authenticator, TLS, ...): a JupyterHub config file
# named by SPE_HUB_EXTRA_CONFIG, loaded last (docs/operator-oidc.md).
if os.environ.get("SPE_HUB_EXTRA_CONFIG"):
    load_subconfig(os.environ["SPE_HUB_EXTRA_CONFIG"])  # noqa: F821 - provided by JupyterHub
