"""Authenticated event submission for components that cannot write the registry DB directly
(a workspace-side agent, a remote service): HMAC-signed envelopes with a per-source monotonic
sequence number and a nonce.

A forged envelope (bad MAC, unknown source), a replayed one (seen nonce or old sequence) or an
out-of-order one (a gap in the sequence) is refused with a clear reason and changes nothing;
an accepted one is appended with `record()` in the same transaction that advances the
source's sequence, so a crash can never accept an envelope twice. `submission_handlers` mounts
this as `POST <prefix>/audit/submit`.

Envelope (JSON): {"source", "seq", "nonce", "event": {actor, action, ...}, "mac"} where
mac = HMAC-SHA-256(secret of source, canonical JSON of everything but "mac").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _secrets

import sqlalchemy as sa

from hub.audit.store import record
from hub.db import metadata
from hub.exceptions import Forbidden, InvalidInput, Refused

audit_submitters = sa.Table(
    "audit_submitters",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)
audit_nonces = sa.Table(
    "audit_nonces",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
)

EVENT_KEYS = ("actor", "action", "role", "permit_id", "object_id", "outcome", "detail")
MAX_ENVELOPE_BYTES = 256 * 1024


def canonical(envelope: dict) -> bytes:
    body = {k: v for k, v in envelope.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_envelope(secret: bytes, *, source: str, seq: int, event: dict, nonce: str | None = None) -> dict:
    env = {"source": source, "seq": seq, "nonce": nonce or _secrets.token_hex(16), "event": event}
    env["mac"] = hmac.new(secret, canonical(env), hashlib.sha256).hexdigest()
    return env


def parse_envelope(raw: bytes) -> dict:
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise InvalidInput(f"larger than {MAX_ENVELOPE_BYTES} bytes", field="body")
    try:
        env = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("not JSON", field="body") from None
    if not isinstance(env, dict) or set(env) != {"source", "seq", "nonce", "event", "mac"}:
        raise InvalidInput("an envelope has exactly: source, seq, nonce, event, mac", field="body")
    if not isinstance(env["seq"], int) or isinstance(env["seq"], bool) or env["seq"] < 1:
        raise InvalidInput("must be a positive integer", field="seq")
    for k in ("source", "nonce", "mac"):
        if not isinstance(env[k], str) or not 1 <= len(env[k]) <= 100:
            raise InvalidInput("must be a non-empty string", field=k)
    if not isinstance(env["event"], dict) or set(env["event"]) - set(EVENT_KEYS):
        raise InvalidInput(f"event keys are limited to {EVENT_KEYS}", field="event")
    return env


_ready: set[int] = set()


def _ensure_tables(engine: sa.Engine) -> None:
    if id(engine) not in _ready:
        metadata.create_all(engine, tables=[audit_submitters, audit_nonces])
        _ready.add(id(engine))


def accept(engine: sa.Engine, source_secrets: dict[str, bytes], env: dict) -> int:
    """Verify and append one envelope; returns the audit seq. Refusals change nothing."""
    _ensure_tables(engine)
    secret = source_secrets.get(env["source"])
    expected = hmac.new(secret or b"\0", canonical(env), hashlib.sha256).hexdigest()
    if secret is None or not hmac.compare_digest(expected, env["mac"]):
        raise Forbidden("event submission refused: the signature does not verify (forged or unknown source)")
    with engine.begin() as conn:
        row = conn.execute(sa.select(audit_submitters.c.last_seq)
                           .where(audit_submitters.c.source == env["source"])).first()
        last = row.last_seq if row else 0
        seen = conn.execute(sa.select(audit_nonces.c.nonce).where(audit_nonces.c.source == env["source"],
                                                                  audit_nonces.c.nonce == env["nonce"])).first()
        if seen is not None or env["seq"] <= last:
            raise Refused(f"event submission refused: replayed (sequence {env['seq']}, last accepted {last})")
        if env["seq"] != last + 1:
            raise Refused(f"event submission refused: out of order (sequence {env['seq']}, expected {last + 1})")
        if row is None:
            conn.execute(audit_submitters.insert().values(source=env["source"], last_seq=env["seq"]))
        else:
            conn.execute(audit_submitters.update().where(audit_submitters.c.source == env["source"])
                         .values(last_seq=env["seq"]))
        conn.execute(audit_nonces.insert().values(source=env["source"], nonce=env["nonce"]))
        event = dict(env["event"])
        event.setdefault("detail", None)
        event["detail"] = {**(event["detail"] or {}), "submitted_by": env["source"], "submission_seq": env["seq"]} \
            if isinstance(event["detail"], (dict, type(None))) else event["detail"]
        return record(conn, **event)


def submission_handlers(prefix: str, engine: sa.Engine, source_secrets: dict[str, bytes]) -> list[tuple]:
    """`POST <prefix>/audit/submit` accepting signed envelopes (tornado routes)."""
    from tornado import web

    class SubmitHandler(web.RequestHandler):
        def check_xsrf_cookie(self):  # authenticated by the envelope's MAC, not a cookie
            return

        def post(self):
            self.set_header("Content-Type", "application/json")
            try:
                seq = accept(engine, source_secrets, parse_envelope(self.request.body))
            except Refused as err:
                self.set_status(err.http_status)
                self.finish(json.dumps({"error": str(err), "field": getattr(err, "field", None)}))
                return
            self.finish(json.dumps({"seq": seq}))

    return [(prefix.rstrip("/") + "/audit/submit", SubmitHandler, {})]
