"""`spe optout import FILE`: add national identifiers to the opt-out registry.
`spe optout propagate [--all-now]`: re-provision the live permits whose extracts still hold someone
who opted out (due ones, or all at once) and delete their older versions (hub.citizens.optout).
`spe optout check`: the per-person proof, for one national identifier read from standard input
(never from the command line, which lands in shell histories)."""

from __future__ import annotations

import sys
from hub.citizens.identity import citizen_hash
from hub.citizens.membership import check_person
from hub.citizens.optout import pending, propagate_due
from hub.cli.common import engine_for, print_json, print_table
from hub.optout import import_optouts
from hub.provision.keys import KeyStore


def register(sub) -> None:
    p = sub.add_parser("optout", help="EHDS Art. 71 opt-out registry")
    s = p.add_subparsers(dest="optout_cmd", required=True)
    imp = s.add_parser("import", help="import a file of national identifiers (one per line)")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)
    prop = s.add_parser("propagate", help="re-provision live permits still holding persons who opted out")
    prop.add_argument("--all-now", action="store_true", help="do not wait for the propagation delay")
    prop.set_defaults(func=cmd_propagate)
    chk = s.add_parser("check", help="is the person whose national identifier is on stdin absent from every extract?")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=cmd_check)


def cmd_import(args, settings) -> int:
    total, added = import_optouts(engine_for(settings), KeyStore(settings.keys_dir), args.file, settings.actor)
    print(f"opt-outs: {total} identifiers read, {added} new; they apply to every later provisioning "
          f"(`spe optout propagate` re-provisions live permits)")
    return 0


def cmd_propagate(args, settings) -> int:
    done = propagate_due(engine_for(settings), settings, actor=settings.actor, all_now=args.all_now,
                         progress=lambda m: print(m, file=sys.stderr))
    for d in done:
        print(f"{d['permit_id']}: extract version {d['extract_version']}, deleted versions "
              f"{', '.join(map(str, d['removed_versions'])) or 'none'}")
    left = pending(engine_for(settings))
    print(f"{len(done)} permit(s) re-provisioned; {len(left)} pending"
          + (f" (next due {min(r['due_at'] for r in left)})" if left else ""))
    return 0


def cmd_check(args, settings) -> int:
    national_id = sys.stdin.readline()
    rows = check_person(engine_for(settings), citizen_hash(KeyStore(settings.keys_dir), national_id))
    if args.json:
        print_json(rows)
    else:
        print_table([{**r, "versions_on_disk_holding": ",".join(map(str, r["versions_on_disk_holding"])) or "-"}
                     for r in rows], ["permit_id", "current_version", "in_current", "versions_on_disk_holding"])
    return 1 if any(r["in_current"] or r["versions_on_disk_holding"] for r in rows) else 0
