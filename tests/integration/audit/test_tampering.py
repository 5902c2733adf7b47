"""Every kind of tampering is detected and named, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from hub.audit import verify
from hub.audit.chain import event_hash, find_damage
from hub.audit.checkpoint import checkpoint, load_or_create_signer
from hub.audit.tables import audit_events, audit_head

from .helpers import append, rewrite_chain, rows, tamper


def test_intact_chain_verifies(audit_engine):
    append(audit_engine, 12)
    res = verify(audit_engine)
    assert res.ok, res.describe()
    assert res.events == 12 and res.head_seq == 12


def test_edited_event_is_named(audit_engine):
    append(audit_engine, 10)
    tamper(audit_engine, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 5")
    res = verify(audit_engine)
    assert not res.ok
    assert (res.damage.seq, res.damage.kind) == (5, "edited")
    assert "event 5" in res.describe()


def test_deleted_event_is_named(audit_engine):
    append(audit_engine, 10)
    tamper(audit_engine, "DELETE FROM audit_events WHERE seq = 5")
    res = verify(audit_engine)
    assert (res.damage.seq, res.damage.kind) == (5, "deleted")


def test_inserted_event_is_named(audit_engine):
    append(audit_engine, 10)
    before = rows(audit_engine)
    # Make room after event 5 and slip in a well-formed event (its own hash is valid; it cannot
    # link to event 5 because the unique prev_hash constraint forbids a fork).
    with audit_engine.begin() as conn:
        for seq in range(10, 5, -1):
            conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(seq=seq + 100))
        for seq in range(10, 5, -1):
            conn.execute(audit_events.update().where(audit_events.c.seq == seq + 100).values(seq=seq + 1))
        forged = {k: v for k, v in before[4].items()}
        forged.update(seq=6, actor="mallory", prev_hash="ab" * 32)
        forged["hash"] = event_hash(forged["prev_hash"], forged)
        conn.execute(audit_events.insert().values(**forged))
    res = verify(audit_engine)
    assert (res.damage.seq, res.damage.kind) == (6, "inserted"), res.describe()


def test_reordered_events_are_named(audit_engine):
    append(audit_engine, 10)
    r5, r6 = rows(audit_engine)[4:6]
    with audit_engine.begin() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == 5).values(seq=-5))
        conn.execute(audit_events.update().where(audit_events.c.seq == 6).values(seq=5))
        conn.execute(audit_events.update().where(audit_events.c.seq == -5).values(seq=6))
    res = verify(audit_engine)
    assert (res.damage.seq, res.damage.kind) == (5, "reordered"), res.describe()
    assert r5["hash"] != r6["hash"]


def test_truncated_tail_is_named(audit_engine):
    append(audit_engine, 10)
    tamper(audit_engine, "DELETE FROM audit_events WHERE seq > 7")
    res = verify(audit_engine)
    assert (res.damage.seq, res.damage.kind) == (8, "truncated"), res.describe()


def test_truncated_tail_with_moved_head_is_caught_by_checkpoint(audit_engine, tmp_path):
    signer = load_or_create_signer(tmp_path / "keys")
    append(audit_engine, 10)
    checkpoint(audit_engine, signer, actor="op")  # signs head 10; its own event is 11
    r7 = rows(audit_engine)[6]
    tamper(audit_engine, "DELETE FROM audit_events WHERE seq > 7")
    tamper(audit_engine, "UPDATE audit_head SET seq = 7, hash = :h", h=r7["hash"])
    res = verify(audit_engine, verifier=signer.verifier())
    assert (res.damage.seq, res.damage.kind) == (8, "truncated"), res.describe()


def test_whole_chain_rewrite_is_caught_only_by_the_signed_checkpoint(audit_engine, tmp_path):
    signer = load_or_create_signer(tmp_path / "keys")
    append(audit_engine, 10)
    checkpoint(audit_engine, signer, actor="op")
    append(audit_engine, 3, start=10)

    def edit(r):
        if r["seq"] == 4:
            r["actor"] = "someone-else"

    rewrite_chain(audit_engine, edit)
    # The links are consistent again and the head was moved along: without the checkpoint
    # the chain looks intact...
    all_rows = rows(audit_engine)
    assert find_damage(all_rows, head=(all_rows[-1]["seq"], all_rows[-1]["hash"])) is None
    res = verify(audit_engine, verifier=signer.verifier())
    # ...but the signed checkpoint at event 10 does not match the recomputed event 10.
    assert not res.ok
    assert (res.damage.seq, res.damage.kind) == (10, "rewritten"), res.describe()


def test_forged_checkpoint_is_caught_by_its_signature(audit_engine, tmp_path):
    signer = load_or_create_signer(tmp_path / "keys")
    append(audit_engine, 6)
    checkpoint(audit_engine, signer, actor="op")
    rewrite_chain(audit_engine, lambda r: r.update(actor="x") if r["seq"] == 2 else None)
    new6 = rows(audit_engine)[5]["hash"]
    tamper(audit_engine, "UPDATE audit_checkpoints SET hash = :h", h=new6)
    res = verify(audit_engine, verifier=signer.verifier())
    assert (res.damage.seq, res.damage.kind) == (6, "bad_signature"), res.describe()


def test_head_is_not_moved_by_a_failed_transaction(audit_engine):
    append(audit_engine, 3)
    try:
        with audit_engine.begin() as conn:
            from hub.audit import record

            record(conn, actor="a", action="session.cell", detail={"kernel_id": "k", "code": "1", "code_bytes": 1})
            raise RuntimeError("state change failed")
    except RuntimeError:
        pass
    with audit_engine.connect() as conn:
        assert conn.execute(sa.select(audit_head.c.seq)).scalar_one() == 3
    assert verify(audit_engine).ok


def test_parallel_verify_agrees_with_the_single_pass(audit_engine):
    append(audit_engine, 120)
    res = verify(audit_engine, batch=10, workers=2)
    assert res.ok and res.events == 120
    tamper(audit_engine, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 77")
    res = verify(audit_engine, batch=10, workers=2)
    assert (res.damage.seq, res.damage.kind) == (77, "edited")
    tamper(audit_engine, "DELETE FROM audit_events WHERE seq = 61")  # exactly at a seam
    res = verify(audit_engine, batch=10, workers=2)
    assert (res.damage.seq, res.damage.kind) == (61, "deleted")
