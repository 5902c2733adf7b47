"""The session recorder: a tornado reverse proxy (HTTP + websockets) on the hub side.

Browser -> JupyterHub proxy -> this recorder (127.0.0.1) -> the workspace. Routes come from
`hub.sessionlog.routes` (the spawner registers each workspace). For kernel channel websockets
every `execute_request` is written to the audit trail (`session.cell`: user, permit, kernel,
time, code, size) *before* it is forwarded, so code that cannot be recorded never runs (fail
closed); outputs are not stored, only their size (`session.cell_output`). Terminal keystrokes
are assembled into commands (`session.terminal`), also recorded before the Enter key is
forwarded. A successful contents-API PUT is recorded as `session.file_save`.

The browser is also an egress channel, governed here (`outflow` for the rules, `meter` and
`meterdb` for the daily budget, `frames` for the messages the recorder writes itself):
contents reads are held (bounded) and judged by their bytes before any of it is sent; uploads
are judged the same way before they reach the workspace; every other response is streamed
chunk by chunk with back-pressure (memory stays flat whatever its size); kernel, terminal and
HTTP bytes are charged to the (permit, user, day) meter, cut above 2 MiB a message, and
withheld once the day's budget is used up, with notices to the researcher and audit events.
`<prefix>spe/meter` answers the researcher's own meter.

Authentication stays with the workspace (the hub's OAuth): the recorder forwards cookies,
tokens, Host and Origin untouched and never relaxes a check. Entry point: `main()`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from tornado import httpclient, httputil, ioloop, web, websocket

from hub.audit.store import record
from hub.sessionlog import frames
from hub.sessionlog.meter import (Charge, Key, meter_summary, today, truncated_text, warning_text,
                                  withheld_text)
from hub.sessionlog.meterdb import MeterBook
from hub.sessionlog.outflow import (AUDIT_READ_ABOVE_BYTES, IMPORT_HINT, MAX_KERNEL_MESSAGE_BYTES, contents_read,
                                    contents_write, is_static, judge_model, judge_upload, max_body_bytes,
                                    refusal_message)
from hub.sessionlog.protocol import OUTPUT_MSG_TYPES, CommandAssembler, parse_kernel_frame, parse_terminal_frame
from hub.sessionlog.routes import Route, load_routes, match

log = logging.getLogger("spe.sessionlog")

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}
WS_FORWARD_HEADERS = ("Cookie", "Authorization", "Origin", "Host", "User-Agent", "X-XSRFToken")
MAX_STREAMED_BYTES = 1 << 40
METER_PAGE = "spe/meter"  # under a workspace's prefix: the researcher's meter of today
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
        self.meter = MeterBook(engine)
        self._http = None
        self._flusher = None

    def meter_key(self, route: Route) -> Key:
        if self._flusher is None:  # started on first use, inside the serving loop
            self._flusher = ioloop.PeriodicCallback(self._flush, 1000)
            self._flusher.start()
        return Key(route.permit_id or "", route.user, today())

    async def _flush(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self.audit.executor, self.meter.flush)
        except Exception:
            log.exception("could not write the byte meter (kept for the next write)")

    def withheld(self, route: Route, channel: str, obj: str, size: int, sha, messages: int = 1) -> None:
        """Audit output withheld because today's budget is used up (`sha`: a running SHA-256 of it)."""
        asyncio.ensure_future(self.audit.record(
            actor=route.user, role="researcher", action="session.output_withheld", outcome="refused",
            permit_id=route.permit_id, object_id=obj[:300],
            detail={"channel": channel, "object": obj[:300], "size_bytes": size, "messages": messages,
                    "sha256": sha.hexdigest(), "day": today()}))

    def warned(self, route: Route, charge: Charge) -> None:
        asyncio.ensure_future(self.audit.record(
            actor=route.user, role="researcher", action="session.meter_warning", permit_id=route.permit_id,
            object_id=route.user, detail={"user": route.user, "used_bytes": charge.used_bytes,
                                          "budget_bytes": charge.budget_bytes, "day": today()}))

    @property
    def http(self) -> httpclient.AsyncHTTPClient:
        # Created on first use, inside the event loop that serves the requests.
        if self._http is None:
            # bodies are streamed (never held), so no cap on their size beyond the meter's
            self._http = httpclient.AsyncHTTPClient(max_body_size=MAX_STREAMED_BYTES)
        return self._http


def _route_or_404(state: RecorderState, path: str) -> Route:
    route = state.routes.lookup(path)
    if route is None:
        raise web.HTTPError(404, "no workspace is registered at this address")
    return route


class HttpProxy(web.RequestHandler):
    """Plain HTTP, streamed both ways' worth of memory: a response body is passed on chunk by
    chunk as the browser takes it (back-pressure), except a contents-API read, which is held
    (at most `outflow.max_body_bytes`) to be judged before any byte of it is sent."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, state: RecorderState):
        self.state = state
        self._upload = None  # the verdict on a contents PUT's body

    def check_xsrf_cookie(self):  # the workspace checks XSRF itself; we forward its headers
        return

    def _upstream_request(self, route: Route, **kw) -> httpclient.HTTPRequest:
        headers = httputil.HTTPHeaders()
        for k, v in self.request.headers.get_all():
            if k.lower() not in HOP_BY_HOP:
                headers.add(k, v)
        body = self.request.body if (self.request.body or self.request.method in ("POST", "PUT", "PATCH")) else None
        return httpclient.HTTPRequest(route.target_url + self.request.uri, method=self.request.method,
                                      headers=headers, body=body, follow_redirects=False, decompress_response=False,
                                      allow_nonstandard_methods=True, request_timeout=300, **kw)

    def _start_response(self, code: int, reason: str, headers: httputil.HTTPHeaders) -> None:
        self.clear()
        self.set_status(code, reason)
        for k in ("Content-Type", "Server", "Date"):
            self.clear_header(k)
        for k, v in headers.get_all():
            if k.lower() not in HOP_BY_HOP:
                self.add_header(k, v)

    async def _proxy(self):
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            raise web.HTTPError(400, "this websocket path is not proxied by the session recorder")
        route = _route_or_404(self.state, self.request.path)
        if self.request.path == route.prefix + METER_PAGE and self.request.method == "GET":
            await self._meter_page(route)
            return
        written = contents_write(self.request.method, self.request.path, route.prefix)
        if written is not None:
            limits = self.state.meter.limits(route.permit_id or "")
            self._upload = judge_upload(written, self.request.body, limits)
            if not self._upload.allowed:
                await self._upload_refused(route, written, self._upload)
                return
        read = contents_read(self.request.method, self.request.path, self.request.query, route.prefix)
        if read is not None:
            await self._contents_read(route, read)
        else:
            await self._stream(route)

    async def _stream(self, route: Route):
        meter_key = None if is_static(self.request.path, route.prefix) else self.state.meter_key(route)
        head: dict = {"headers": httputil.HTTPHeaders()}
        self._cut = False

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                start = httputil.parse_response_start_line(line.strip())
                head.update(code=start.code, reason=start.reason, headers=httputil.HTTPHeaders())
            elif line.strip():
                head["headers"].parse_line(line)

        def on_chunk(chunk: bytes):
            if self._cut:
                return None
            if meter_key is not None and self.request.method != "HEAD":
                charge = self.state.meter.charge(meter_key, len(chunk))
                if not charge.delivered:
                    self._cut = True
                    self.state.withheld(route, "http", self.request.path[:300], len(chunk), hashlib.sha256(chunk))
                    return None
            if not self._headers_written:
                self._start_response(head["code"], head["reason"], head["headers"])
            self.write(chunk)
            return self.flush()

        req = self._upstream_request(route, header_callback=on_header, streaming_callback=on_chunk)
        try:
            resp = await self.state.http.fetch(req, raise_error=False)
        except (OSError, httputil.HTTPInputError, httpclient.HTTPError):
            log.warning("proxying %s failed", self.request.path, exc_info=True)
            resp = None
        if resp is None or resp.code == 599:
            if not self._headers_written:
                raise web.HTTPError(502, "the workspace is not reachable")
            self.request.connection.close()
            return
        if self._cut:
            if not self._headers_written:
                self._refuse(429, self.request.path, withheld_text(self.state.meter.entry(meter_key).budget))
                return
            self.request.connection.close()  # the budget ran out part way: end the response short
            return
        await self._record_save(route, resp.code)
        if not self._headers_written:
            self._start_response(resp.code, resp.reason, head["headers"] if "code" in head else resp.headers)
        await self.finish()

    async def _meter_page(self, route: Route) -> None:
        """The researcher's own meter of today, for whoever the workspace itself lets in (its
        `api/me` answers 200 to the same cookies or token): nothing of it comes from the workspace."""
        probe = httpclient.HTTPRequest(route.target_url + route.prefix + "api/me", method="GET",
                                       headers=self._upstream_request(route).headers, follow_redirects=False,
                                       request_timeout=30)
        try:
            resp = await self.state.http.fetch(probe, raise_error=False)
        except OSError:
            raise web.HTTPError(502, "the workspace is not reachable") from None
        if resp.code != 200:
            raise web.HTTPError(403, "log in to this workspace first")
        key = self.state.meter_key(route)
        entry = self.state.meter.entry(key)
        info = {"permit": key.permit_id, "user": key.user, "day": key.day, "used_bytes": entry.used,
                "budget_bytes": entry.budget, "withheld_bytes": entry.withheld,
                "used_percent": round(100 * entry.used / max(entry.budget, 1), 1), "withholding": entry.exhausted}
        self.set_header("Cache-Control", "no-store")
        if self.get_argument("format", "") == "json":
            self.finish(info)
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(meter_summary(info) + "\n")

    async def _record_save(self, route: Route, code: int) -> None:
        if self.request.method == "PUT" and 200 <= code < 300:
            m = _CONTENTS_PUT.search(self.request.path)
            if m:
                upload = self._upload
                data = upload.data if upload is not None else b""
                await self.state.audit.record(
                    actor=route.user, role="researcher", action="session.file_save", permit_id=route.permit_id,
                    object_id=m.group("path")[:300],
                    detail={"path": m.group("path"), "size_bytes": len(self.request.body), "status": code,
                            "kind": upload.kind if upload is not None else "",
                            "sha256": hashlib.sha256(data).hexdigest() if data else ""})

    async def _upload_refused(self, route: Route, path: str, verdict) -> None:
        data = self.request.body or b""
        await self.state.audit.record(
            actor=route.user, role="researcher", action="session.upload_refused", outcome="refused",
            permit_id=route.permit_id, object_id=path[:300],
            detail={"path": path, "reason": verdict.reason, "kind": verdict.kind, "size_bytes": verdict.size_bytes,
                    "body_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        self.clear()
        self.set_status(403)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": refusal_message(path, verdict.reason, IMPORT_HINT), "reason": None}))

    async def _contents_read(self, route: Route, read):
        limits = self.state.meter.limits(route.permit_id or "")
        cap = max_body_bytes(limits)
        body = bytearray()
        self._cut = False

        def on_chunk(chunk: bytes):
            if len(body) + len(chunk) > cap:
                self._cut = True
            elif not self._cut:
                body.extend(chunk)

        try:
            resp = await self.state.http.fetch(self._upstream_request(route, streaming_callback=on_chunk),
                                               raise_error=False)
        except OSError:
            raise web.HTTPError(502, "the workspace is not reachable") from None
        if resp.code == 599:
            raise web.HTTPError(502, "the workspace is not reachable")
        if self._cut:
            await self._contents_refused(route, read.path, f"the response is larger than {cap} bytes")
            return
        if resp.code == 200:
            try:
                model = json.loads(bytes(body))
            except ValueError:
                model = None
            if not isinstance(model, dict):
                await self._contents_refused(route, read.path, "the workspace answered with something unreadable")
                return
            verdict = judge_model(model, limits)
            if not verdict.allowed:
                await self._contents_refused(route, read.path, verdict.reason, verdict)
                return
            key = self.state.meter_key(route)
            charge = self.state.meter.charge(key, len(body))
            sha = hashlib.sha256(verdict.data).hexdigest() if verdict.data else ""
            if not charge.delivered:
                self.state.withheld(route, "contents", read.path, len(body), hashlib.sha256(bytes(body)))
                self._refuse(429, read.path, withheld_text(charge.budget))
                return
            if charge.warn:
                self.state.warned(route, charge)
            if verdict.size_bytes > AUDIT_READ_ABOVE_BYTES:
                await self.state.audit.record(
                    actor=route.user, role="researcher", action="session.contents_read", permit_id=route.permit_id,
                    object_id=read.path[:300], detail={"path": read.path, "size_bytes": verdict.size_bytes,
                                                       "sha256": sha, "kind": verdict.kind})
        elif body:
            self.state.meter.charge(self.state.meter_key(route), len(body))  # an error's body: metered, not judged
        self._start_response(resp.code, resp.reason, resp.headers)
        if body and self.request.method != "HEAD":
            self.write(bytes(body))
        await self.finish()

    async def _contents_refused(self, route: Route, path: str, reason: str, verdict=None) -> None:
        await self.state.audit.record(
            actor=route.user, role="researcher", action="session.contents_refused", outcome="refused",
            permit_id=route.permit_id, object_id=path[:300],
            detail={"path": path, "reason": reason, "kind": getattr(verdict, "kind", ""),
                    "size_bytes": getattr(verdict, "size_bytes", 0)})
        self._refuse(403, path, reason)

    def _refuse(self, code: int, path: str, reason: str) -> None:
        self.clear()
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": refusal_message(path, reason), "reason": None}))

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
        try:
            out = self.meter_server(message)
        except Exception:  # metering fails closed: the message is not passed on
            log.exception("could not meter a workspace message; withheld")
            out = []
        for m in out:
            if self._open:
                self._send(m)
            else:
                self._pending.append(m)

    def meter_server(self, message) -> list:
        """What reaches the browser of one workspace message: charged to today's meter."""
        charge = self.state.meter.charge(self.state.meter_key(self.route), len(message))
        if charge.delivered:
            return [message]
        self.state.withheld(self.route, "websocket", self.request.path, len(message), hashlib.sha256(message
                            if isinstance(message, bytes) else message.encode("utf-8", "surrogatepass")))
        return []

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


def _bytes(message) -> bytes:
    return message if isinstance(message, bytes) else message.encode("utf-8", "surrogatepass")


class Withheld:
    """What was withheld on one connection for one cell or terminal burst: count, size, SHA-256."""

    def __init__(self):
        self.messages, self.size, self.sha, self.started = 0, 0, hashlib.sha256(), time.monotonic()

    def add(self, data: bytes) -> None:
        self.messages += 1
        self.size += len(data)
        self.sha.update(data)


# Messages that keep the notebook working after the budget is used up, re-written to their bare
# protocol fields (so they carry nothing else) and charged against a small allowance over the budget.
_CONTROL = {"status": ("execution_state", ("busy", "idle", "starting")),
            "execute_reply": ("status", ("ok", "error", "aborted"))}


class KernelWsProxy(WsProxy):
    def initialize(self, state: RecorderState):
        super().initialize(state)
        self.outputs: dict[str, int] = {}  # parent msg_id -> output bytes
        self.status: dict[str, str] = {}  # parent msg_id -> execute_reply status
        self.withheld_by_cell: dict[str, Withheld] = {}  # parent msg_id -> what was withheld
        self.noticed: set[str] = set()  # cells already told that their output is withheld

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
        for parent in list(self.withheld_by_cell):
            self._withheld_done(parent)

    def meter_server(self, message) -> list:
        key = self.state.meter_key(self.route)
        meter, sub = self.state.meter, self.selected_subprotocol
        size = len(message)
        msg = frames.decode(message, sub) if size > MAX_KERNEL_MESSAGE_BYTES or meter.entry(key).exhausted \
            else None
        if size > MAX_KERNEL_MESSAGE_BYTES:
            if msg is None:
                self._withhold("", message)
                return []
            original = _bytes(message)
            message = frames.truncated(msg, MAX_KERNEL_MESSAGE_BYTES // 2,
                                       truncated_text(size, MAX_KERNEL_MESSAGE_BYTES // 2), sub)
            header = msg.get("header") or {}
            asyncio.ensure_future(self._record("session.output_truncated", outcome="refused", detail={
                "kernel_id": self.kernel_id, "size_bytes": size, "sha256": hashlib.sha256(original).hexdigest(),
                "shown_bytes": len(message), "msg_type": str(header.get("msg_type", ""))[:50],
                "parent_msg_id": str((msg.get("parent_header") or {}).get("msg_id", ""))[:100]}))
        charge = meter.charge(key, len(message))
        if charge.delivered:
            out = [message]
            if charge.warn:
                self.state.warned(self.route, charge)
                parent = (msg or frames.decode(message, sub) or {}).get("parent_header")
                if parent:
                    out.append(frames.notice(parent, warning_text(charge.used_bytes, charge.budget_bytes), sub))
            return out
        msg = msg or frames.decode(message, sub)
        if msg is None:
            self._withhold("", message)
            return []
        header, parent = msg.get("header") or {}, msg.get("parent_header") or {}
        kind = str(header.get("msg_type", ""))
        parent_id = str(parent.get("msg_id", ""))[:100]
        out = []
        if kind in _CONTROL:
            field, allowed = _CONTROL[kind]
            value = (msg.get("content") or {}).get(field)
            bare = {"channel": str(msg.get("channel", "iopub"))[:10], "header": _bare_header(header),
                    "parent_header": _bare_header(parent), "metadata": {},
                    "content": {field: value if value in allowed else allowed[0]}}
            if kind == "execute_reply":
                count = (msg.get("content") or {}).get("execution_count")
                bare["content"]["execution_count"] = count if isinstance(count, int) else None
            frame = frames.encode(bare, sub)
            if meter.charge(key, len(frame), control=True).delivered:
                out.append(frame)
        else:
            self._withhold(parent_id, message)
        if kind in OUTPUT_MSG_TYPES and parent_id and parent_id not in self.noticed:
            self.noticed.add(parent_id)
            frame = frames.notice(_bare_header(parent), withheld_text(charge.budget_bytes), sub)
            if meter.charge(key, len(frame), control=True).delivered:
                out.append(frame)
        if kind == "status" and (msg.get("content") or {}).get("execution_state") == "idle":
            self._withheld_done(parent_id)
        return out

    def _withhold(self, parent_id: str, message) -> None:
        self.withheld_by_cell.setdefault(parent_id, Withheld()).add(_bytes(message))

    def _withheld_done(self, parent_id: str) -> None:
        w = self.withheld_by_cell.pop(parent_id, None)
        if w is not None:
            self.state.withheld(self.route, "kernel", f"{self.kernel_id}/{parent_id}", w.size, w.sha, w.messages)

    async def _record(self, action: str, outcome: str = "ok", detail: dict | None = None):
        await self.state.audit.record(actor=self.route.user, role="researcher", action=action,
                                      permit_id=self.route.permit_id, object_id=self.kernel_id[:300],
                                      outcome=outcome, detail=detail)


class TerminalWsProxy(WsProxy):
    def initialize(self, state: RecorderState):
        super().initialize(state)
        self.assembler = CommandAssembler()
        self.withheld: Withheld | None = None
        self.told = False  # the researcher was shown that output is withheld

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
        self._withheld_done()

    def meter_server(self, message) -> list:
        key = self.state.meter_key(self.route)
        charge = self.state.meter.charge(key, len(message))
        if charge.delivered:
            self.told = False
            out = [message]
            if charge.warn:
                self.state.warned(self.route, charge)
                out.append(json.dumps(["stdout", "\r\n" + warning_text(charge.used_bytes, charge.budget_bytes) + "\r\n"]))
            return out
        if self.withheld is None:
            self.withheld = Withheld()
        self.withheld.add(_bytes(message))
        out = []
        if not self.told:
            self.told = True
            note = json.dumps(["stdout", "\r\n" + withheld_text(charge.budget_bytes) + "\r\n"])
            if self.state.meter.charge(key, len(note), control=True).delivered:
                out.append(note)
        if time.monotonic() - self.withheld.started > 60:
            self._withheld_done()
        return out

    def _withheld_done(self) -> None:
        if self.withheld is not None:
            w, self.withheld = self.withheld, None
            self.state.withheld(self.route, "terminal", f"terminal/{self.terminal}", w.size, w.sha, w.messages)


def _bare_header(h: dict) -> dict:
    """A header with only its protocol fields, each cut short (nothing else can ride along)."""
    return {k: str(h.get(k, ""))[:100] for k in ("msg_id", "msg_type", "session", "username", "date", "version")}


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
