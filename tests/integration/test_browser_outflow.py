"""The browser as an egress channel, through the session recorder in front of a real `jupyter server`:
contents reads judged by their bytes, the daily byte meter on kernel, terminal and contents
output (warning, truncation, withholding, an operator raise), the audit events and the
Prometheus counters, and a streamed large response.

The workspace here is a plain jupyter server on this host (as in test_session_recorder); the
same attack from inside a real Docker workspace through the real hub is in
test_workspace_outflow.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time

import pytest
import requests
import websocket

from hub.audit import verify
from hub.audit.store import utc_now_iso
from hub.cli import main as spe
from hub.identity import local_operator
from hub.metrics import SpeCollector
from hub.registry_tables import permits
from hub.sessionlog.meterdb import meter_rows
from tests.integration.test_session_recorder import PREFIX, TOKEN, Kernel, _auth, _events, recorder, workspace  # noqa: F401

MIB = 1024 * 1024
BUDGET = 3 * MIB


@pytest.fixture
def small_budget(engine):
    """Permit P-1 with a 3 MiB daily budget and a 4 KiB text cap (its `browser` section)."""
    doc = {"id": "P-1", "browser": {"daily_budget_bytes": BUDGET, "contents_max_bytes": 4096}}
    with engine.begin() as conn:
        conn.execute(permits.insert().values(id="P-1", version=1, status="active", document_json=json.dumps(doc),
                                             updated_at=utc_now_iso()))
    return doc


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"person_id": list(range(200)), "year_of_birth": [1950 + i % 50 for i in range(200)]}),
                   buffer)
    return buffer.getvalue()


def _put(base: str, path: str, content: str, fmt: str = "text") -> None:
    r = requests.put(base + "api/contents/" + path, headers=_auth(), timeout=30,
                     json={"type": "file", "format": fmt, "content": content})
    assert r.status_code in (200, 201), r.text


def _wait_for(fn, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_contents_reads_of_data_are_refused_by_their_bytes(engine, recorder, small_budget, tmp_path):
    base = recorder.url + PREFIX
    data = _parquet()
    work = tmp_path / "work"  # written inside the workspace (as a kernel would), not uploaded
    (work / "x.parquet").write_bytes(data)
    (work / "x.csv").write_bytes(data)  # Parquet renamed .csv
    (work / "notes.md").write_text("# notes\n")
    (work / "big.txt").write_text("line\n" * 2000)  # 10 000 bytes, over this permit's 4 KiB cap
    for path, query in (("x.parquet", "content=1&format=base64"), ("x.parquet", "content=1&format=text"),
                        ("x.csv", "content=1&format=base64"), ("x.csv", "content=1&format=text"),
                        ("x.csv", "content=1"), ("x.parquet", ""), ("big.txt", "content=1&format=text")):
        r = requests.get(base + f"api/contents/{path}?{query}", headers=_auth(), timeout=30)
        assert r.status_code in (400, 403), (path, query, r.status_code)
        assert "PAR1" not in r.text and "content" not in r.json(), (path, query)
        if r.status_code == 403:
            assert "egress review" in r.json()["message"], r.text
    refused = _events(engine, "session.contents_refused")
    kinds = {(e["detail"]["path"], e["detail"]["kind"]) for e in refused}
    assert ("x.csv", "parquet") in kinds and ("x.parquet", "parquet") in kinds
    assert any(e["detail"]["path"] == "big.txt" and "cap" in e["detail"]["reason"] for e in refused)

    # text, notebooks, listings and metadata still work
    r = requests.get(base + "api/contents/notes.md?content=1&format=text", headers=_auth(), timeout=30)
    assert r.status_code == 200 and r.json()["content"] == "# notes\n"
    r = requests.get(base + "api/contents/x.parquet?content=0", headers=_auth(), timeout=30)
    assert r.status_code == 200 and r.json()["size"] == len(data) and r.json()["content"] is None
    names = {m["name"] for m in requests.get(base + "api/contents", headers=_auth(), timeout=30).json()["content"]}
    assert {"x.parquet", "x.csv", "notes.md"} <= names
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    r = requests.put(base + "api/contents/a.ipynb", headers=_auth(), timeout=30,
                     json={"type": "notebook", "format": "json", "content": nb})
    assert r.status_code in (200, 201), r.text
    r = requests.get(base + "api/contents/a.ipynb", headers=_auth(), timeout=30)
    assert r.status_code == 200 and r.json()["content"]["nbformat"] == 4
    assert verify(engine).ok


def test_large_contents_reads_are_audited_with_their_hash(engine, recorder):
    base = recorder.url + PREFIX
    text = "a,b\n" + "1,2\n" * 30000  # 120 004 bytes: under the default 256 KiB cap, over 64 KiB
    _put(base, "table.csv", text)  # text under the cap: an upload that is accepted
    r = requests.get(base + "api/contents/table.csv?content=1&format=text", headers=_auth(), timeout=30)
    assert r.status_code == 200 and r.json()["content"] == text
    read = _events(engine, "session.contents_read")[-1]
    assert read["detail"]["path"] == "table.csv" and read["detail"]["size_bytes"] == len(text)
    assert read["detail"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert read["actor"] == "alice" and read["permit_id"] == "P-1"


def _run_collect(k: Kernel, code: str) -> tuple[str, str, str]:
    """Execute through the recorder; returns (status, stdout, stderr) as the browser receives them."""
    import uuid
    from datetime import datetime, timezone

    msg_id = uuid.uuid4().hex
    k.ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "alice", "session": "s", "version": "5.3",
                                     "msg_type": "execute_request", "date": datetime.now(timezone.utc).isoformat()},
                          "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                          "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                                      "allow_stdin": False, "stop_on_error": True}}))
    out, err, status, idle = [], [], None, False
    deadline = time.monotonic() + 180
    while not (status and idle) and time.monotonic() < deadline:
        m = json.loads(k.ws.recv())
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        kind = m["header"]["msg_type"]
        if kind == "stream":
            (out if m["content"]["name"] == "stdout" else err).append(m["content"]["text"])
        elif kind == "execute_reply":
            status = m["content"]["status"]
        elif kind == "status" and m["content"]["execution_state"] == "idle":
            idle = True
    assert status and idle, "the cell did not finish"
    return status, "".join(out), "".join(err)


def test_kernel_output_is_metered_truncated_withheld_and_restored_by_a_raise(engine, recorder, small_budget, settings):
    k = Kernel(recorder.url, binary=False)
    try:
        # one message of 2.5 MiB: truncated to the per-message limit, with a notice
        status, out, err = _run_collect(k, "import sys; sys.stdout.write('x' * (5 * 1024 * 1024 // 2)); "
                                           "sys.stdout.flush()")
        assert status == "ok" and "[SPE] Output truncated" in out and len(out) < 1.1 * MIB
        trunc = _events(engine, "session.output_truncated")[-1]["detail"]
        assert trunc["kernel_id"] == k.id and trunc["size_bytes"] > 2 * MIB and len(trunc["sha256"]) == 64
        # 1.5 MiB more passes 80 % of 3 MiB: a warning under the cell, and an audit event
        status, out, err = _run_collect(k, "print('y' * (1536 * 1024))")
        assert out.count("y") == 1536 * 1024 and "80 %" not in out
        assert "of today's 3.0 MiB browser output budget" in err
        warning = _wait_for(lambda: _events(engine, "session.meter_warning"), "the meter warning")[-1]["detail"]
        assert warning["user"] == "alice" and warning["budget_bytes"] == BUDGET
        # the rest does not fit: withheld, with one notice, and the notebook keeps working
        status, out, err = _run_collect(k, "for i in range(40): print('z' * 65536)")
        assert status == "ok" and out.count("z") < 40 * 65536 and "[SPE] Output withheld" in err
        status, out, err = _run_collect(k, "print('secret-after-budget')")
        assert status == "ok" and "secret-after-budget" not in out and "withheld" in err
        withheld = _wait_for(lambda: [e for e in _events(engine, "session.output_withheld")
                                      if e["detail"]["channel"] == "kernel"], "withheld events")
        assert sum(e["detail"]["size_bytes"] for e in withheld) > 0
        assert all(len(e["detail"]["sha256"]) == 64 and e["object_id"].startswith(k.id) for e in withheld)

        # the meter as the operator sees it
        row = _wait_for(lambda: [r for r in meter_rows(engine, permit_id="P-1", user="alice")
                                 if r["withheld_bytes"] > 0], "the meter row")[0]
        assert row["budget_bytes"] == BUDGET and row["used_bytes"] >= 2 * MIB and row["warned"]
        # refused raises: no reason, a bad size
        assert spe(["--home", str(settings.home), "meter", "raise", "--permit", "P-1", "--user", "alice",
                    "--bytes", "lots", "--reason", "x"]) != 0
        assert spe(["--home", str(settings.home), "meter", "raise", "--permit", "P-1", "--user", "alice",
                    "--bytes", "4M", "--reason", " "]) != 0
        assert spe(["--home", str(settings.home), "--actor", "op", "meter", "raise", "--permit", "P-1", "--user",
                    "alice", "--bytes", "4M", "--reason", "analysis output reviewed with the PI"]) == 0
        raised = _events(engine, "session.meter_raise")
        # a local command is recorded as its Unix account; the name it claims is kept beside it (hub.identity)
        assert len(raised) == 1 and raised[0]["actor"] == local_operator().actor
        assert raised[0]["detail"]["claimed_actor"] == "op" and raised[0]["detail"]["added_bytes"] == 4 * MIB

        def flows_again():
            return "after-raise" in _run_collect(k, "print('after-raise')")[1]
        _wait_for(flows_again, "output after the raise")
    finally:
        k.close()
    text = "\n".join(f"{m.name} {s.labels} {s.value}" for m in SpeCollector(engine, groups=("browser",)).collect()
                     for s in m.samples)
    served = [line for line in text.splitlines() if line.startswith("spe_browser_output_bytes ")]
    held = [line for line in text.splitlines() if line.startswith("spe_browser_withheld_bytes ")]
    assert served and "'permit': 'P-1'" in served[0] and float(served[0].split()[-1]) >= 2 * MIB
    assert held and float(held[0].split()[-1]) > 0
    assert verify(engine).ok


def test_terminal_output_is_metered_and_withheld(engine, recorder, small_budget, tmp_path):
    base = recorder.url + PREFIX
    (tmp_path / "work" / "big.log").write_text(("0123456789" * 100 + "\n") * 4000)  # 4 MiB, over the budget
    name = requests.post(base + "api/terminals", headers=_auth(), timeout=30).json()["name"]
    ws = websocket.create_connection(recorder.url.replace("http", "ws", 1) + f"{PREFIX}terminals/websocket/{name}",
                                     header=[f"Authorization: token {TOKEN}"], timeout=60)
    seen = []
    try:
        ws.send(json.dumps(["stdin", f"cd {tmp_path / 'work'} && cat big.log && echo done-cat\r"]))
        while True:
            try:
                msg = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                break  # nothing more comes: the rest was withheld
            if msg[0] == "stdout":
                seen.append(msg[1])
                if "Output withheld" in msg[1]:
                    ws.settimeout(5)
    finally:
        ws.close()
    received = "".join(seen)
    assert "[SPE] Output withheld" in received and received.count("0123456789") * 10 < 3.2 * MIB
    rows = _wait_for(lambda: [r for r in meter_rows(engine, permit_id="P-1") if r["withheld_bytes"]], "meter")
    assert rows[0]["used_bytes"] <= BUDGET + 1024 * 1024
    withheld = _wait_for(lambda: [e for e in _events(engine, "session.output_withheld")
                                  if e["detail"]["channel"] == "terminal"], "terminal withheld event")
    assert withheld[0]["detail"]["size_bytes"] > 0 and withheld[0]["object_id"] == f"terminal/{name}"


def test_the_researcher_sees_her_meter_and_nobody_else_does(engine, recorder, small_budget):
    base = recorder.url + PREFIX
    _put(base, "notes.md", "# notes\n" * 100)
    assert requests.get(base + "api/contents/notes.md?content=1&format=text", headers=_auth(), timeout=30).ok
    mine = requests.get(base + "spe/meter?format=json", headers=_auth(), timeout=30)
    assert mine.status_code == 200, mine.text
    info = mine.json()
    assert (info["permit"], info["user"], info["budget_bytes"]) == ("P-1", "alice", BUDGET)
    assert info["used_bytes"] > 800 and info["withholding"] is False
    text = requests.get(base + "spe/meter", headers=_auth(), timeout=30).text
    assert text.startswith("Browser output of permit P-1 for alice") and "of 3.0 MiB used" in text
    for headers in ({}, {"Authorization": "token wrong"}):
        other = requests.get(base + "spe/meter?format=json", headers=headers, timeout=30, allow_redirects=False)
        assert other.status_code == 403 and "used_bytes" not in other.text


def test_uploads_take_notebooks_and_small_text_only(engine, recorder, small_budget, tmp_path):
    base = recorder.url + PREFIX
    work = tmp_path / "work"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    r = requests.put(base + "api/contents/mine.ipynb", headers=_auth(), timeout=30,
                     json={"type": "notebook", "format": "json", "content": nb})
    assert r.status_code in (200, 201) and (work / "mine.ipynb").exists()
    _put(base, "helper.py", base64.b64encode(b"def f():\n    return 1\n").decode(), "base64")  # as Lab uploads
    assert (work / "helper.py").read_text().startswith("def f()")
    saved = _events(engine, "session.file_save")[-1]["detail"]
    assert saved["path"] == "helper.py" and saved["kind"] == "text"
    assert saved["sha256"] == hashlib.sha256(b"def f():\n    return 1\n").hexdigest()
    data = _parquet()
    refused = [
        ("x.parquet", {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}),
        ("x.csv", {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}),
        ("tool.whl", {"type": "file", "format": "base64", "content": base64.b64encode(b"PK\x03\x04" + b"\0" * 40).decode()}),
        ("big.txt", {"type": "file", "format": "text", "content": "x" * 5000}),  # over the 4 KiB cap
        ("names.json", {"type": "file", "format": "text", "content": "a,b\n1,2\n"}),  # not JSON inside
        ("part.bin", {"type": "file", "format": "base64", "content": "QUJD", "chunk": 1}),
    ]
    for path, model in refused:
        r = requests.put(base + "api/contents/" + path, headers=_auth(), json=model, timeout=30)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "import request" in r.json()["message"], r.text
        assert not (work / path).exists(), path  # nothing stored
    r = requests.put(base + "api/contents/bad.txt", headers=_auth(), data=b"\xff not json", timeout=30)
    assert r.status_code == 403 and not (work / "bad.txt").exists()
    events = {e["detail"]["path"]: e["detail"] for e in _events(engine, "session.upload_refused")}
    assert set(events) == {p for p, _ in refused} | {"bad.txt"}
    assert events["x.csv"]["kind"] == "parquet" and len(events["x.csv"]["sha256"]) == 64
    assert verify(engine).ok
