"""`spe meter show|raise`: the daily browser output meter of the session recorder (hub.sessionlog).

    spe meter show [--permit ID] [--user NAME] [--day YYYY-MM-DD] [--json]
    spe meter raise --permit ID --user NAME --bytes 10M --reason "why" [--day YYYY-MM-DD]

A raise adds bytes to one researcher's budget of one permit for one day (default today, UTC);
the recorder picks it up within about a second and withheld output flows again. Every raise is
an audit event (`session.meter_raise`); a refused one is `cli.meter.raise`.
"""

from __future__ import annotations

import re
from datetime import date

from hub.cli.common import engine_for, print_json, print_table
from hub.exceptions import InvalidInput
from hub.sessionlog.meter import Key, today
from hub.sessionlog.meterdb import meter_rows, raise_budget

_SIZE = re.compile(r"^([0-9]+)([KMG]?)(i?B)?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `10M`, `1G` (powers of 1024) -> bytes; InvalidInput otherwise."""
    m = _SIZE.match(text.strip())
    if not m:
        raise InvalidInput(f"not a size (e.g. 10M, 512K, 1048576): {text!r}", field="bytes")
    return int(m.group(1)) * 1024 ** " KMG".index((m.group(2) or " ").upper())


def _day(text: str | None) -> str:
    if text is None:
        return today()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidInput(f"not a day (YYYY-MM-DD): {text!r}", field="day") from None


def register(sub) -> None:
    p = sub.add_parser("meter", help="the daily browser output meter (what workspaces send to browsers)")
    s = p.add_subparsers(dest="meter_cmd", required=True)
    show = s.add_parser("show", help="bytes delivered and withheld per permit, user and day")
    show.add_argument("--permit", dest="permit_id")
    show.add_argument("--user")
    show.add_argument("--day", help="YYYY-MM-DD (UTC); default: every day kept")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    up = s.add_parser("raise", help="add bytes to one researcher's budget of one permit for one day (audited)")
    up.add_argument("--permit", dest="permit_id", required=True)
    up.add_argument("--user", required=True)
    up.add_argument("--bytes", dest="size", required=True, help="how much to add: 10M, 512K, 1G or bytes")
    up.add_argument("--day", help="YYYY-MM-DD (UTC); default today")
    up.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    up.set_defaults(func=cmd_raise)


def cmd_show(args, settings) -> int:
    rows = meter_rows(engine_for(settings), permit_id=args.permit_id, day=args.day and _day(args.day), user=args.user)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no browser output metered yet")
        return 0
    for r in rows:
        r["used %"] = f"{100 * r['used_bytes'] / max(r['budget_bytes'], 1):.0f}"
    print_table(rows, ["day", "permit_id", "username", "used_bytes", "budget_bytes", "used %", "withheld_bytes",
                       "raised_bytes"])
    return 0


def cmd_raise(args, settings) -> int:
    key = Key(args.permit_id, args.user, _day(args.day))
    row = raise_budget(engine_for(settings), key, parse_size(args.size), settings.actor, args.reason)
    print(f"raised {key.user}'s budget on permit {key.permit_id} for {key.day} to {row['budget_bytes']} bytes "
          f"(used {row['used_bytes']}, withheld so far {row['withheld_bytes']})")
    return 0
