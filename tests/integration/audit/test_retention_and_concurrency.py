"""Retention purges stay verifiable; concurrent writers in two processes leave one chain."""

from __future__ import annotations

import json
import multiprocessing as mp
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub.audit import record, verify
from hub.audit.checkpoint import load_or_create_signer
from hub.audit.retention import purge, retention_cutoff
from hub.audit.store import utc_now_iso
from hub.audit.tables import audit_events
from hub.exceptions import InvalidInput, Refused

from .helpers import append, rows, tamper

NOW = datetime.now(timezone.utc)


def test_purge_then_verify_passes_and_is_audited(audit_engine, tmp_path):
    signer = load_or_create_signer(tmp_path / "keys")
    append(audit_engine, 5, ts=utc_now_iso(NOW - timedelta(days=800)))
    append(audit_engine, 4, ts=utc_now_iso(NOW - timedelta(days=400)), start=5)
    append(audit_engine, 3, start=9)
    res = purge(audit_engine, signer, actor="op", cutoff=retention_cutoff(retention_days=365))
    assert (res.events, res.through_seq) == (9, 9)
    left = rows(audit_engine)
    assert [r["seq"] for r in left] == [10, 11, 12, 13]
    purge_event = left[-1]
    assert purge_event["action"] == "audit.purge" and purge_event["actor"] == "op"
    assert json.loads(purge_event["detail"])["events"] == 9
    result = verify(audit_engine, verifier=signer.verifier())
    assert result.ok, result.describe()
    assert result.base_seq == 9 and result.events == 4

    # The purge checkpoint is the new base: removing the first kept event is still caught.
    tamper(audit_engine, "DELETE FROM audit_events WHERE seq = 10")
    damaged = verify(audit_engine, verifier=signer.verifier())
    assert (damaged.damage.seq, damaged.damage.kind) == (10, "deleted")


def test_purge_keeps_events_younger_than_the_cutoff_even_if_out_of_clock_order(audit_engine, tmp_path):
    signer = load_or_create_signer(tmp_path / "keys")
    append(audit_engine, 2, ts=utc_now_iso(NOW - timedelta(days=900)))
    append(audit_engine, 1, ts=utc_now_iso(NOW - timedelta(days=10)), start=2)  # young
    append(audit_engine, 2, ts=utc_now_iso(NOW - timedelta(days=900)), start=3)  # old, but after a young one
    res = purge(audit_engine, signer, actor="op", cutoff=retention_cutoff(retention_days=400))
    assert res.through_seq == 2  # only the contiguous old prefix
    assert verify(audit_engine, verifier=signer.verifier()).ok


@pytest.mark.parametrize("kwargs, error", [
    ({"retention_days": 100}, Refused),
    ({"retention_days": 364}, Refused),
    ({"before": NOW - timedelta(days=30)}, Refused),
    ({}, InvalidInput),
    ({"retention_days": 400, "before": NOW - timedelta(days=500)}, InvalidInput),
])
def test_retention_below_one_year_is_refused(kwargs, error):
    with pytest.raises(error):
        retention_cutoff(now=NOW, **kwargs)


def test_retention_boundary_is_accepted():
    assert retention_cutoff(retention_days=365, now=NOW) == NOW - timedelta(days=365)


def test_purge_of_a_damaged_trail_is_refused_and_changes_nothing(audit_engine, tmp_path):
    signer = load_or_create_signer(tmp_path / "keys")
    append(audit_engine, 4, ts=utc_now_iso(NOW - timedelta(days=800)))
    tamper(audit_engine, "UPDATE audit_events SET actor = 'x' WHERE seq = 2")
    with pytest.raises(Refused, match="damaged"):
        purge(audit_engine, signer, actor="op", cutoff=retention_cutoff(retention_days=365))
    assert len(rows(audit_engine)) == 4


def _writer(url: str, who: str, n: int, barrier) -> None:
    from hub.db import make_engine

    engine = make_engine(url)
    barrier.wait()
    for i in range(n):
        with engine.begin() as conn:
            record(conn, actor=who, action="session.cell", permit_id="P-1",
                   detail={"kernel_id": who, "code": f"{who} {i}", "code_bytes": 3})
    engine.dispose()


def test_two_processes_append_one_chain(audit_engine, db_url):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(db_url, who, 150, barrier)) for who in ("hub", "egress")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = verify(audit_engine)
    assert result.ok, result.describe()
    assert result.events == 300
    with audit_engine.connect() as conn:
        seqs = conn.execute(sa.select(audit_events.c.seq).order_by(audit_events.c.seq)).scalars().all()
        actors = conn.execute(sa.select(audit_events.c.actor, sa.func.count()).group_by(audit_events.c.actor)).all()
    assert seqs == list(range(1, 301))
    assert dict(actors) == {"hub": 150, "egress": 150}
    # The writers really interleaved (one chain, not two runs appended one after the other).
    order = [r["actor"] for r in rows(audit_engine)]
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert switches >= 1


def test_registered_event_without_required_keys_is_refused_and_nothing_is_stored(audit_engine):
    with pytest.raises(InvalidInput, match="code_bytes"):
        with audit_engine.begin() as conn:
            record(conn, actor="a", action="session.cell", detail={"kernel_id": "k", "code": "1"})
    with pytest.raises(InvalidInput, match="outcome"):
        with audit_engine.begin() as conn:
            record(conn, actor="a", action="auth.login", outcome="maybe")
    assert rows(audit_engine) == []


def test_record_many_appends_in_order_and_refuses_a_bad_batch_whole(audit_engine):
    from hub.audit.store import record_many

    ok = {"actor": "a", "action": "session.cell", "detail": {"kernel_id": "k", "code": "1", "code_bytes": 1}}
    with audit_engine.begin() as conn:
        assert record_many(conn, [ok, {**ok, "actor": "b"}, {**ok, "actor": "c"}]) == 3
    with pytest.raises(InvalidInput, match="code_bytes"):
        with audit_engine.begin() as conn:
            record_many(conn, [ok, {**ok, "detail": {"kernel_id": "k", "code": "1"}}])
    assert [r["actor"] for r in rows(audit_engine)] == ["a", "b", "c"]
    assert verify(audit_engine).ok


def test_hostile_outside_text_is_escaped_and_shortened_not_dropped(audit_engine):
    with audit_engine.begin() as conn:
        record(conn, actor="evil\nFAKE LOG LINE\x1f", action="auth.login", outcome="failed",
               object_id="x" * 1000, detail={"reason": "unknown user"})
    with pytest.raises(InvalidInput, match="action"):
        with audit_engine.begin() as conn:
            record(conn, actor="a", action="auth.login\n")
    (row,) = rows(audit_engine)
    assert row["actor"] == "evil\\u000aFAKE LOG LINE\\u001f"
    assert len(row["object_id"]) == 300 and row["object_id"].endswith("…")
    assert verify(audit_engine).ok
