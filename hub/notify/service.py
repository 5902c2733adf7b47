"""The notifier: audit events -> outbox rows -> mail, one round at a time (`run_once`).

0. permits ending within `permit_ending_days` get their `permit.ending_soon` event (hub.notify.ending);
1. `enqueue`: audit events after the cursor that a rule (hub.notify.rules) turns into a notice
   become one outbox row per recipient; the rows and the moved cursor commit together, and the
   (event, recipient) key makes a repeated round harmless.
2. `deliver`: every due `pending` row (and `unaddressed` rows whose person now has an
   address) is sent over one SMTP session; a failed send stays `pending` with a later
   `next_attempt_at` (doubling), and becomes `failed` after `max_attempts` tries. Nothing is
   deleted: `spe notify list` shows every mail, `spe notify retry` queues failed ones again
   (audited `notify.retry`).

Entry points: `spe notify run` (a loop) and `spe notify run --once`. Must not import `egress`.
"""

from __future__ import annotations

import json
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.audit.tables import audit_events
from hub.exceptions import InvalidInput
from hub.notify import recipients, rules, smtp
from hub.notify.ending import emit_ending_notices
from hub.notify.settings import SpeNotify
from hub.notify.tables import notify_cursor, notify_outbox

log = logging.getLogger("spe.notify")
STATES = ("pending", "sent", "failed", "unaddressed", "opted_out", "held", "digested")
DIGEST_PERIOD = timedelta(days=1)
BATCH_EVENTS = 500


@dataclass
class RoundResult:
    events: int = 0
    queued: int = 0
    sent: int = 0
    failed_tries: int = 0


def _cursor(conn, now: datetime, backlog_hours: int) -> int:
    """The last seq already turned into mail. On the very first round the notifier starts at the
    events of the last `backlog_hours` (a deployment that turns it on does not mail its history)."""
    row = conn.execute(sa.select(notify_cursor.c.last_seq).where(notify_cursor.c.id == 1)).first()
    if row is not None:
        return int(row[0])
    since = utc_now_iso(now - timedelta(hours=backlog_hours))
    start = conn.execute(sa.select(sa.func.max(audit_events.c.seq)).where(audit_events.c.ts < since)).scalar() or 0
    conn.execute(notify_cursor.insert().values(id=1, last_seq=start))
    return int(start)


def _event(row) -> dict:
    try:
        detail = json.loads(row["detail"] or "{}")
    except ValueError:
        detail = {}
    return {"seq": row["seq"], "action": row["action"], "actor": row["actor"], "permit_id": row["permit_id"],
            "object_id": row["object_id"], "outcome": row["outcome"],
            "detail": detail if isinstance(detail, dict) else {}}


def enqueue(engine: sa.Engine, settings: SpeNotify, now: datetime | None = None) -> tuple[int, int]:
    """Turn new audit events into outbox rows; returns (events read, rows queued)."""
    now = now or datetime.now(timezone.utc)
    stamp = utc_now_iso(now)
    events = queued = 0
    while True:
        with engine.begin() as conn:
            last = _cursor(conn, now, settings.first_backlog_hours)
            rows = conn.execute(sa.select(audit_events).where(audit_events.c.seq > last)
                                .order_by(audit_events.c.seq).limit(BATCH_EVENTS)).mappings().all()
            if not rows:
                return events, queued
            have = set()
            for row in rows:
                event = _event(row)
                try:
                    event["context"] = recipients.event_context(conn, event)
                    notice = rules.make_notice(event, settings.public_url)
                    users = recipients.resolve(conn, notice, event) if notice is not None else []
                except Exception:  # one malformed event must not stop every later mail
                    log.exception("audit event #%s (%s) could not be turned into mail; skipped",
                                  event["seq"], event["action"])
                    continue
                for user in users:
                    if (event["seq"], user) in have:
                        continue
                    have.add((event["seq"], user))
                    queued += _queue(conn, event, user, notice, stamp)
            conn.execute(notify_cursor.update().where(notify_cursor.c.id == 1).values(last_seq=rows[-1]["seq"]))
            events += len(rows)


def _queue(conn, event: dict, user: str, notice: rules.Notice, stamp: str) -> int:
    exists = conn.execute(sa.select(notify_outbox.c.id).where(
        notify_outbox.c.event_seq == event["seq"], notify_outbox.c.recipient == user)).first()
    if exists:
        return 0
    who = recipients.person(conn, user) or {}
    state = "pending"
    if who.get("opt_out") and not notice.mandatory:
        state = "opted_out"
    elif not who.get("address"):
        state = "unaddressed"
    elif who.get("digest") and not notice.mandatory:
        state = "held"
    conn.execute(notify_outbox.insert().values(
        event_seq=event["seq"], action=event["action"], recipient=user, address=who.get("address"),
        subject=notice.subject, body=notice.body, mandatory=notice.mandatory, state=state, attempts=0,
        next_attempt_at=stamp, created_at=stamp))
    return 1


def _claim_addresses(conn) -> None:
    """Unaddressed mails of people who now have an address become pending."""
    rows = conn.execute(sa.select(notify_outbox.c.id, notify_outbox.c.recipient)
                        .where(notify_outbox.c.state == "unaddressed")).all()
    for oid, user in rows:
        who = recipients.person(conn, user)
        if who and who.get("address"):
            conn.execute(notify_outbox.update().where(notify_outbox.c.id == oid)
                         .values(state="pending", address=who["address"]))


def _make_digests(conn, settings: SpeNotify, now: datetime) -> None:
    """Held mails of a person whose oldest one waited a day become one digest mail."""
    held = conn.execute(sa.select(notify_outbox).where(notify_outbox.c.state == "held")
                        .order_by(notify_outbox.c.event_seq)).mappings().all()
    by_user: dict[str, list] = {}
    for row in held:
        by_user.setdefault(row["recipient"], []).append(row)
    cutoff = utc_now_iso(now - DIGEST_PERIOD)
    stamp = utc_now_iso(now)
    for user, rows in by_user.items():
        if rows[0]["created_at"] > cutoff:
            continue
        who = recipients.person(conn, user) or {}
        lines = [f"{len(rows)} notice(s) from SPE since {rows[0]['created_at'][:16].replace('T', ' ')} UTC:", ""]
        for r in rows:
            link = next((ln for ln in r["body"].splitlines() if ln.startswith("Open: ")), "")
            lines += [r["subject"].removeprefix("[SPE] "), f"  {link}", ""]
        lines.append("This mail carries no data: sign in to see the details.")
        conn.execute(notify_outbox.insert().values(
            event_seq=-rows[-1]["event_seq"], action="notify.digest", recipient=user, address=who.get("address"),
            subject=f"[SPE] Daily digest: {len(rows)} notice(s)", body="\n".join(lines) + "\n", mandatory=False,
            state="pending" if who.get("address") else "unaddressed", attempts=0, next_attempt_at=stamp,
            created_at=stamp))
        conn.execute(notify_outbox.update().where(notify_outbox.c.id.in_([r["id"] for r in rows]))
                     .values(state="digested"))


def deliver(engine: sa.Engine, settings: SpeNotify, now: datetime | None = None) -> tuple[int, int]:
    """Send every due mail; returns (sent, failed tries). A failure to reach the server counts
    as a failed try of every due mail (each is retried later); nothing is lost."""
    now = now or datetime.now(timezone.utc)
    stamp = utc_now_iso(now)
    with engine.begin() as conn:
        _claim_addresses(conn)
        _make_digests(conn, settings, now)
        due = conn.execute(sa.select(notify_outbox).where(
            notify_outbox.c.state == "pending", notify_outbox.c.next_attempt_at <= stamp)
            .order_by(notify_outbox.c.id)).mappings().all()
    if not due or not settings.smtp_host:
        return 0, 0
    sent = failed = 0
    session = None
    try:
        session = smtp.connect(settings)
    except Exception as err:  # unreachable, TLS refused, login refused, no password file: every due mail waits
        for row in due:
            _failed(engine, settings, row, err, now)
        return 0, len(due)
    try:
        for row in due:
            msg = smtp.make_message(settings, row["address"], row["subject"], row["body"],
                                    f"spe.{row['event_seq']}.{row['id']}")
            try:
                smtp.send(session, msg)
            except (OSError, smtplib.SMTPException) as err:
                _failed(engine, settings, row, err, now)
                failed += 1
                if isinstance(err, (OSError, smtplib.SMTPServerDisconnected)):
                    break  # the connection is gone: the rest wait for the next round
                continue
            with engine.begin() as conn:
                conn.execute(notify_outbox.update().where(notify_outbox.c.id == row["id"]).values(
                    state="sent", sent_at=utc_now_iso(), attempts=row["attempts"] + 1, last_error=None))
            sent += 1
    finally:
        try:
            session.quit()
        except (OSError, smtplib.SMTPException):
            session.close()
    return sent, failed


def _failed(engine: sa.Engine, settings: SpeNotify, row, err: BaseException, now: datetime) -> None:
    attempts = row["attempts"] + 1
    wait = rules.backoff_seconds(attempts, settings.retry_base_seconds)
    state = "failed" if attempts >= settings.max_attempts else "pending"
    error = f"{type(err).__name__}: {err}"[:500]
    with engine.begin() as conn:
        conn.execute(notify_outbox.update().where(notify_outbox.c.id == row["id"]).values(
            attempts=attempts, state=state, last_error=error,
            next_attempt_at=utc_now_iso(now + timedelta(seconds=wait))))
    log.warning("mail %s to %s: try %d failed (%s)%s", row["id"], row["recipient"], attempts, error,
                "; giving up" if state == "failed" else f"; next try in {wait} s")


def run_once(engine: sa.Engine, settings: SpeNotify, now: datetime | None = None) -> RoundResult:
    today = (now or datetime.now(timezone.utc)).date()
    emit_ending_notices(engine, today, settings.permit_ending_days)
    events, queued = enqueue(engine, settings, now)
    sent, failed = deliver(engine, settings, now)
    return RoundResult(events=events, queued=queued, sent=sent, failed_tries=failed)


def list_mails(engine: sa.Engine, state: str | None = None, limit: int = 100) -> list[dict]:
    if state is not None and state not in STATES:
        raise InvalidInput(f"must be one of {', '.join(STATES)}", field="state")
    q = sa.select(notify_outbox.c.id, notify_outbox.c.event_seq, notify_outbox.c.action, notify_outbox.c.recipient,
                  notify_outbox.c.state, notify_outbox.c.attempts, notify_outbox.c.next_attempt_at,
                  notify_outbox.c.sent_at, notify_outbox.c.last_error, notify_outbox.c.subject)
    if state:
        q = q.where(notify_outbox.c.state == state)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(notify_outbox.c.id.desc()).limit(limit)).mappings()]


def retry(engine: sa.Engine, actor: str, ids: list[int] | None = None, now: datetime | None = None) -> list[int]:
    """Queue failed mails (all, or these ids) for an immediate send; audited as `notify.retry`."""
    stamp = utc_now_iso(now)
    with engine.begin() as conn:
        q = sa.select(notify_outbox.c.id, notify_outbox.c.state).where(
            notify_outbox.c.state.in_(["failed", "pending"]))
        if ids:
            q = q.where(notify_outbox.c.id.in_(ids))
            found = {r[0]: r[1] for r in conn.execute(sa.select(notify_outbox.c.id, notify_outbox.c.state)
                                                      .where(notify_outbox.c.id.in_(ids)))}
            missing = sorted(set(ids) - set(found))
            if missing:
                raise InvalidInput(f"no mail with id {', '.join(map(str, missing))} (see spe notify list)", field="id")
            sent = sorted(i for i, s in found.items() if s not in ("failed", "pending"))
            if sent:
                raise InvalidInput(f"mail {', '.join(map(str, sent))} is not failed or pending", field="id")
        else:
            q = q.where(notify_outbox.c.state == "failed")
        chosen = sorted(r[0] for r in conn.execute(q))
        if chosen:
            conn.execute(notify_outbox.update().where(notify_outbox.c.id.in_(chosen)).values(
                state="pending", attempts=0, next_attempt_at=stamp))
        audit.record(conn, actor=actor, role="operator", action="notify.retry",
                     detail={"mails": chosen[:1000], "count": len(chosen)})
    return chosen
