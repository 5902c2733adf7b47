"""The egress service: a JupyterHub-managed tornado application (`python -m egress.app`).

JupyterHub starts it as the service `egress` with JUPYTERHUB_SERVICE_URL (where to listen),
JUPYTERHUB_SERVICE_PREFIX (`/services/egress/`), JUPYTERHUB_API_TOKEN / _API_URL (to
introspect tokens) and the OAuth client settings; SPE_HOME / SPE_DB_URL locate the registry.
This entry point is the only place that reads the environment; everything below receives
values. Settings are traitlets with help texts (`--help-all`), units in their names.

What the hub configuration must grant (otherwise the service refuses, fail closed):
- workspace server tokens carry the submit scope:
  `c.Spawner.server_token_scopes = ["access:servers!server", "users:activity!user", "custom:spe:submit!user"]`;
- people who use the pages hold `access:services!service=egress` (OAuth to this service) and
  the service lists the custom scopes in `oauth_client_allowed_scopes`, so the browser
  session's token carries `custom:spe:review` etc.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import httpserver, web
from traitlets import Float, Integer, Unicode, default
from traitlets.config import Application

from egress import extension
from egress.business import EgressService
from egress.web import api, dp, pages
from egress.web.auditor import auditor_handlers
from egress.web.base import BaseHandler
from egress.web.metrics import metrics_handlers
from egress.web.register import register_handlers
from hub.db import make_engine
from hub.settings import Settings

HERE = Path(__file__).parent / "web"
MAX_SMALL_BODY_BYTES = 2 * 1024 * 1024
log = logging.getLogger("spe.egress")


class EgressApp(Application):
    name = "spe-egress"
    description = "SPE egress review service (JupyterHub service)"

    service_url = Unicode(help="URL this service listens on (default $JUPYTERHUB_SERVICE_URL, else http://127.0.0.1:8100)."
                          ).tag(config=True)
    service_prefix = Unicode(help="URL prefix of every route (default $JUPYTERHUB_SERVICE_PREFIX, else /services/egress/)."
                             ).tag(config=True)
    spe_home = Unicode(help="SPE state directory (default $SPE_HOME or ./.spe).").tag(config=True)
    db_url = Unicode(help="Registry database URL (default $SPE_DB_URL or SQLite in the SPE home).").tag(config=True)
    max_request_bytes = Integer(
        64 * 1024 * 1024,
        help="""Largest upload body in bytes (all files of one request, multipart or base64 JSON).
        Counted while the body is read; a larger body is answered 413 and never stored. Each file
        is also bounded by its permit's egress.max_file_bytes (default 16 MiB).""").tag(config=True)
    provenance_timeout_seconds = Float(
        30.0, help="Time limit of one provenance re-execution (DuckDB is interrupted after it).").tag(config=True)
    provenance_memory_limit = Unicode(
        "512MB", help="DuckDB memory limit of one provenance re-execution (no spilling to disk).").tag(config=True)
    worker_threads = Integer(
        4, help="Threads that run checks and database work off the event loop (each re-execution uses one)."
    ).tag(config=True)

    @default("service_url")
    def _service_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8100"

    @default("service_prefix")
    def _service_prefix(self):
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/egress/"
        return prefix if prefix.endswith("/") else prefix + "/"

    @default("spe_home")
    def _spe_home(self):
        return os.environ.get("SPE_HOME") or ".spe"

    @default("db_url")
    def _db_url(self):
        return os.environ.get("SPE_DB_URL") or ""

    def start(self):
        settings = Settings.from_env(home=self.spe_home, db_url=self.db_url or None, actor="egress")
        settings.ensure_dirs()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        url = urlparse(self.service_url)
        app = make_app(settings, service_prefix=self.service_prefix, max_request_bytes=self.max_request_bytes,
                       provenance_timeout_seconds=self.provenance_timeout_seconds,
                       provenance_memory_limit=self.provenance_memory_limit, worker_threads=self.worker_threads)
        # Small bodies only by default (reviews, DP queries): a large body to any other route is
        # cut off by tornado before it is buffered; the upload handlers raise their own limit.
        server = httpserver.HTTPServer(app, max_body_size=MAX_SMALL_BODY_BYTES, xheaders=True)
        asyncio.run(self._serve(server, url))

    async def _serve(self, server: httpserver.HTTPServer, url) -> None:
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        log.info("egress service listening on %s%s", self.service_url, self.service_prefix)
        await asyncio.Event().wait()  # until JupyterHub stops the service (SIGTERM)


def make_app(settings: Settings, *, service_prefix: str = "/services/egress/", max_request_bytes: int = 64 * 1024 * 1024,
             provenance_timeout_seconds: float = 30.0, provenance_memory_limit: str = "512MB",
             worker_threads: int = 4, cookie_secret: bytes | None = None) -> web.Application:
    """The tornado application (routes under `service_prefix`); no I/O besides the engine."""
    extension.install()  # egress's tables, metric groups and register rows, before the engine creates tables
    engine = make_engine(settings.db_url)
    service = EgressService(engine, settings, provenance_timeout_seconds=provenance_timeout_seconds,
                            provenance_memory_limit=provenance_memory_limit)
    p = service_prefix
    rid = r"(r-[0-9a-f]{16})"
    routes = [
        (p + r"api/requests", api.RequestsHandler),
        (p + rf"api/requests/{rid}", api.RequestHandler),
        (p + rf"api/requests/{rid}/versions", api.VersionsHandler),
        (p + rf"api/requests/{rid}/reviews", api.ReviewsHandler),
        (p + rf"api/requests/{rid}/release", api.ReleaseHandler),
        (p + rf"api/requests/{rid}/withdraw", api.WithdrawHandler),
        (p + rf"api/requests/{rid}/files/([^/]+)", api.DownloadHandler),
        (p + r"api/releases", api.ReleasesHandler),
        (p + r"oauth_callback", HubOAuthCallbackHandler),
        (p + r"queue", pages.QueuePageHandler),
        (p + rf"requests/{rid}", pages.RequestPageHandler),
        (p + rf"requests/{rid}/review", pages.ReviewFormHandler),
        (p + rf"requests/{rid}/release", pages.ReleaseFormHandler),
        (p + rf"requests/{rid}/withdraw", pages.WithdrawFormHandler),
        (p + r"static/(.*)", web.StaticFileHandler, {"path": str(HERE / "static")}),
        (p + r"?", pages.HomeHandler),
    ]
    routes[:0] = dp.routes(p)  # the DP gateway
    # public transparency register, read-only auditor pages (auditor scope), Prometheus metrics
    routes[:0] = (register_handlers(p, engine) + auditor_handlers(p, engine, base=BaseHandler)
                  + metrics_handlers(engine, p))
    return web.Application(
        routes,
        template_path=str(HERE / "templates"),
        egress_service=service,
        egress_executor=ThreadPoolExecutor(worker_threads, thread_name_prefix="egress"),
        service_prefix=service_prefix,
        max_request_bytes=max_request_bytes,
        cookie_secret=cookie_secret or os.urandom(32),
        xsrf_cookies=False,  # checked after authentication in BaseHandler.prepare (token requests exempt)
        autoescape="xhtml_escape",
    )


def main(argv=None):
    app = EgressApp()
    app.initialize(argv if argv is not None else sys.argv[1:])
    app.start()


if __name__ == "__main__":
    main()
