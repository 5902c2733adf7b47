"""The citizens' service as a JupyterHub service (`python -m hub.citizens.web`): JupyterHub starts it
as `citizens` with JUPYTERHUB_SERVICE_URL / _PREFIX, its API token and OAuth client; SPE_HOME /
SPE_DB_URL locate the registry; SPE_OPTOUT_DELAY_DAYS (default 7) is how long a new opt-out may
take to reach live permits; SPE_OPTOUT_PROPAGATE_SECONDS (default 3600) how often it runs the
propagation round (hub.citizens.optout.propagate_due). This entry point is the only place here that
reads the environment. Must not import `egress`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import httpserver, ioloop, web

from hub.citizens.optout import DEFAULT_DELAY_DAYS, check_delay, propagate_due
from hub.citizens.ratelimit import RateLimit
from hub.citizens.web.handlers import routes
from hub.db import make_engine
from hub.exceptions import InvalidInput
from hub.settings import Settings

log = logging.getLogger("spe.citizens")
USAGE_LOOKUPS_PER_MINUTE = 10


def make_app(settings: Settings, *, prefix: str = "/services/citizens/", delay_days: int = DEFAULT_DELAY_DAYS,
             cookie_secret: bytes | None = None, worker_threads: int = 2) -> web.Application:
    return web.Application(
        [(prefix + "oauth_callback", HubOAuthCallbackHandler), *routes(prefix)],
        citizens_engine=make_engine(settings.db_url),
        citizens_prefix=prefix,
        citizens_delay_days=check_delay(delay_days),
        citizens_usage_limit=RateLimit(USAGE_LOOKUPS_PER_MINUTE, 60.0),
        citizens_executor=ThreadPoolExecutor(worker_threads, thread_name_prefix="citizens"),
        cookie_secret=cookie_secret or os.urandom(32),
        xsrf_cookies=False,  # checked after authentication (CitizenHandler.prepare)
        autoescape="xhtml_escape",
    )


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a whole number, not {raw[:20]!r}", field=name)
    return int(raw)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env(actor="citizens")
    settings.ensure_dirs()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/citizens/"
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8130")
    delay = _int_env("SPE_OPTOUT_DELAY_DAYS", DEFAULT_DELAY_DAYS)
    every = max(10, _int_env("SPE_OPTOUT_PROPAGATE_SECONDS", 3600))
    app = make_app(settings, prefix=prefix, delay_days=delay)
    server = httpserver.HTTPServer(app, max_body_size=4 * 1024 * 1024, xheaders=True)
    engine = app.settings["citizens_engine"]

    async def propagate():
        try:
            done = await asyncio.get_running_loop().run_in_executor(
                app.settings["citizens_executor"], lambda: propagate_due(engine, settings, actor="citizens", delay_days=delay))
            for d in done:
                log.info("opt-outs reached %s: extract version %s", d["permit_id"], d["extract_version"])
        except Exception:  # noqa: BLE001 - the next round retries
            log.exception("opt-out propagation round failed")

    async def serve():
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        log.info("citizens' service listening on %s%s", url.geturl(), prefix)
        ioloop.PeriodicCallback(propagate, every * 1000).start()
        await asyncio.Event().wait()

    asyncio.run(serve())
