"""`python -m egress.dp budget PERMIT`: the operators' view of the DP budget ledger.

Spent and remaining epsilon/delta per budget scope of a permit (the shared budget, or one row
per member when `dp.per_member`), the totals taken from the permit in the registry, and with
`--charges` every charge (member, kind, query hash, cost). Read-only. An entry point: the only
place here that reads the environment (`SPE_HOME`, `SPE_DB_URL`, as the `spe` CLI does).
Errors are one line on stderr: exit 2 for bad input or an unknown permit, 3 for a failure.
"""

from __future__ import annotations

import argparse
import json
import sys

from hub.exceptions import SpeError


def budget_report(engine, permit_id: str, member: str | None, charges: bool) -> dict:
    from egress.dp.ledger import budget_view, list_charges
    from hub.permits.store import PermitStore

    permit = PermitStore(engine).get(permit_id)  # NotFound names the permit
    view = budget_view(engine, permit.id, member, budget=permit.dp)
    out = {"permit_id": permit.id, "per_member": permit.dp.per_member,
           "budgets": view if isinstance(view, list) else [view]}
    if charges:
        out["charges"] = list_charges(engine, permit.id, member)
    return out


def format_report(report: dict) -> str:
    lines = [f"permit {report['permit_id']} ({'per member' if report['per_member'] else 'shared'} budget)",
             f"{'scope':<20} {'eps total':>10} {'eps spent':>10} {'eps left':>10} {'delta left':>11}"]
    for b in report["budgets"]:
        lines.append(f"{b['scope']:<20} {b['epsilon_total']:>10.6g} {b['epsilon_spent']:>10.6g} "
                     f"{b['epsilon_remaining']:>10.6g} {b['delta_remaining']:>11.3g}")
    for c in report.get("charges", []):
        lines.append(f"  charge {c['id']}: {c['ts']} {c['member']} {c['kind']} {c['query_hash'][:12]} "
                     f"epsilon={c['epsilon']:g} delta={c['delta']:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m egress.dp", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="SPE state directory (default $SPE_HOME or ./.spe)")
    parser.add_argument("--db-url", help="registry database URL (default $SPE_DB_URL or SQLite in home)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("budget", help="spent and remaining DP budget of a permit")
    b.add_argument("permit")
    b.add_argument("--member", help="only this member's scope (their own budget, or the shared one)")
    b.add_argument("--charges", action="store_true", help="also list every charge")
    b.add_argument("--json", action="store_true", help="JSON instead of a table")
    args = parser.parse_args(argv)
    from egress.extension import install
    from hub.db import make_engine
    from hub.settings import Settings

    install()  # the DP ledger's tables exist before the first read
    try:
        settings = Settings.from_env(home=args.home, db_url=args.db_url)
        report = budget_report(make_engine(settings.db_url), args.permit, args.member, args.charges)
    except SpeError as err:
        print(f"egress.dp: error: {err}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # the registry cannot be read: one line, not a traceback
        first = str(err).splitlines()[0] if str(err) else ""
        print(f"egress.dp: failed: {type(err).__name__}: {first}", file=sys.stderr)
        return 3
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0
