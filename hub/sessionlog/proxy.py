"""The session recorder: a tornado reverse proxy (HTTP + websockets) on the hub side.

Browser -> JupyterHub proxy -> this recorder (127.0.0.1) -> the workspace. Routes come from
`hub.sessionlog.routes` (the spawner registers each workspace). For kernel channel websockets
every `execute_request` is written to the audit trail (`session.cell`: user, permit, kernel,
time, code, size) *before* it is forwarded, so code that cannot be recorded never runs (fail
closed); outputs are not stored, only their size (`session.cell_output`). Terminal keystrokes
are assembled into commands (`session.terminal`), also recorded before the Enter key is
forwarded. A successful contents-API PUT is recorded as `session.file_save`.

Authentication stays with the workspace (the hub's OAuth): the recorder forwards cookies,
tokens, Host and Origin untouched and never relaxes a check. Entry point: `main()`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from tornado import httpclient, httputil, web, websocket

from hub.audit.store import record
from hub.sessionlog.protocol import OUTPUT_MSG_TYPES, CommandAssembler, parse_kernel_frame, parse_terminal_frame
from hub.sessionlog.routes import Route, load_routes, match

log = logging.getLogger("spe.sessionlog")

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}
WS_FORWARD_HEADERS = ("Cookie", "Authorization", "Origin", "Host", "User-Agent", "X-XSRFToken")
MAX_CODE_CHARS = 100_000  # longer cells are recorded truncated, with their full size
_CONTENTS_PUT = re.compile(r"/api/contents/(?P<path>.*)$")


class RouteCache:
    """Routes from the registry DB, reloaded at most every `ttl_seconds` (and on a miss)."""

    def __init__(self, engine: sa.Engine, ttl_seconds: float = 2.0):
        self.engine, self.ttl_seconds = engine, ttl_seconds
        self._routes: list[Route] = []
        self._loaded = 0.0

    def lookup(self, path: str) -> Route | None:
        now = time.monotonic()
        if now - self._loaded > self.ttl_seconds:
            self._reload(now)
        found = match(self._routes, path)
        if found is None and now - self._loaded > 0.2:
            self._reload(now)
            found = match(self._routes, path)
        return found

    def _reload(self, now: float) -> None:
        self._routes = load_routes(self.engine)
        self._loaded = now


class AuditWriter:
    """Audit writes off the event loop, strictly in arrival order (one writer thread)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spe-sessionlog")

    async def record(self, **event) -> int:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._write, event)

    def _write(self, event: dict) -> int:
        with self.engine.begin() as conn:
            return record(conn, **event)


class RecorderState:
    def __init__(self, engine: sa.Engine):
        self.routes = RouteCache(engine)
        self.audit = AuditWriter(engine)
        self._http = None

    @property
    def http(self) -> httpclient.AsyncHTTPClient:
        # Created on first use, inside the event loop that serves the requests.
        if self._http is None:
            self._http = httpclient.AsyncHTTPClient()
        return self._http


def _route_or_404(state: RecorderState, path: str) -> Route:
    route = state.routes.lookup(path)
    if route is None:
        raise web.HTTPError(404, "no workspace is registered at this address")
    return route


class HttpProxy(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, state: RecorderState):
        self.state = state

    def check_xsrf_cookie(self):  # the workspace checks XSRF itself; we forward its headers
        return

    async def _proxy(self):
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            raise web.HTTPError(400, "this websocket path is not proxied by the session recorder")
        route = _route_or_404(self.state, self.request.path)
        headers = httputil.HTTPHeaders()
        for k, v in self.request.headers.get_all():
            if k.lower() not in HOP_BY_HOP:
                headers.add(k, v)
        body = self.request.body if (self.request.body or self.request.method in ("POST", "PUT", "PATCH")) else None
        req = httpclient.HTTPRequest(route.target_url + self.request.uri, method=self.request.method,
                                     headers=headers, body=body, follow_redirects=False, decompress_response=False,
                                     allow_nonstandard_methods=True, request_timeout=300)
        try:
            resp = await self.state.http.fetch(req, raise_error=False)
        except OSError:
            raise web.HTTPError(502, "the workspace is not reachable") from None
        if resp.code == 599:
            raise web.HTTPError(502, "the workspace is not reachable")
        if self.request.method == "PUT" and 200 <= resp.code < 300:
            m = _CONTENTS_PUT.search(self.request.path)
            if m:
                await self.state.audit.record(
                    actor=route.user, role="researcher", action="session.file_save", permit_id=route.permit_id,
                    object_id=m.group("path")[:300],
                    detail={"path": m.group("path"), "size_bytes": len(self.request.body), "status": resp.code})
        self.clear()
        self.set_status(resp.code, resp.reason)
        for k in ("Content-Type", "Server", "Date"):
            self.clear_header(k)
        for k, v in resp.headers.get_all():
            if k.lower() not in HOP_BY_HOP:
                self.add_header(k, v)
        if resp.body and self.request.method != "HEAD":
            self.write(resp.body)
        await self.finish()

    get = head = post = put = patch = delete = options = _proxy


class WsProxy(websocket.WebSocketHandler):
    """Generic websocket pass-through; subclasses inspect frames and may record them."""

    def initialize(self, state: RecorderState):
        self.state = state
        self.upstream = None
        self._pending: list = []
        self._open = False

    def check_origin(self, origin):  # the workspace checks Origin against Host (both forwarded)
        return True

    async def get(self, *args, **kwargs):
        self.route = _route_or_404(self.state, self.request.path)
        headers = httputil.HTTPHeaders()
        for k in WS_FORWARD_HEADERS:
            if k in self.request.headers:
                headers[k] = self.request.headers[k]
        requested = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        target = self.route.target_url.replace("http", "ws", 1) + self.request.uri
        try:
            self.upstream = await websocket.websocket_connect(
                httpclient.HTTPRequest(target, headers=headers, request_timeout=30), subprotocols=requested or None,
                on_message_callback=self._from_upstream, max_message_size=64 * 1024 * 1024)
        except (OSError, httpclient.HTTPClientError, websocket.WebSocketError) as err:
            code = getattr(err, "code", 502)
            raise web.HTTPError(code if code in (401, 403, 404) else 502, "the workspace refused the connection") from None
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols):
        return self.upstream.selected_subprotocol if self.upstream is not None else None

    def open(self, *args):
        self._open = True
        for message in self._pending:
            self._send(message)
        self._pending = []

    async def on_message(self, message):
        try:
            allowed = await self.inspect_client(message)
        except Exception:
            log.exception("session recording failed; closing the connection")
            self.close(1011, "session recording failed")
            return
        if allowed and self.upstream is not None:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def _from_upstream(self, message):
        if message is None:
            self.close()
            return
        try:
            self.inspect_server(message)
        except Exception:  # output accounting must never break the session
            log.exception("could not account a workspace message")
        if self._open:
            self._send(message)
        else:
            self._pending.append(message)

    def _send(self, message):
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            pass

    def on_close(self):
        if self.upstream is not None:
            self.upstream.close()
        self.finish_session()

    async def inspect_client(self, message) -> bool:
        return True

    def inspect_server(self, message) -> None:
        return None

    def finish_session(self) -> None:
        return None


class KernelWsProxy(WsProxy):
    def initialize(self, state: RecorderState):
        super().initialize(state)
        self.outputs: dict[str, int] = {}  # parent msg_id -> output bytes
        self.status: dict[str, str] = {}  # parent msg_id -> execute_reply status

    async def get(self, kernel_id: str):
        self.kernel_id = kernel_id
        await super().get(kernel_id)

    async def inspect_client(self, message) -> bool:
        msg = parse_kernel_frame(message, self.selected_subprotocol)
        if msg is None:
            # A frame we cannot read could carry code we cannot record: refuse it (fail closed).
            await self._record("session.cell", outcome="refused",
                               detail={"kernel_id": self.kernel_id, "code": "", "code_bytes": len(message),
                                       "reason": "unparseable kernel frame"})
            self.close(1008, "unparseable kernel message")
            return False
        if msg.msg_type == "execute_request":
            code = msg.content.get("code", "")
            code = code if isinstance(code, str) else str(code)
            self.outputs[msg.msg_id] = 0
            await self._record("session.cell", detail={
                "kernel_id": self.kernel_id, "code": code[:MAX_CODE_CHARS], "code_bytes": len(code.encode("utf-8")),
                "truncated": len(code) > MAX_CODE_CHARS, "msg_id": msg.msg_id[:100], "session": msg.session[:100],
                "silent": bool(msg.content.get("silent", False)), "frame_bytes": msg.size_bytes})
        return True

    def inspect_server(self, message) -> None:
        if not self.outputs:
            return
        msg = parse_kernel_frame(message, self.selected_subprotocol)
        if msg is None or msg.parent_msg_id not in self.outputs:
            return
        if msg.msg_type in OUTPUT_MSG_TYPES:
            self.outputs[msg.parent_msg_id] += msg.size_bytes
        elif msg.msg_type == "execute_reply":
            self.status[msg.parent_msg_id] = str(msg.content.get("status", ""))[:20]
        elif msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
            # iopub "idle" follows every output of the request (the shell reply may come earlier or later)
            self._output_done(msg.parent_msg_id)

    def _output_done(self, msg_id: str) -> None:
        size = self.outputs.pop(msg_id, 0)
        asyncio.ensure_future(self._record("session.cell_output", detail={
            "kernel_id": self.kernel_id, "output_bytes": size, "msg_id": msg_id[:100],
            "status": self.status.pop(msg_id, "")}))

    def finish_session(self) -> None:
        for msg_id in list(self.outputs):
            self._output_done(msg_id)

    async def _record(self, action: str, outcome: str = "ok", detail: dict | None = None):
        await self.state.audit.record(actor=self.route.user, role="researcher", action=action,
                                      permit_id=self.route.permit_id, object_id=self.kernel_id[:300],
                                      outcome=outcome, detail=detail)


class TerminalWsProxy(WsProxy):
    def initialize(self, state: RecorderState):
        super().initialize(state)
        self.assembler = CommandAssembler()

    async def get(self, name: str):
        self.terminal = name
        await super().get(name)

    async def inspect_client(self, message) -> bool:
        parsed = parse_terminal_frame(message)
        if parsed is None:
            return False  # terminado ignores non-list frames anyway; never forward what we cannot read
        kind, text = parsed
        if kind == "stdin":
            for command in self.assembler.feed(text):
                await self._record(command)
        return True

    async def _record(self, command: str, partial: bool = False):
        await self.state.audit.record(actor=self.route.user, role="researcher", action="session.terminal",
                                      permit_id=self.route.permit_id, object_id=f"terminal/{self.terminal}"[:300],
                                      detail={"terminal": self.terminal, "command": command, "partial": partial})

    def finish_session(self) -> None:
        rest = self.assembler.flush()
        if rest:
            asyncio.ensure_future(self._record(rest, partial=True))


def make_app(engine: sa.Engine, **settings) -> web.Application:
    state = RecorderState(engine)
    kw = {"state": state}
    return web.Application([
        (r".*/api/kernels/([^/]+)/channels", KernelWsProxy, kw),
        (r".*/terminals/websocket/([^/]+)", TerminalWsProxy, kw),
        (r".*/api/events/subscribe", WsProxy, kw),
        (r".*", HttpProxy, kw),
    ], websocket_max_message_size=64 * 1024 * 1024, **settings)


def main(argv=None) -> int:  # pragma: no cover - entry point
    from hub.db import make_engine
    from hub.settings import Settings

    ap = argparse.ArgumentParser(description="SPE session recorder (hub-side reverse proxy)")
    ap.add_argument("--ip", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--home")
    ap.add_argument("--db-url")
    args = ap.parse_args(argv)
    settings = Settings.from_env(home=args.home, db_url=args.db_url, actor="sessionlog")
    settings.configure_logging()
    app = make_app(make_engine(settings.db_url))

    async def run():
        app.listen(args.port, args.ip, xheaders=True)
        log.info("session recorder on %s:%s", args.ip, args.port)
        await asyncio.Event().wait()

    asyncio.run(run())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
