"""JupyterHub configuration of SPE on one Docker host: `jupyterhub -f hub/jupyterhub_config.py` (`spe hub start`).

An entry point: the only hub-side place that reads the environment. Settings come from the
SPE_* variables (hub.hubapp.options.ENVIRONMENT), overridden by `c.SpeHub` / `c.SpeDockerHub` in
the site's config file named by SPE_HUB_EXTRA_CONFIG (production authenticator, TLS, ...;
docs/operator-oidc.md), whose other settings are applied last, over SPE's. The host is prepared
(internal network + firewall, fail closed) before the configuration of hub.hubapp.config_docker
is set.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, _ROOT)

from hub.hubapp.config_docker import configure_docker  # noqa: E402
from hub.hubapp.host import egress_available, prepare_host  # noqa: E402
from hub.hubapp.options import settings_from, site_config  # noqa: E402
from hub.settings import Settings  # noqa: E402

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
_settings = Settings.from_env(env=os.environ)  # SPE_HOME, SPE_DB_URL: as for every spe command
_site = site_config(os.environ.get("SPE_HUB_EXTRA_CONFIG"))
_spe = settings_from(os.environ, _site)
_tokens = None
if _spe.supervised:  # the services run beside the hub under supervisord (hub.hubapp.supervise)
    from hub.hubapp.supervisor_run import load_service_tokens  # noqa: E402

    _tokens = load_service_tokens(_settings.hub_dir)
configure_docker(c, _spe, _settings, prepare_host(_spe, _settings), egress_available(), _tokens)
c.merge(_site)
