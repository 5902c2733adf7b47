"""Pure rules of the browser outflow: which contents reads are judged, which models the browser
may receive (by their bytes), the per-permit limits, the daily meter's accounting, the
recorder's own kernel frames (notices, truncation) and `spe meter` sizes."""

from __future__ import annotations

import base64
import io
import json

import pytest

from hub.cli.meter import parse_size
from hub.exceptions import InvalidInput
from hub.permits.model import parse_permit
from hub.sessionlog import frames
from hub.sessionlog.meter import CONTROL_ALLOWANCE_BYTES, Entry, today
from hub.sessionlog.outflow import (DEFAULT_CONTENTS_MAX_BYTES, DEFAULT_DAILY_BUDGET_BYTES, BrowserLimits,
                                    contents_read, contents_write, is_static, judge_model, judge_upload,
                                    limits_from_document, max_body_bytes)
from hub.sessionlog.protocol import V1_PROTOCOL, parse_kernel_frame

PREFIX = "/user/alice/demo-2026-001/"


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"person_id": list(range(100))}), buffer)
    return buffer.getvalue()


def _file(content, fmt="text") -> dict:
    return {"type": "file", "format": fmt, "content": content, "name": "x", "path": "x"}


@pytest.mark.parametrize("path,query,expected", [
    (PREFIX + "api/contents/x.parquet", "content=1&format=base64", ("x.parquet", "base64")),
    (PREFIX + "api/contents/sub/x.csv", "format=text", ("sub/x.csv", "text")),
    (PREFIX + "api/contents/a%20b.txt", "", ("a b.txt", None)),
    (PREFIX + "api/contents", "", ("", None)),
])
def test_contents_reads_are_judged(path, query, expected):
    read = contents_read("GET", path, query, PREFIX)
    assert (read.path, read.format) == expected


@pytest.mark.parametrize("method,path,query", [
    ("GET", PREFIX + "api/contents/x.parquet", "content=0"),  # metadata only
    ("PUT", PREFIX + "api/contents/x.ipynb", ""),  # a save
    ("GET", PREFIX + "api/contents/x.ipynb/checkpoints", ""),
    ("GET", PREFIX + "api/kernels", ""),
    ("GET", "/user/bob/other/api/contents/x", ""),  # another prefix
])
def test_other_requests_are_not_contents_reads(method, path, query):
    assert contents_read(method, path, query, PREFIX) is None


def test_binary_and_data_are_refused_by_their_bytes():
    limits = BrowserLimits()
    pq = _parquet()
    v = judge_model(_file(base64.b64encode(pq).decode(), "base64"), limits)
    assert not v.allowed and v.kind == "parquet" and "Parquet" in v.reason
    # any base64 content, even of text bytes
    assert not judge_model(_file(base64.b64encode(b"a,b\n1,2\n").decode(), "base64"), limits).allowed
    # text whose bytes are not text (a NUL-bearing string that the server sent as text)
    assert not judge_model(_file("SQLite format 3\x00" + "x" * 100), limits).allowed
    assert judge_model(_file(None, "json"), limits).allowed  # a model without content: nothing to judge
    v = judge_model(_file({"a": 1}, "json"), limits)
    assert not v.allowed and "format" in v.reason


def test_text_and_notebooks_are_served_under_their_caps():
    limits = BrowserLimits(contents_max_bytes=2048, notebook_max_bytes=4096)
    v = judge_model(_file("a,b\n1,2\n"), limits)
    assert v.allowed and v.kind == "csv" and v.data == b"a,b\n1,2\n"
    v = judge_model(_file("x" * 2049), limits)
    assert not v.allowed and "2049 bytes" in v.reason and v.size_bytes == 2049
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": "1"}]}
    assert judge_model({"type": "notebook", "format": "json", "content": nb}, limits).allowed
    nb["cells"][0]["source"] = "y" * 5000
    v = judge_model({"type": "notebook", "format": "json", "content": nb}, limits)
    assert not v.allowed and "notebook" in v.reason
    assert judge_model({"type": "directory", "format": "json", "content": [{"name": "x.parquet"}]}, limits).allowed
    assert judge_model(_file(""), limits).allowed  # an empty file


def test_limits_come_from_the_permit_document_and_are_validated():
    assert limits_from_document(None) == BrowserLimits()
    assert limits_from_document({"browser": {"daily_budget_bytes": 1 << 20}}).daily_budget_bytes == 1 << 20
    assert limits_from_document({}).contents_max_bytes == DEFAULT_CONTENTS_MAX_BYTES
    assert max_body_bytes(BrowserLimits()) > 5 * 1024 * 1024
    doc = {"id": "P-1", "title": "Outflow test permit", "purpose": "scientific_research",
           "purpose_description": "Testing the browser limits of a permit.", "organisation": "Example Hospital", "principal_investigator": "alice",
           "members": [{"username": "alice", "role": "principal_investigator"}], "dataset": "eunomia",
           "tables": {"person": ["person_id"]}, "valid_from": "2026-01-01", "valid_until": "2027-01-01",
           "browser": {"daily_budget_bytes": 1 << 20, "contents_max_bytes": 4096}}
    parse_permit(doc)
    with pytest.raises(InvalidInput):
        parse_permit({**doc, "browser": {"daily_budget_bytes": 10}})
    with pytest.raises(InvalidInput):
        parse_permit({**doc, "browser": {"max": 1}})


def test_static_assets_are_not_metered():
    assert is_static(PREFIX + "static/lab/main.js", PREFIX)
    assert is_static(PREFIX + "lab/static/x.js", PREFIX)
    assert not is_static(PREFIX + "api/contents/static/x", PREFIX)
    assert not is_static(PREFIX + "lab/api/workspaces/x", PREFIX)
    assert not is_static(PREFIX + "static/../api/contents/x", PREFIX)


def test_meter_delivers_warns_once_then_withholds():
    e = Entry(base_budget=1000)
    c = e.charge(700)
    assert c.delivered and not c.warn
    c = e.charge(150)
    assert c.delivered and c.warn and c.used_bytes == 850
    assert not e.charge(100).warn  # once a day
    c = e.charge(100)
    assert not c.delivered and e.withheld == 100 and e.used == 950
    assert not e.charge(50).delivered and e.exhausted  # once withheld, the day is used up
    # control messages: a bounded allowance over the budget, never more
    assert e.charge(CONTROL_ALLOWANCE_BYTES, control=True).delivered
    assert not e.charge(100, control=True).delivered
    assert e.take_pending() == (950 + CONTROL_ALLOWANCE_BYTES, 250, True)
    assert e.take_pending() == (0, 0, False)
    e.raise_to(10 * CONTROL_ALLOWANCE_BYTES)  # an operator raise
    assert not e.exhausted and e.charge(500).delivered
    assert len(today()) == 10


def _msg(kind: str, content: dict) -> dict:
    return {"channel": "iopub", "header": {"msg_id": "m2", "msg_type": kind, "session": "s"},
            "parent_header": {"msg_id": "cell-1", "msg_type": "execute_request", "session": "s"},
            "metadata": {}, "content": content}


@pytest.mark.parametrize("sub", [None, V1_PROTOCOL])
def test_recorder_frames_round_trip_and_truncate(sub):
    big = _msg("stream", {"name": "stdout", "text": "z" * 5000})
    frame = frames.encode(big, sub)
    assert frames.decode(frame, sub)["content"]["text"] == "z" * 5000
    cut = frames.truncated(frames.decode(frame, sub), 100, "\n[SPE] cut", sub)
    parsed = parse_kernel_frame(cut, sub)
    assert parsed.msg_type == "stream" and parsed.parent_msg_id == "cell-1"
    assert parsed.content["text"] == "z" * 100 + "\n[SPE] cut\n"
    img = frames.truncated(_msg("display_data", {"data": {"image/png": "A" * 9000}, "metadata": {}}), 10,
                           "[SPE] cut", sub)
    assert parse_kernel_frame(img, sub).content["data"] == {"text/plain": "[SPE] cut"}
    table = frames.truncated(_msg("execute_result", {"data": {"text/plain": "t" * 9000, "text/html": "<b>"},
                                                     "metadata": {}, "execution_count": 3}), 10, "\n[SPE] cut", sub)
    assert parse_kernel_frame(table, sub).content["data"] == {"text/plain": "t" * 10 + "\n[SPE] cut"}
    assert parse_kernel_frame(table, sub).content["execution_count"] == 3
    note = parse_kernel_frame(frames.notice(big["parent_header"], "[SPE] withheld", sub), sub)
    assert (note.channel, note.msg_type, note.parent_msg_id) == ("iopub", "stream", "cell-1")
    assert note.content == {"name": "stderr", "text": "[SPE] withheld\n"}
    assert frames.decode(b"\x00garbage", sub) is None


def test_meter_sizes():
    assert parse_size("10M") == 10 * 1024 * 1024 and parse_size("512K") == 512 * 1024
    assert parse_size("1048576") == 1048576 and parse_size("1GiB") == 1024 ** 3
    with pytest.raises(InvalidInput):
        parse_size("lots")
    assert DEFAULT_DAILY_BUDGET_BYTES == 25 * 1024 * 1024
    assert json.loads(frames.encode(_msg("status", {"execution_state": "idle"}), None))["msg_type"] == "status"


def test_uploads_are_judged_by_their_bytes_and_caps():
    limits = BrowserLimits(contents_max_bytes=2048, notebook_max_bytes=4096)

    def up(path, model):
        return judge_upload(path, json.dumps(model).encode(), limits)

    b64 = base64.b64encode
    assert up("a.py", {"type": "file", "format": "base64", "content": b64(b"x = 1\n").decode()}).allowed
    assert up("a.md", {"type": "file", "format": "text", "content": "# hi\n"}).allowed
    assert up("d", {"type": "directory"}).allowed and up("new.txt", {"type": "file"}).allowed
    assert up("n.ipynb", {"type": "notebook", "format": "json", "content": {"cells": [], "nbformat": 4}}).allowed
    v = up("x.csv", {"type": "file", "format": "base64", "content": b64(_parquet()).decode()})
    assert not v.allowed and v.kind == "parquet"
    assert not up("t.json", {"type": "file", "format": "text", "content": "a,b\n1,2\n"}).allowed  # name lies
    assert not up("big.md", {"type": "file", "format": "text", "content": "y" * 3000}).allowed
    assert not up("n.ipynb", {"type": "notebook", "format": "json", "content": {"cells": ["z" * 5000]}}).allowed
    assert not up("c", {"type": "file", "format": "base64", "content": "QQ==", "chunk": 2}).allowed
    assert not up("p", {"type": "file", "format": "weird", "content": "x"}).allowed
    assert not judge_upload("p", b"[1, 2]", limits).allowed and not judge_upload("p", b"\xff", limits).allowed
    assert contents_write("PUT", PREFIX + "api/contents/sub/a%20b.py", PREFIX) == "sub/a b.py"
    assert contents_write("PUT", PREFIX + "api/contents/a.ipynb/checkpoints", PREFIX) is None
    assert contents_write("GET", PREFIX + "api/contents/a.py", PREFIX) is None
