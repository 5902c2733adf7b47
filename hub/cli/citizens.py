"""`spe findings list|review|resolve|to-inform`: significant findings (hub.citizens.findings).
`spe citizens build-donated`: the data trustee pseudonymises the held donations into the
`donated` dataset and brings the live permits on it up to date (hub.citizens.trustee).
`spe citizens donations`: how many donations are held or withdrawn (never who donated)."""

from __future__ import annotations

import sys

import sqlalchemy as sa

from hub.citizens.tables import donations
from hub.citizens.trustee import build_donated
from hub.cli.common import engine_for, print_table


def register(sub) -> None:
    p = sub.add_parser("citizens", help="citizens' donations (data trustee)")
    s = p.add_subparsers(dest="citizens_cmd", required=True)
    b = s.add_parser("build-donated", help="pseudonymise held donations into the `donated` dataset")
    b.set_defaults(func=cmd_build)
    d = s.add_parser("donations", help="count donations by state and format")
    d.set_defaults(func=cmd_donations)
    register_findings(sub)


def cmd_build(args, settings) -> int:
    out = build_donated(engine_for(settings), settings, settings.actor, progress=lambda m: print(m, file=sys.stderr))
    print(f"donated dataset: {out['persons']} person(s) from {out['donations']} held donation(s); "
          f"{len(out['permits'])} permit(s) re-provisioned")
    for p in out["permits"]:
        print(f"  {p['permit_id']}: extract version {p['extract_version']}, deleted versions "
              f"{', '.join(map(str, p['removed_versions'])) or 'none'}")
    return 0


def cmd_donations(args, settings) -> int:
    with engine_for(settings).connect() as conn:
        rows = conn.execute(sa.select(donations.c.state, donations.c.format, sa.func.count())
                            .group_by(donations.c.state, donations.c.format)).all()
    print_table([{"state": r[0], "format": r[1], "count": r[2]} for r in rows], ["state", "format", "count"])
    return 0


def register_findings(sub) -> None:
    p = sub.add_parser("findings", help="significant findings (EHDS Art. 61(5)): review, resolve, inform")
    s = p.add_subparsers(dest="findings_cmd", required=True)
    ls = s.add_parser("list", help="findings by state (never the person)")
    ls.add_argument("--state", choices=["reported", "accepted", "rejected", "resolved", "unresolvable"])
    ls.set_defaults(func=cmd_findings_list)
    rv = s.add_parser("review", help="the HDAB accepts or rejects a reported finding")
    rv.add_argument("finding")
    rv.add_argument("decision", choices=["accept", "reject"])
    rv.add_argument("--reason", required=True)
    rv.set_defaults(func=cmd_findings_review)
    rs = s.add_parser("resolve", help="the key holder resolves an accepted finding's pseudonym")
    rs.add_argument("finding")
    rs.set_defaults(func=cmd_findings_resolve)
    ti = s.add_parser("to-inform", help="the data holder's list: whom to inform, by its own person key")
    ti.add_argument("dataset")
    ti.set_defaults(func=cmd_findings_to_inform)


def cmd_findings_list(args, settings) -> int:
    from hub.citizens.findings import listing

    print_table(listing(engine_for(settings), args.state), ["id", "permit_id", "state", "reported_at", "channel"])
    return 0


def cmd_findings_review(args, settings) -> int:
    from hub.citizens.findings import review

    out = review(engine_for(settings), args.finding, settings.actor, args.decision == "accept", args.reason)
    print(f"{out['id']}: {out['state']}")
    return 0


def cmd_findings_resolve(args, settings) -> int:
    from hub.citizens.findings import resolve

    out = resolve(engine_for(settings), settings, args.finding, settings.actor)
    where = {"citizen": "shown on the person's citizens' page", "data_holder": "listed for the data holder",
             None: "no person has this pseudonym"}[out["channel"]]
    print(f"{out['id']}: {out['state']} ({where})")
    return 0


def cmd_findings_to_inform(args, settings) -> int:
    from hub.citizens.findings import to_inform

    print_table(to_inform(engine_for(settings), args.dataset), ["id", "source_person", "text"])
    return 0
