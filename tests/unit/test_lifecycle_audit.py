"""The lifecycle service's audit schedule (hub.lifecycle_audit): what is due (pure), and a round
against a real registry: a signed checkpoint, a verification that checks its signature, then
nothing until the next period."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub import audit
from hub.audit.checkpoint import KEY_FILE, load_or_create_signer
from hub.audit.tables import audit_checkpoints, audit_events
from hub.lifecycle_audit import audit_round, due_tasks

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def test_due_tasks():
    assert due_tasks(None, None, NOW) == ["checkpoint", "verify"]  # never run: both due
    assert due_tasks(NOW - HOUR + timedelta(seconds=1), NOW - HOUR, NOW) == []
    assert due_tasks(NOW - HOUR, NOW - HOUR, NOW) == ["checkpoint"]
    assert due_tasks(NOW, NOW - DAY, NOW) == ["verify"]
    assert due_tasks(NOW - timedelta(seconds=5), None, NOW, checkpoint_every=timedelta(seconds=5)) == [
        "checkpoint", "verify"]


def _events(engine, action):
    with engine.connect() as conn:
        return conn.execute(sa.select(audit_events).where(audit_events.c.action == action)).mappings().all()


def test_a_round_signs_verifies_with_the_signature_then_waits(settings, engine):
    with engine.begin() as conn:
        audit.record(conn, actor="op", role="operator", action="permit.apply", permit_id="P-1", detail={})
    load_or_create_signer(settings.keys_dir)  # the key the chart's Secret (or a single host) provides
    assert audit_round(engine, settings.keys_dir, NOW) == ["checkpoint", "verify"]
    with engine.connect() as conn:
        (cp,) = conn.execute(sa.select(audit_checkpoints)).mappings().all()
    assert cp["kind"] == "periodic"
    (ver,) = _events(engine, "audit.verify")
    detail = json.loads(ver["detail"])
    assert (ver["actor"], ver["outcome"], detail["ok"], detail["scheduled"]) == ("system", "ok", True, True)
    assert detail["signatures_checked"] == 1
    # the schedule is read back from the registry: right after, nothing is due (the checkpoint's
    # own `ts` is the wall clock, so ask as of a moment after it)
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert audit_round(engine, settings.keys_dir, later) == []
    assert audit_round(engine, settings.keys_dir, later + HOUR) == ["checkpoint"]


def test_without_a_key_the_trail_is_still_verified_and_no_key_is_made(settings, engine):
    assert audit_round(engine, settings.keys_dir, NOW) == ["verify"]
    (ver,) = _events(engine, "audit.verify")
    assert json.loads(ver["detail"])["signatures_checked"] == 0
    assert not (settings.keys_dir / KEY_FILE).exists()


def test_the_schedule_feeds_the_metrics_the_alert_rules_watch(settings, engine):
    from hub.metrics import SpeCollector

    def gauges():
        return {m.name: m.samples[0].value for m in SpeCollector(engine, groups=("audit",)).collect()
                if m.name.startswith("spe_audit_last")}

    assert gauges() == {"spe_audit_last_verification_ok": -1, "spe_audit_last_verification_timestamp_seconds": 0,
                        "spe_audit_last_checkpoint_timestamp_seconds": 0}
    load_or_create_signer(settings.keys_dir)
    audit_round(engine, settings.keys_dir, NOW)
    after = gauges()
    assert after["spe_audit_last_verification_ok"] == 1
    assert after["spe_audit_last_checkpoint_timestamp_seconds"] > 0
    assert after["spe_audit_last_verification_timestamp_seconds"] >= after["spe_audit_last_checkpoint_timestamp_seconds"]
