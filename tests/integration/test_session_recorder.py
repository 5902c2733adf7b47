"""The session recorder in front of a real `jupyter server`: cells, terminal commands and file
saves reach the audit trail, and killing the logging inside the workspace changes nothing
(the recording happens outside it, on the hub side)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa
import websocket

from hub.audit import verify
from hub.audit.tables import audit_events
from hub.audit.timeline import timeline
from hub.sessionlog.protocol import V1_PROTOCOL
from hub.sessionlog.proxy import make_app
from hub.sessionlog.routes import register_target
from tests.integration.tornado_thread import TornadoThread, free_port
from tests.conftest import stop_process

PREFIX = "/user/alice/P-1/"
TOKEN = uuid.uuid4().hex


@pytest.fixture
def workspace(tmp_path):
    """A plain jupyter server, as a workspace would run it (base_url = the hub prefix)."""
    port = free_port()
    root = tmp_path / "work"
    root.mkdir()
    log = open(tmp_path / "jupyter.log", "w")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "IPYTHONDIR": str(tmp_path / "ipython")}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", f"--ServerApp.base_url={PREFIX}",
                             f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False",
                             f"--ServerApp.root_dir={root}", "--allow-root"], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"{url}{PREFIX}api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError("jupyter server did not start:\n" + (tmp_path / "jupyter.log").read_text())
        time.sleep(0.3)
    try:
        yield url
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def recorder(engine, workspace):
    register_target(engine, PREFIX, workspace, user="alice", permit_id="P-1")
    with TornadoThread(app_factory=lambda: make_app(engine)) as srv:
        yield srv


def _auth():
    return {"Authorization": f"token {TOKEN}"}


def _execute_msg(code: str) -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "username": "alice", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}


def _v1(msg: dict) -> bytes:
    parts = [msg["channel"].encode()] + [json.dumps(msg[k]).encode() for k in
                                          ("header", "parent_header", "metadata", "content")]
    n = len(parts) + 1
    offsets = [8 * (n + 1)]
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return b"".join([n.to_bytes(8, "little")] + [o.to_bytes(8, "little") for o in offsets] + parts)


def _v1_parse(frame: bytes) -> tuple[str, dict, dict, dict]:
    n = int.from_bytes(frame[:8], "little")
    offs = [int.from_bytes(frame[8 * (i + 1):8 * (i + 2)], "little") for i in range(n)]
    parts = [frame[a:b] for a, b in zip(offs, offs[1:])]
    return parts[0].decode(), json.loads(parts[1]), json.loads(parts[2]), json.loads(parts[4])


class Kernel:
    """A kernel reached through the recorder, speaking the JSON or the v1 binary protocol."""

    def __init__(self, base: str, binary: bool):
        r = requests.post(f"{base}{PREFIX}api/kernels", headers=_auth(), json={"name": "python3"}, timeout=60)
        assert r.status_code == 201, r.text
        self.id = r.json()["id"]
        self.binary = binary
        ws_url = base.replace("http", "ws", 1) + f"{PREFIX}api/kernels/{self.id}/channels"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {TOKEN}"],
                                              subprotocols=[V1_PROTOCOL] if binary else None, timeout=60)
        if binary:
            assert self.ws.subprotocol == V1_PROTOCOL

    def run(self, code: str) -> tuple[str, str]:
        """Execute `code`; returns (status, stdout text)."""
        msg = _execute_msg(code)
        if self.binary:
            self.ws.send_binary(_v1(msg))
        else:
            self.ws.send(json.dumps(msg))
        stdout, deadline = [], time.monotonic() + 120
        status, idle = None, False  # shell reply and iopub idle can arrive in either order
        while time.monotonic() < deadline:
            frame = self.ws.recv()
            if isinstance(frame, bytes):
                channel, header, parent, content = _v1_parse(frame)
            else:
                m = json.loads(frame)
                channel, header, parent, content = m["channel"], m["header"], m["parent_header"], m["content"]
            if parent.get("msg_id") != msg["header"]["msg_id"]:
                continue
            if header["msg_type"] == "stream":
                stdout.append(content["text"])
            if header["msg_type"] == "execute_reply":
                status = content["status"]
            if header["msg_type"] == "status" and content.get("execution_state") == "idle":
                idle = True
            if status is not None and idle:
                return status, "".join(stdout)
        raise AssertionError("no execute_reply")

    def close(self):
        self.ws.close()


def _events(engine, action):
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events).where(audit_events.c.action == action)
                            .order_by(audit_events.c.seq)).mappings().all()
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "v1-binary"])
def test_cell_through_the_recorder_is_audited(engine, recorder, binary):
    k = Kernel(recorder.url, binary)
    try:
        status, out = k.run("print('zq' * 3)")
    finally:
        k.close()
    assert (status, out.strip()) == ("ok", "zqzqzq")
    cells = [e for e in _events(engine, "session.cell") if e["detail"]["code"] == "print('zq' * 3)"]
    assert len(cells) == 1
    cell = cells[0]
    assert (cell["actor"], cell["permit_id"], cell["object_id"], cell["role"]) == ("alice", "P-1", k.id, "researcher")
    assert cell["detail"]["kernel_id"] == k.id and cell["detail"]["code_bytes"] == len("print('zq' * 3)")
    deadline = time.monotonic() + 10
    while not _events(engine, "session.cell_output") and time.monotonic() < deadline:
        time.sleep(0.1)
    output = _events(engine, "session.cell_output")[-1]["detail"]
    assert output["output_bytes"] > 0 and output["status"] in ("ok", "")  # reply may follow idle
    assert "zqzqzq" not in json.dumps(output)  # the output itself is not stored
    assert verify(engine).ok


def test_killing_the_logging_inside_the_workspace_does_not_suppress_recording(engine, recorder, tmp_path):
    # Stand-in for any logging that runs inside the container, as the researcher's user.
    inside_logger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # in-workspace logger"])
    k = Kernel(recorder.url, binary=False)
    try:
        status, _ = k.run(
            "import os, signal, logging\n"
            f"os.kill({inside_logger.pid}, signal.SIGKILL)\n"
            "logging.disable(logging.CRITICAL)\n"
            "import builtins; builtins.print = lambda *a, **k: None\n")
        assert status == "ok"
        assert inside_logger.wait(10) == -signal.SIGKILL  # the in-workspace logging is gone
        status, _ = k.run("exfiltrate = open('/etc/hostname').read()")
        assert status == "ok"
    finally:
        k.close()
        if inside_logger.poll() is None:
            inside_logger.kill()
    codes = [e["detail"]["code"] for e in _events(engine, "session.cell")]
    assert any("os.kill(" in c for c in codes)
    assert "exfiltrate = open('/etc/hostname').read()" in codes


def test_terminal_commands_and_file_saves_are_audited_and_shown_in_the_timeline(engine, recorder):
    base = recorder.url + PREFIX
    r = requests.post(base + "api/terminals", headers=_auth(), timeout=30)
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    ws = websocket.create_connection(recorder.url.replace("http", "ws", 1) + f"{PREFIX}terminals/websocket/{name}",
                                     header=[f"Authorization: token {TOKEN}"], timeout=30)
    try:
        ws.send(json.dumps(["stdin", "echo he"]))
        ws.send(json.dumps(["stdin", "lx\x7flo-from-terminal\r"]))
        seen, deadline = "", time.monotonic() + 30
        while "hello-from-terminal" not in seen.replace("echo hello-from-terminal", "") and time.monotonic() < deadline:
            try:
                msg = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                raise AssertionError(f"terminal output so far: {seen!r}") from None
            if msg[0] == "stdout":
                seen += msg[1]
    finally:
        ws.close()
    commands = [e["detail"]["command"] for e in _events(engine, "session.terminal")]
    assert "echo hello-from-terminal" in commands

    put = requests.put(base + "api/contents/notes.txt", headers=_auth(), timeout=30,
                       json={"type": "file", "format": "text", "content": "draft table"})
    assert put.status_code in (200, 201), put.text
    saves = _events(engine, "session.file_save")
    assert saves[-1]["detail"]["path"] == "notes.txt" and saves[-1]["detail"]["size_bytes"] > 0

    with engine.connect() as conn:
        lines = [r["summary"] for r in timeline(conn, permit_id="P-1", user="alice")]
    assert "terminal " + name + ": echo hello-from-terminal" in lines
    assert any(line.startswith("saved notes.txt") for line in lines)


def test_unknown_workspace_address_is_404_and_nothing_is_proxied(engine, recorder):
    r = requests.get(recorder.url + "/user/mallory/P-9/api/status", headers=_auth(), timeout=10)
    assert r.status_code == 404
    assert _events(engine, "session.cell") == []
