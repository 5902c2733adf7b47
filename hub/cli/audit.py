"""`spe audit verify|log`: check the hash chain and read recent events."""

from __future__ import annotations

import sqlalchemy as sa

from hub import audit
from hub.audit.tables import audit_events
from hub.cli.common import engine_for, print_table


def register(sub) -> None:
    p = sub.add_parser("audit", help="verify and read the audit trail")
    s = p.add_subparsers(dest="audit_cmd", required=True)
    v = s.add_parser("verify", help="verify the hash chain; names the first damaged event")
    v.set_defaults(func=cmd_verify)
    log = s.add_parser("log", help="show recent events")
    log.add_argument("--permit")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(func=cmd_log)


def cmd_verify(args, settings) -> int:
    result = audit.verify(engine_for(settings))
    print(result.describe())
    return 0 if result.ok else 4


def cmd_log(args, settings) -> int:
    q = sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(max(1, min(args.limit, 10000)))
    if args.permit:
        q = q.where(audit_events.c.permit_id == args.permit)
    with engine_for(settings).connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings().all()][::-1]
    print_table(rows, ["seq", "ts", "actor", "action", "permit_id", "object_id", "outcome"])
    return 0
