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
from hub.lifecycle_audit import audit_round, verify_due

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
# events carry the wall clock and the first checkpoint waits an hour after the oldest one
# (hub.audit.periodic.checkpoint_due): rounds are asked as of two hours from now
NOW = datetime.now(timezone.utc) + 2 * HOUR


def test_verify_due():
    assert verify_due(None, NOW)  # never run: due
    assert not verify_due(NOW - DAY + timedelta(seconds=1), NOW)
    assert verify_due(NOW - DAY, NOW)
    assert verify_due(NOW - timedelta(seconds=5), NOW, verify_every=timedelta(seconds=5))


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
    signed = datetime.now(timezone.utc)
    assert audit_round(engine, settings.keys_dir, signed + timedelta(minutes=1)) == []
    assert audit_round(engine, settings.keys_dir, signed + 2 * HOUR) == ["checkpoint"]


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
    with engine.begin() as conn:  # an empty trail has no head to sign
        audit.record(conn, actor="op", role="operator", action="permit.apply", permit_id="P-1", detail={})
    load_or_create_signer(settings.keys_dir)
    audit_round(engine, settings.keys_dir, NOW)
    after = gauges()
    assert after["spe_audit_last_verification_ok"] == 1
    assert after["spe_audit_last_checkpoint_timestamp_seconds"] > 0
    assert after["spe_audit_last_verification_timestamp_seconds"] >= after["spe_audit_last_checkpoint_timestamp_seconds"]


def test_checkpoints_of_exports_do_not_hold_back_the_periodic_series(settings, engine):
    from hub.audit.checkpoint import checkpoint

    signer = load_or_create_signer(settings.keys_dir)
    for n in range(3):  # an auditor exporting after every event: each export signs the head
        with engine.begin() as conn:
            audit.record(conn, actor="op", role="operator", action="permit.apply", permit_id=f"P-{n}", detail={})
        checkpoint(engine, signer, actor="auditor", kind="export")
    assert audit_round(engine, settings.keys_dir, NOW) == ["checkpoint", "verify"]
    with engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(sa.select(audit_checkpoints.c.kind).order_by(audit_checkpoints.c.id))]
    assert kinds == ["export", "export", "export", "periodic"]
