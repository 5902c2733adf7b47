"""Anchors: signed checkpoints are published in the public register (JSON and page), the lifecycle
signs them periodically, and `spe audit verify --against-register` catches a rewrite of the whole
chain that the operator re-signed with its own key, naming the first anchored event that differs.
The browser verifier is served publicly with a policy that forbids it any connection."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from egress.web.register import register_handlers
from egress.web.verifier import verifier_handlers
from hub.audit.anchors import merge_anchors, parse_snapshot
from hub.audit.checkpoint import checkpoint, checkpoint_message, load_or_create_signer
from hub.audit.periodic import checkpoint_due, periodic_checkpoint
from hub.cli import main
from hub.db import make_engine
from hub.exceptions import InvalidInput
from hub.register import register_document
from tests.integration.tornado_thread import TornadoThread

from .helpers import append, rewrite_chain, rows, tamper


def _cli(home, *argv):
    return main(["--home", str(home), *argv])


def _resign_all(engine, signer):
    """The operator holds the key: it can sign its rewritten chain again."""
    with engine.begin() as conn:
        for cp_id, seq, ts, kind in conn.exec_driver_sql("SELECT id, seq, ts, kind FROM audit_checkpoints WHERE seq > 0").all():
            new = conn.exec_driver_sql("SELECT hash FROM audit_events WHERE seq = ?", (seq,)).scalar()
            conn.exec_driver_sql("UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE id = ?",
                                 (new, signer.sign(checkpoint_message(seq, new, ts, kind)), cp_id))


def test_register_publishes_checkpoints_json_and_page(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    signer = load_or_create_signer(tmp_path / "keys")
    append(engine, 3)
    cp = checkpoint(engine, signer, actor="op")
    doc = register_document(engine)
    assert doc["audit_anchors"] == [{"seq": 3, "hash": cp["hash"], "ts": cp["ts"], "kind": "periodic",
                                     "key_id": signer.key_id, "signature": cp["signature"]}]
    with TornadoThread(register_handlers("/p", engine) + verifier_handlers("/p")) as srv:
        page = requests.get(srv.url + "/p/register", timeout=10)
        feed = requests.get(srv.url + "/p/register.json", timeout=10)
        verifier = requests.get(srv.url + "/p/audit/verifier", timeout=10)
        script = requests.get(srv.url + "/p/audit/verifier.js", timeout=10)
        missing = requests.get(srv.url + "/p/audit/verifier.html", timeout=10)
    assert parse_snapshot(page.text) == parse_snapshot(feed.text) == [(3, cp["hash"])]
    assert verifier.status_code == 200 and "Audit evidence pack verifier" in verifier.text
    assert "connect-src 'none'" in verifier.headers["Content-Security-Policy"]
    assert script.headers["Content-Type"].startswith("text/javascript") and "SPEAudit" in script.text
    assert missing.status_code == 404


def test_verify_against_register_catches_a_re_signed_rewrite(tmp_path, capsys):
    home, engine = _home(tmp_path)
    assert _cli(home, "audit", "checkpoint") == 0  # creates the key, signs the empty head (seq 0)
    signer = load_or_create_signer(home / "keys")
    append(engine, 5)
    assert _cli(home, "audit", "checkpoint") == 0  # at event 6 (the first checkpoint's record is event 1)
    append(engine, 3, start=5)
    assert _cli(home, "audit", "checkpoint") == 0  # at event 10
    saved_json = tmp_path / "register-monday.json"
    saved_json.write_text(json.dumps(register_document(engine), default=str))
    with TornadoThread(register_handlers("/p", engine)) as srv:
        saved_page = tmp_path / "register-monday.html"
        saved_page.write_text(requests.get(srv.url + "/p/register", timeout=10).text)
    capsys.readouterr()
    assert _cli(home, "audit", "verify", "--against-register", str(saved_json), "--against-register",
                str(saved_page)) == 0
    assert "audit trail verified" in capsys.readouterr().out
    assert json.loads(rows(engine)[-1]["detail"])["register_anchors"] == 3  # the verify itself is audited

    # The operator rewrites event 4 and re-hashes and re-signs everything after it.
    rewrite_chain(engine, lambda r: r.update(actor="someone-else") if r["seq"] == 4 else None)
    _resign_all(engine, signer)
    capsys.readouterr()
    assert _cli(home, "audit", "verify") == 0  # its own key cannot tell
    capsys.readouterr()
    for saved in (saved_json, saved_page):
        assert _cli(home, "audit", "verify", "--against-register", str(saved)) == 4
        assert "DAMAGED at event 6 (rewritten)" in capsys.readouterr().out

    # an evidence pack exported from the rewritten trail passes alone, not against the register
    pack = tmp_path / "pack.jsonl"
    assert _cli(home, "audit", "export", "--permit", "P-1", "-o", str(pack)) == 0
    capsys.readouterr()
    assert _cli(home, "audit", "verify-pack", str(pack)) == 0
    assert _cli(home, "audit", "verify-pack", str(pack), "--against-register", str(saved_json)) == 4
    assert "DAMAGED at event 6 (rewritten)" in capsys.readouterr().out


def _home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home, make_engine(f"sqlite:///{home / 'registry.db'}")


def test_against_register_names_a_plain_edit_and_a_cut_tail(tmp_path, capsys):
    home, engine = _home(tmp_path)
    append(engine, 4)
    assert _cli(home, "audit", "checkpoint") == 0
    saved = tmp_path / "register.json"
    saved.write_text(json.dumps(register_document(engine), default=str))
    original = rows(engine)[1]["detail"]
    tamper(engine, "UPDATE audit_events SET detail = '{}' WHERE seq = 2")
    capsys.readouterr()
    assert _cli(home, "audit", "verify", "--against-register", str(saved)) == 4
    assert "DAMAGED at event 2 (edited)" in capsys.readouterr().out
    tamper(engine, "UPDATE audit_events SET detail = :d WHERE seq = 2", d=original)
    # an anchor past the stored end: the tail was removed after the register published it
    doc = json.loads(saved.read_text())
    doc["audit_anchors"].append({**doc["audit_anchors"][0], "seq": 99})
    saved.write_text(json.dumps(doc))
    capsys.readouterr()
    assert _cli(home, "audit", "verify", "--against-register", str(saved)) == 4
    assert "(truncated)" in capsys.readouterr().out


def test_bad_register_snapshots_are_clear_errors(tmp_path, capsys):
    home, engine = _home(tmp_path)
    append(engine, 2)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"permits": [], "audit_anchors": []}))
    assert _cli(home, "audit", "verify", "--against-register", str(empty)) == 2
    assert "publishes no audit anchors" in capsys.readouterr().err
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"audit_anchors": [{"seq": "x"}]}')
    assert _cli(home, "audit", "verify", "--against-register", str(garbage)) == 2
    assert "not a register snapshot" in capsys.readouterr().err
    assert _cli(home, "audit", "verify", "--against-register", str(tmp_path / "missing.json")) == 2
    assert "cannot read register snapshot" in capsys.readouterr().err
    with pytest.raises(InvalidInput, match="disagree on event 5"):
        merge_anchors([[(5, "a" * 64)], [(5, "b" * 64)]])


def test_checkpoint_due_rule():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    hour_ago = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    minute_ago = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert checkpoint_due(head_seq=0, last_seq=None, last_periodic_ts=None, now=now) is False
    assert checkpoint_due(head_seq=5, last_seq=None, last_periodic_ts=None, now=now) is True
    assert checkpoint_due(head_seq=5, last_seq=4, last_periodic_ts=hour_ago, now=now) is False  # only its record
    assert checkpoint_due(head_seq=9, last_seq=4, last_periodic_ts=hour_ago, now=now) is True
    assert checkpoint_due(head_seq=9, last_seq=4, last_periodic_ts=minute_ago, now=now) is False
    # before any periodic checkpoint: an hour after the oldest event (a young trail waits)
    assert checkpoint_due(head_seq=5, last_seq=None, last_periodic_ts=None, first_ts=minute_ago, now=now) is False
    assert checkpoint_due(head_seq=5, last_seq=None, last_periodic_ts=None, first_ts=hour_ago, now=now) is True


def test_periodic_checkpoint_signs_the_head_once_per_period(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    keys = tmp_path / "keys"
    append(engine, 3)
    base = datetime.now(timezone.utc)  # the events and the signed checkpoints carry the real time
    assert periodic_checkpoint(engine, keys, actor="lifecycle", now=base + timedelta(minutes=59)) is None
    first = periodic_checkpoint(engine, keys, actor="lifecycle", now=base + timedelta(minutes=61))
    assert first is not None and first["seq"] == 3 and first["kind"] == "periodic"
    append(engine, 2, start=3)
    assert periodic_checkpoint(engine, keys, actor="lifecycle", now=base + timedelta(minutes=30)) is None
    later = periodic_checkpoint(engine, keys, actor="lifecycle", now=base + timedelta(hours=2))
    assert later is not None and later["seq"] == 6
    assert [a["seq"] for a in register_document(engine)["audit_anchors"]] == [3, 6]
