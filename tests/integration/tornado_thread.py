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
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(15):
            raise RuntimeError("tornado server did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _shutdown(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()  # keep-alive connections too: no socket left open
        self.loop.stop()

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self.thread.join(10)
