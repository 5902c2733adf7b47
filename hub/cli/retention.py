"""`spe retention run [--dry-run]`: delete what is past each permit's retention.

The deleting is done by the extensions that hold the data (`hub.extensions`: egress deletes the
files of withdrawn, rejected and draft output requests and the working copies of released
ones, `egress.retention`); each deletion is
an audit event that keeps the files' hashes. Audit events have their own retention
(`spe audit purge`, at least 365 days).
"""

from __future__ import annotations

from hub import extensions
from hub.cli.common import engine_for


def register(sub) -> None:
    p = sub.add_parser("retention", help="delete data past each permit's retention")
    s = p.add_subparsers(dest="retention_cmd", required=True)
    r = s.add_parser("run", help="delete the files of ended output requests past their permit's retention.egress_days")
    r.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    r.set_defaults(func=cmd_run)


def cmd_run(args, settings) -> int:
    engine = engine_for(settings)
    items = []
    for ext in extensions.installed():
        if ext.retention is not None:
            items += ext.retention(engine, settings, dry_run=args.dry_run, actor=settings.actor)
    verb = "would delete" if args.dry_run else "deleted"
    for it in items:
        print(f"{it['permit_id']} {it['request']} ({it['state']} since {it['since'][:10]}, "
              f"retention {it['retention_days']} days): {verb} {len(it['files'])} file(s), "
              f"{len(it['blobs'])} stored blob(s)")
    print(f"{len(items)} request(s) past retention{' (dry run: nothing deleted)' if args.dry_run else ''}")
    return 0
