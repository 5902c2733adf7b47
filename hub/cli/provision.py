"""`spe permit provision ID`: build the permit's extract (progress on stderr)."""

from __future__ import annotations

import sys

from hub.cli.common import engine_for
from hub.provision.run import provision


def register_provision(sub) -> None:
    p = sub.add_parser("provision", help="build the permit's minimised extract")
    p.add_argument("permit_id")
    p.add_argument("--memory-limit", default="2GB")
    p.set_defaults(func=cmd_provision)


def cmd_provision(args, settings) -> int:
    result = provision(engine_for(settings), settings, args.permit_id, settings.actor,
                       progress=lambda m: print(f"provision {args.permit_id}: {m}", file=sys.stderr),
                       memory_limit=args.memory_limit)
    m = result.manifest
    k = m.get("k_anonymity") or {}
    print(f"extract {result.permit_id}/{result.extract_version}: {m['persons']} persons, "
          f"{sum(t['rows'] for t in m['tables'].values())} rows in {len(m['tables'])} tables, "
          f"{m['optout']['excluded']} opted-out excluded, smallest QI class {k.get('smallest_class')}, "
          f"{result.seconds:.1f} s -> {result.path}")
    return 0
