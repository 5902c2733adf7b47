"""`spe audit ...`: verify the chain, sign checkpoints, purge by retention, export and verify
evidence packs, show a permit's timeline. Every command that changes something is audited."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from hub.audit import pack as packs
from hub.audit.anchors import merge_anchors, parse_snapshot
from hub.audit.checkpoint import (KEY_FILE, Verifier, checkpoint, load_or_create_signer, parse_public_key,
                                  RETIRED_FILE, public_key_file, retired_verifiers, rotate_key)
from hub.audit.retention import purge, retention_cutoff
from hub.audit.signer import SOCKET_NAME, signer_for
from hub.audit.store import record
from hub.audit.verification import verify
from hub.audit.events import EVENT_TYPES
from hub.audit.tables import audit_events
from hub.audit.timeline import timeline
from hub.cli.common import engine_for, print_table
from hub.exceptions import InvalidInput


def register(sub) -> None:
    p = sub.add_parser("audit", help="verify, sign, purge, export and read the audit trail")
    s = p.add_subparsers(dest="audit_cmd", required=True)
    v = s.add_parser("verify", help="verify the hash chain and checkpoints; names the first damaged event")
    v.add_argument("--public-key", help="verify checkpoint signatures with this public key file "
                                        "(default: the operator key in the SPE home)")
    v.add_argument("--json", action="store_true")
    v.add_argument("--against-register", action="append", default=[], metavar="FILE",
                   help="a saved copy of the transparency register (register.json or the page); the chain must "
                        "match the checkpoint hashes it published (repeat for several copies)")
    v.set_defaults(func=cmd_verify)
    c = s.add_parser("checkpoint", help="sign the chain head with the operator key")
    c.set_defaults(func=cmd_checkpoint)
    k = s.add_parser("public-key", help="print the operator's public key (give it to auditors)")
    k.add_argument("--all", action="store_true", help="also the retired keys earlier checkpoints were signed with")
    k.set_defaults(func=cmd_public_key)
    rk = s.add_parser("rotate-key", help="replace the signing key; old checkpoints stay verifiable")
    rk.set_defaults(func=cmd_rotate_key)
    pu = s.add_parser("purge", help="remove events older than the retention (minimum 365 days)")
    pu.add_argument("--before", help="purge events before this date (YYYY-MM-DD)")
    pu.add_argument("--retention-days", type=int, help="keep this many days (>= 365)")
    pu.set_defaults(func=cmd_purge)
    e = s.add_parser("export", help="write an evidence pack (events + checkpoints + public key)")
    e.add_argument("--permit")
    e.add_argument("--from", dest="ts_from", help="from this date/time (inclusive, UTC)")
    e.add_argument("--to", dest="ts_to", help="to this date/time (exclusive, UTC)")
    e.add_argument("--format", choices=packs.FORMATS, default="jsonl")
    e.add_argument("--output", "-o", help="file to write (default stdout)")
    e.set_defaults(func=cmd_export)
    vp = s.add_parser("verify-pack", help="verify an evidence pack offline")
    vp.add_argument("file")
    vp.add_argument("--public-key", help="pin the operator public key file the pack must be signed with")
    vp.add_argument("--against-register", action="append", default=[], metavar="FILE",
                    help="a saved copy of the transparency register whose checkpoint hashes the pack must match")
    vp.set_defaults(func=cmd_verify_pack)
    t = s.add_parser("timeline", help="one permit's activity in order (login, spawn, cells, saves, egress, stop)")
    t.add_argument("--permit", required=True)
    t.add_argument("--user")
    t.add_argument("--from", dest="ts_from")
    t.add_argument("--to", dest="ts_to")
    t.set_defaults(func=cmd_timeline)
    log = s.add_parser("log", help="show recent events")
    log.add_argument("--permit")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(func=cmd_log)
    sc = s.add_parser("schema", help="list the registered event types and their required detail keys")
    sc.set_defaults(func=cmd_schema)


def _signer(settings):
    """The audit signer process's key when it runs for this home (hub.audit.signer), else the local key."""
    return signer_for(settings.home, settings.keys_dir)


def _verifier(settings, path: str | None) -> Verifier | None:
    """The one key a pack must be signed with (`--public-key`: the first line of the file)."""
    keys = _verifiers(settings, path)
    return keys[0] if keys else None


def _verifiers(settings, path: str | None) -> list[Verifier] | None:
    """Every key the trail's checkpoints may carry: the file's lines, or the operator's current
    and retired keys; None when there is none."""
    if path:
        try:
            return [parse_public_key(line) for line in Path(path).read_text().splitlines() if line.strip()] or None
        except (OSError, ValueError, IndexError) as err:
            raise InvalidInput(f"cannot read public key: {err}", field="public-key") from None
    if (settings.keys_dir / KEY_FILE).exists() or (settings.home / SOCKET_NAME).exists():
        return [_signer(settings).verifier(), *retired_verifiers(settings.keys_dir)]
    return None


def _anchors(paths: list[str]) -> dict[int, str] | None:
    """seq -> hash from saved register snapshots, or None when none are given."""
    if not paths:
        return None
    snapshots = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidInput(f"cannot read register snapshot {path}: {err}", field="against-register") from None
        snapshots.append(parse_snapshot(text, name=path))
    return merge_anchors(snapshots)


def cmd_verify(args, settings) -> int:
    engine = engine_for(settings)
    # Large trails are checked in parallel ranges (one process per core).
    anchors = _anchors(args.against_register)
    result = verify(engine, verifier=_verifiers(settings, args.public_key), workers=min(4, os.cpu_count() or 1),
                    anchors=anchors)
    with engine.begin() as conn:
        detail = {"ok": result.ok, "events": result.events, "head_seq": result.head_seq,
                  "signatures_checked": result.signatures_checked}
        if result.damage:
            detail.update(damage_kind=result.damage.kind, damage_seq=result.damage.seq)
        if anchors:
            detail["register_anchors"] = len(anchors)
        record(conn, actor=settings.actor, role="operator", action="audit.verify",
                     outcome="ok" if result.ok else "failed", detail=detail)
    if args.json:
        json.dump(result.as_dict(), sys.stdout, indent=2)
        print()
    else:
        print(result.describe())
    return 0 if result.ok else 4


def cmd_checkpoint(args, settings) -> int:
    cp = checkpoint(engine_for(settings), _signer(settings), actor=settings.actor)
    print(f"checkpoint {cp['id']}: event {cp['seq']} hash {cp['hash'][:16]}… signed by key {cp['key_id']}")
    return 0


def cmd_public_key(args, settings) -> int:
    print(public_key_file(_signer(settings)), end="")
    retired = settings.keys_dir / RETIRED_FILE
    if args.all and retired.exists():
        print(retired.read_text(), end="")
    return 0


def cmd_rotate_key(args, settings) -> int:
    if (settings.home / SOCKET_NAME).exists():
        raise InvalidInput("the key is held by the audit signer process: rotate it there "
                           "(stop the signer, rotate with its --keys directory as the SPE home's keys)",
                           field="rotate-key")
    old, new = rotate_key(engine_for(settings), settings.keys_dir, actor=settings.actor)
    print(f"signing key {old.key_id} retired (its public key kept for verification); new key {new.key_id}; "
          f"give auditors the new public key (spe audit public-key)")
    return 0


def cmd_purge(args, settings) -> int:
    before = None
    if args.before:
        try:
            before = datetime.fromisoformat(args.before)
        except ValueError:
            raise InvalidInput(f"not a date: {args.before!r}", field="before") from None
    cutoff = retention_cutoff(retention_days=args.retention_days, before=before)
    res = purge(engine_for(settings), _signer(settings), actor=settings.actor, cutoff=cutoff,
                verifier=_verifiers(settings, None))
    if not res.events:
        print(f"nothing to purge before {cutoff.date()}")
    else:
        print(f"purged {res.events} events up to event {res.through_seq}; "
              f"purge checkpoint {res.checkpoint['id']} carries the chain")
    return 0


def cmd_export(args, settings) -> int:
    flt = packs.ExportFilter(permit_id=args.permit, ts_from=packs.parse_time_bound(args.ts_from, "from"),
                             ts_to=packs.parse_time_bound(args.ts_to, "to"))
    signer = _signer(settings)
    engine = engine_for(settings)
    if args.output:
        tmp = Path(args.output + ".part")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            counts = packs.export_pack(engine, fh, signer=signer, actor=settings.actor, flt=flt, fmt=args.format)
        tmp.replace(args.output)
    else:
        counts = packs.export_pack(engine, sys.stdout, signer=signer, actor=settings.actor, flt=flt, fmt=args.format)
    print(f"exported {counts['events']} events (+{counts['stubs']} stubs) anchored at signed event "
          f"{counts['anchor_seq']}", file=sys.stderr)
    return 0


def cmd_verify_pack(args, settings) -> int:
    pinned = None
    if args.public_key:
        pinned = _verifier(settings, args.public_key)
    try:
        fh = open(args.file, encoding="utf-8", newline="")
    except OSError as err:
        raise InvalidInput(f"cannot open: {err.strerror}", field="file") from None
    with fh:
        result = packs.verify_pack(fh, pinned=pinned, anchors=_anchors(args.against_register))
    print(result.describe())
    if result.ok and pinned is None:
        print(f"note: the pack's own key {result.key_id} was used; pin the operator key with --public-key")
    return 0 if result.ok else 4


def cmd_timeline(args, settings) -> int:
    with engine_for(settings).connect() as conn:
        rows = timeline(conn, permit_id=args.permit, user=args.user,
                        ts_from=packs.parse_time_bound(args.ts_from, "from"),
                        ts_to=packs.parse_time_bound(args.ts_to, "to"))
        n = 0
        for r in rows:
            n += 1
            print(f"{r['ts']}  #{r['seq']:<7} {r['actor']:<16} {r['outcome']:<8} {r['summary']}")
    if not n:
        print("(no events)")
    return 0


def cmd_log(args, settings) -> int:
    q = sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(max(1, min(args.limit, 10000)))
    if args.permit:
        q = q.where(audit_events.c.permit_id == args.permit)
    with engine_for(settings).connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings().all()][::-1]
    print_table(rows, ["seq", "ts", "actor", "action", "permit_id", "object_id", "outcome"])
    return 0


def cmd_schema(args, settings) -> int:
    rows = [{"action": t.action, "version": t.version, "category": t.category,
             "required": ",".join(t.required), "description": t.description} for t in EVENT_TYPES.values()]
    print_table(rows, ["action", "version", "category", "required", "description"])
    return 0
