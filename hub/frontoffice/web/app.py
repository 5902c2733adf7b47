"""The front office as a JupyterHub service of its own (`python -m hub.frontoffice.web`), until the
portal service mounts `routes()`: JupyterHub starts it as the service `frontoffice` with
JUPYTERHUB_SERVICE_URL / _PREFIX, its API token and OAuth client; SPE_HOME / SPE_DB_URL locate
the registry. This entry point is the only place here that reads the environment. Must not import
`egress`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import httpserver, web

from hub.db import make_engine
from hub.frontoffice.context import make_frontoffice
from hub.frontoffice.users import AnyDirectory, DemoUsers, HubUsers
from hub.frontoffice.web.handlers import routes
from hub.hubapp.auth import demo_users_file
from hub.settings import Settings
from hub.ui.web import frame_handlers

log = logging.getLogger("spe.frontoffice")


def make_app(settings: Settings, users, *, prefix: str = "/services/frontoffice/", cookie_secret: bytes | None = None,
             worker_threads: int = 4) -> web.Application:
    engine = make_engine(settings.db_url)
    fo = make_frontoffice(engine, settings, users)
    return web.Application(
        [(prefix + "oauth_callback", HubOAuthCallbackHandler), *frame_handlers(prefix), *routes(prefix)],
        frontoffice=fo,
        frontoffice_prefix=prefix,
        frontoffice_executor=ThreadPoolExecutor(worker_threads, thread_name_prefix="frontoffice"),
        cookie_secret=cookie_secret or os.urandom(32),
        xsrf_cookies=False,  # checked after authentication (FrontOfficeHandler.prepare)
        autoescape="xhtml_escape",
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env(actor="frontoffice")
    settings.ensure_dirs()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/frontoffice/"
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8120")
    directories = [DemoUsers(demo_users_file(settings))]
    if os.environ.get("JUPYTERHUB_API_URL") and os.environ.get("JUPYTERHUB_API_TOKEN"):
        directories.insert(0, HubUsers(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]))
    app = make_app(settings, AnyDirectory(*directories), prefix=prefix)
    server = httpserver.HTTPServer(app, max_body_size=1024 * 1024, xheaders=True)

    async def serve():
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        log.info("front office listening on %s%s", url.geturl(), prefix)
        await asyncio.Event().wait()

    asyncio.run(serve())
