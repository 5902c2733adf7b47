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
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import httpserver, web
from traitlets import Float, Integer, TraitError, Unicode, default, validate
from traitlets.config import Application

from egress import extension, sandbox
from egress.business import EgressService
from egress.imports.policy import DEFAULT_MAX_IMPORT_BYTES
from egress.imports.service import ImportService, ImportSettings
from egress.sandbox import SandboxSettings, check_size
from egress.web import api, dp, findings, pages
from egress.web.auditor import auditor_handlers
from egress.web.imports import MULTIPART_SLACK_BYTES, routes as import_routes
from egress.web.base import BaseHandler
from egress.web.metrics import metrics_handlers
from egress.web.register import register_handlers
from egress.web.verifier import verifier_handlers
from hub.db import make_engine
from hub.mirror.download import DownloadSettings
from hub.mirror.store import SHARED_DIR
from hub.pipconfig import find_extra_ca_bundle, find_index_url
from hub.settings import Settings
from hub.ui.web import frame_handlers
from hub.staging import ensure_dir

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
    worker_threads = Integer(
        4, help="Threads that run checks, DP queries and database work off the event loop."
    ).tag(config=True)

    # Import requests (the inflow airlock, egress.imports) and the package mirror downloads.
    import_max_bytes = Integer(
        DEFAULT_MAX_IMPORT_BYTES, help="""Largest file a researcher may ask to import, in bytes (default
        50 MiB). Counted while the upload is read: a larger one is answered 413 and never stored.""").tag(config=True)
    mirror_index_url = Unicode(
        help="""The one package index wheels of package import requests are downloaded from, on this
        (operator) side, never by a workspace. Default $SPE_MIRROR_INDEX_URL, else the host pip's
        index (PIP_INDEX_URL, pip.conf), else https://pypi.org/simple.""").tag(config=True)
    mirror_ca_bundle = Unicode(
        help="""Extra CA bundle (PEM) pip trusts for that index, as for the image build. Default
        $SPE_EXTRA_CA_BUNDLE, else PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE or pip's `cert`.""").tag(config=True)
    mirror_python_version = Unicode(
        "3.11", help="The workspaces' Python version: wheels are fetched for it (and for manylinux x86_64).").tag(config=True)

    # The DuckDB sandbox every provenance check and DP query runs in (egress.sandbox).
    sandbox_memory_limit = Unicode(
        "2GB", help="""DuckDB memory limit of each open extract (e.g. '2GB'). A provenance check or DP
        query that needs more spills to the extract's private spill directory instead of failing;
        at most sandbox_max_open_extracts extracts are open at once.""").tag(config=True)
    sandbox_max_spill = Unicode(
        "20GB", help="Largest spill directory of one open extract; a query that needs more is refused (422)."
    ).tag(config=True)
    sandbox_threads = Integer(
        0, help="DuckDB threads of each open extract; 0 = one per CPU core.").tag(config=True)
    sandbox_timeout_seconds = Float(
        30.0, help="""Time limit in seconds of one provenance check or DP query in DuckDB: the statement
        is interrupted and the request refused (422).""").tag(config=True)
    sandbox_temp_dir = Unicode(
        help="""Directory under which each open extract gets its private spill directory (mode 0700,
        removed when the extract is closed). Default: the system temp directory ($TMPDIR).""").tag(config=True)
    sandbox_max_open_extracts = Integer(
        8, help="""Open extract databases kept for reuse (least recently used closed first); each
        may use up to sandbox_memory_limit.""").tag(config=True)

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

    @default("mirror_index_url")
    def _mirror_index_url(self):
        return find_index_url(os.environ)

    @default("mirror_ca_bundle")
    def _mirror_ca_bundle(self):
        found = find_extra_ca_bundle(os.environ)
        return str(found) if found else ""

    @default("sandbox_temp_dir")
    def _sandbox_temp_dir(self):
        return tempfile.gettempdir()

    @validate("sandbox_memory_limit", "sandbox_max_spill")
    def _valid_size(self, proposal):
        try:
            return check_size(proposal.trait.name, proposal.value)
        except ValueError as err:
            raise TraitError(str(err)) from None

    def sandbox_settings(self) -> SandboxSettings:
        try:
            return SandboxSettings(memory_limit=self.sandbox_memory_limit, threads=self.sandbox_threads,
                                   timeout_seconds=self.sandbox_timeout_seconds, max_spill=self.sandbox_max_spill,
                                   temp_dir=self.sandbox_temp_dir, max_open_extracts=self.sandbox_max_open_extracts)
        except ValueError as err:
            raise TraitError(str(err)) from None

    def start(self):
        settings = Settings.from_env(home=self.spe_home, db_url=self.db_url or None, actor="egress")
        settings.ensure_dirs()
        for directory in (settings.imports_dir, settings.mirror_dir / SHARED_DIR):  # what workspaces and the mirror read
            ensure_dir(directory)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        url = urlparse(self.service_url)
        sandbox.configure(self.sandbox_settings())
        imports = ImportSettings(max_bytes=self.import_max_bytes, download=DownloadSettings(
            index_url=self.mirror_index_url, ca_bundle=self.mirror_ca_bundle, python_version=self.mirror_python_version))
        app = make_app(settings, service_prefix=self.service_prefix, max_request_bytes=self.max_request_bytes,
                       worker_threads=self.worker_threads, import_settings=imports)
        # Small bodies only by default (reviews, DP queries): a large body to any other route is
        # cut off by tornado before it is buffered; the upload handlers raise their own limit.
        server = httpserver.HTTPServer(app, max_body_size=MAX_SMALL_BODY_BYTES, xheaders=True)
        asyncio.run(self._serve(server, url))

    async def _serve(self, server: httpserver.HTTPServer, url) -> None:
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        log.info("egress service listening on %s%s", self.service_url, self.service_prefix)
        await asyncio.Event().wait()  # until JupyterHub stops the service (SIGTERM)


def make_app(settings: Settings, *, service_prefix: str = "/services/egress/", max_request_bytes: int = 64 * 1024 * 1024,
             worker_threads: int = 4, cookie_secret: bytes | None = None,
             import_settings: ImportSettings | None = None) -> web.Application:
    """The tornado application (routes under `service_prefix`); no I/O besides the engine. The
    DuckDB sandbox's limits are the process's (`egress.sandbox.configure`)."""
    extension.install()  # egress's tables, metric groups and register rows, before the engine creates tables
    engine = make_engine(settings.db_url)
    limits = sandbox.settings()
    service = EgressService(engine, settings, provenance_timeout_seconds=limits.timeout_seconds,
                            provenance_memory_limit=limits.memory_limit)
    import_settings = import_settings or ImportSettings()
    imports = ImportService(engine, settings, service.store, import_settings)
    p = service_prefix
    rid = r"(r-[0-9a-f]{16})"
    routes = [
        (p + r"api/requests", api.RequestsHandler),
        (p + rf"api/requests/{rid}", api.RequestHandler),
        (p + rf"api/requests/{rid}/versions", api.VersionsHandler),
        (p + rf"api/requests/{rid}/reviews", api.ReviewsHandler),
        (p + rf"api/requests/{rid}/release", api.ReleaseHandler),
        (p + rf"api/requests/{rid}/withdraw", api.WithdrawHandler),
        (p + rf"api/requests/{rid}/suppression", api.ApplySuggestionHandler),
        (p + rf"api/requests/{rid}/files/([^/]+)", api.DownloadHandler),
        (p + r"api/releases", api.ReleasesHandler),
        (p + r"oauth_callback", HubOAuthCallbackHandler),
        (p + r"queue", pages.QueuePageHandler),
        (p + rf"requests/{rid}", pages.RequestPageHandler),
        (p + rf"requests/{rid}/review", pages.ReviewFormHandler),
        (p + rf"requests/{rid}/release", pages.ReleaseFormHandler),
        (p + rf"requests/{rid}/withdraw", pages.WithdrawFormHandler),
        (p + rf"requests/{rid}/suppression", pages.ApplySuggestionFormHandler),
        (p + r"static/(.*)", web.StaticFileHandler, {"path": str(HERE / "static")}),
        (p + r"?", pages.HomeHandler),
    ]
    routes[:0] = dp.routes(p) + import_routes(p) + findings.routes(p)  # DP gateway, import requests, findings
    routes[:0] = frame_handlers(p)  # the frame's language switch and stylesheet (hub.ui)
    # public transparency register, read-only auditor pages (auditor scope), Prometheus metrics
    routes[:0] = verifier_handlers(p)  # the auditor's in-browser evidence pack verifier (public, static)
    routes[:0] = (register_handlers(p, engine) + auditor_handlers(p, engine, base=BaseHandler)
                  + metrics_handlers(engine, p))
    return web.Application(
        routes,
        template_path=str(HERE / "templates"),
        egress_service=service,
        egress_executor=ThreadPoolExecutor(worker_threads, thread_name_prefix="egress"),
        service_prefix=service_prefix,
        max_request_bytes=max_request_bytes,
        import_service=imports,
        import_settings=import_settings,
        max_import_request_bytes=import_settings.max_bytes + MULTIPART_SLACK_BYTES,
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
