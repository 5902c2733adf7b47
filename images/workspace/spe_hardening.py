"""Jupyter server hardening for SPE workspaces: closed download routes, a contents root that
symlinks cannot escape.

Loaded by `jupyter_server_config.py` in the workspace image (installed next to the venv's
site-packages). Two parts:

* `default_handlers`: loaded through `ServerApp.extra_services`, which jupyter_server places
  *before* its own handlers, so these patterns win over `/files/`, `/view/` and
  `/nbconvert/` and answer 403. Those routes hand a file to the browser as a download; in a
  secure processing environment results leave only through egress review (EHDS Art. 73(1)(c)).
* `RootedContentsManager`: jupyter_server confines API paths to the root with `abspath`, which
  follows symlinks; a link `work/d -> /data` would serve the extract through the contents API.
  This manager resolves real paths and treats anything outside the root as absent.

Imports only jupyter_server and tornado (it runs inside the image, where `hub` and `egress`
do not exist).
"""

import errno
import os

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

CLOSED_MESSAGE = (
    "Downloading files is disabled in this secure processing environment. "
    "Submit outputs for egress review instead."
)


class ClosedRouteHandler(JupyterHandler):
    """Answer 403 to every method, before authentication or any file access."""

    def prepare(self):
        self.log.warning("spe: refused %s %s (download route closed)", self.request.method, self.request.path)
        raise web.HTTPError(403, CLOSED_MESSAGE, reason="Forbidden")

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(CLOSED_MESSAGE + "\n")

    def check_xsrf_cookie(self):
        # prepare() refuses first; nothing here may depend on a session.
        return None


# Patterns as jupyter_server writes them (base_url is prefixed by the server).
default_handlers = [
    (r"/files/.*", ClosedRouteHandler),
    (r"/files", ClosedRouteHandler),
    (r"/view/.*", ClosedRouteHandler),
    (r"/nbconvert/.*", ClosedRouteHandler),
]


class OutsideRoot(PermissionError, web.HTTPError):
    """404 for the API; EACCES so that directory listings skip the entry silently."""

    def __init__(self, path):
        # pre-formatted: jupyter_server writes log_message as is; '%' doubled for tornado's log
        message = f"{path} is outside root contents directory".replace("%", "%%")
        web.HTTPError.__init__(self, 404, message)
        self.errno = errno.EACCES


class RootedContentsManager(AsyncLargeFileManager):
    """The default file manager, with the root check done on resolved (real) paths."""

    def _get_os_path(self, path):
        os_path = super()._get_os_path(path)
        root = os.path.realpath(self.root_dir)
        real = os.path.realpath(os_path)
        if real != root and not real.startswith(root + os.sep):
            self.log.warning("spe: refused contents path %r (resolves outside the root)", path)
            raise OutsideRoot(path)
        return os_path
