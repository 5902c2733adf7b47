"""Run a real tornado application on 127.0.0.1 in a background thread (for HTTP tests)."""

from __future__ import annotations

import asyncio
import threading
from hub.hubapp.process import free_loopback_port as free_port  # noqa: E402




class TornadoThread:
    def __init__(self, routes=None, port: int | None = None, app_factory=None, **app_settings):
        self.routes, self.port, self.app_settings = routes, port or free_port(), app_settings
        self.app_factory = app_factory
        self.loop = None

    def __enter__(self) -> "TornadoThread":
        from tornado import httpserver, web

        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            app = self.app_factory() if self.app_factory else web.Application(self.routes, **self.app_settings)
            self.server = httpserver.HTTPServer(app)
            self.server.listen(self.port, "127.0.0.1")
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(15):
            raise RuntimeError("tornado server did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
