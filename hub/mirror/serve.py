"""The package mirror process: `python -m hub.mirror.serve --ip IP --port PORT --root DIR`.

One process serves every index: a small WSGI dispatcher reads the index token from the first
path segment and hands the rest of the request to a pypiserver app (pypiserver from PyPI) whose
roots are that index's directory and the shared one:

    GET /<token>/simple/                  PEP 503 project list   ─┐ pypiserver app with roots
    GET /<token>/simple/<project>/        links with #sha256=…    ├ [<root>/<token>, <root>/shared]
    GET /<token>/packages/<wheel>         the wheel              ─┘ (one app per token, cached)
    GET /health                           "Ok" (readiness)

Several pypiserver processes (one per permit) would each need a port, a firewall rule and a
restart when a permit is added; one process with an app per token serves a new permit's index
at once and keeps the workspace's reachable surface to one port. A token without its own
directory sees the shared index only, so the process needs no registry: which token belongs to
which permit is known only to the hub, which gives each workspace its own (`hub.mirror.store`).

Read-only by construction: only GET and HEAD reach pypiserver (uploads, removals and XML-RPC are
405 before it sees them; it has no password file either, so it would refuse them), its fallback
redirect to PyPI is off (an unapproved name is a plain 404, not a hint to go elsewhere), and
only what lies in the two directories is served. Served through tornado's WSGI container on a
thread pool (tornado is already the services' server). An entry point: reads only its arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("spe.mirror")

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
SHARED_DIR = "shared"  # hub.mirror.store.SHARED_DIR (not imported: this process needs no registry)
ALLOWED_METHODS = ("GET", "HEAD")
HEALTH_PATH = "/health"


class MirrorDispatcher:
    """WSGI app: `/<token>/…` to the pypiserver app of that token's index (pure routing; the
    apps read the directories)."""

    def __init__(self, root: Path, max_cached_apps: int = 256):
        self.root = Path(root)
        self.max_cached_apps = max_cached_apps
        self._apps: OrderedDict[tuple[str, bool], object] = OrderedDict()
        self._lock = threading.Lock()

    def roots(self, token: str) -> list[Path]:
        """The token's own directory and the shared one, those that exist."""
        return [d for d in (self.root / token, self.root / SHARED_DIR) if d.is_dir()]

    def app_for(self, token: str):
        roots = self.roots(token)
        if not roots:
            return _empty_index
        key = (token, tuple(roots))  # a directory that appears later gets a new app
        with self._lock:
            app = self._apps.get(key)
            if app is not None:
                self._apps.move_to_end(key)
                return app
        app = make_index_app(roots)
        with self._lock:
            self._apps[key] = app
            while len(self._apps) > self.max_cached_apps:
                self._apps.popitem(last=False)
        return app

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        if path == HEALTH_PATH:
            return _plain(start_response, "200 OK", "Ok\n")
        if method not in ALLOWED_METHODS:
            return _plain(start_response, "405 Method Not Allowed", "the package mirror is read-only\n",
                          [("Allow", ", ".join(ALLOWED_METHODS))])
        _, _, rest = path.partition("/")
        token, slash, inner = rest.partition("/")
        if not _TOKEN.match(token) or not slash or not inner.startswith(("simple", "packages")):
            return _plain(start_response, "404 Not Found", "no such index; pip uses the PIP_INDEX_URL "
                                                           "of your workspace\n")
        scoped = dict(environ, SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + "/" + token, PATH_INFO="/" + inner)
        return self.app_for(token)(scoped, start_response)


def make_index_app(roots: list[Path]):
    """One pypiserver app over `roots`: read-only, no fallback to PyPI, sha256 link fragments,
    the directories listed at each request (a wheel placed a moment ago is served at once)."""
    import pypiserver

    return pypiserver.app(roots=[str(r) for r in roots], disable_fallback=True, hash_algo="sha256",
                          backend_arg="simple-dir", authenticate=["update"], password_file=None,
                          cache_control=None, log_stream=None)


def _empty_index(environ, start_response):
    return _plain(start_response, "404 Not Found", "this index holds no packages yet\n")


def _plain(start_response, status: str, text: str, headers: list | None = None):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(headers or [])])
    return [body]


def serve(root: Path, ip: str, port: int, threads: int = 8) -> None:
    from tornado import httpserver
    from tornado.wsgi import WSGIContainer

    try:
        (root / SHARED_DIR).mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only mount (Kubernetes): the egress service creates it
        pass
    container = WSGIContainer(MirrorDispatcher(root), executor=ThreadPoolExecutor(threads, thread_name_prefix="mirror"))

    async def run():
        server = httpserver.HTTPServer(container, max_body_size=64 * 1024)  # nothing is ever uploaded
        server.listen(port, ip)
        log.info("package mirror serving %s on http://%s:%d/<index token>/simple/", root, ip, port)
        await asyncio.Event().wait()  # until the hub stops the service (SIGTERM)

    asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.mirror.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (the internal network's gateway)")
    parser.add_argument("--port", type=int, default=8110, help="TCP port (default 8110)")
    parser.add_argument("--root", required=True, help="the mirror directory (<SPE_HOME>/mirror)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pypiserver").setLevel(logging.WARNING)  # it logs every request environ at INFO
    if not 1 <= args.port <= 65535:
        print(f"mirror: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    serve(Path(args.root).resolve(), args.ip, args.port, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
