"""`spe citizens build-donated`: the data trustee pseudonymises the held donations into the
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
