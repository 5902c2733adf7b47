"""`spe catalogue set|list|show|validate|export`: the HealthDCAT-AP catalogue (operator side)."""

from __future__ import annotations

import sys
from pathlib import Path

from hub.cli.common import engine_for, print_json, print_table
from hub.frontoffice.catalogue.store import Catalogue
from hub.frontoffice.config import load_hdab_config
from hub.frontoffice.roles import operator
from hub.yamlio import load_yaml_file


def register(sub) -> None:
    p = sub.add_parser("catalogue", help="the dataset catalogue (HealthDCAT-AP)")
    s = p.add_subparsers(dest="catalogue_cmd", required=True)
    a = s.add_parser("set", help="create or replace a dataset's catalogue entry from YAML (validated)")
    a.add_argument("file")
    a.set_defaults(func=cmd_set)
    s.add_parser("list", help="the catalogue entries").set_defaults(func=cmd_list)
    show = s.add_parser("show", help="one entry as stored")
    show.add_argument("dataset")
    show.set_defaults(func=cmd_show)
    s.add_parser("validate", help="check every entry against the HealthDCAT-AP shapes (exit 2 if one fails)"
                 ).set_defaults(func=cmd_validate)
    ex = s.add_parser("export", help="the catalogue as Turtle or JSON-LD (what harvesters read)")
    ex.add_argument("--format", choices=["ttl", "jsonld"], default="ttl")
    ex.add_argument("--page", type=int, help="one page of the catalogue (hdab.yaml catalogue.page_size)")
    ex.add_argument("--output", "-o", help="file to write (default: standard output)")
    ex.set_defaults(func=cmd_export)


def _catalogue(settings) -> Catalogue:
    return Catalogue(engine_for(settings), load_hdab_config(settings))


def cmd_set(args, settings) -> int:
    entry, outcome = _catalogue(settings).put(load_yaml_file(args.file, "catalogue entry"), operator(settings.actor))
    print(f"catalogue entry {entry['dataset']} {outcome}: version {entry['_version']}")
    return 0


def cmd_list(args, settings) -> int:
    rows = [{"dataset": e["dataset"], "title": e["title"]["en"][:50], "holder": e["holder"]["id"],
             "access_rights": e["access_rights"], "version": e["_version"], "maintainers": ",".join(e["maintainers"])}
            for e in _catalogue(settings).entries()]
    print_table(rows, ["dataset", "title", "holder", "access_rights", "version", "maintainers"])
    return 0


def cmd_show(args, settings) -> int:
    print_json(_catalogue(settings).get(args.dataset))
    return 0


def cmd_validate(args, settings) -> int:
    results = _catalogue(settings).validate_all()
    failed = 0
    for dataset, violations in sorted(results.items()):
        if not violations:
            print(f"{dataset}: conforms to HealthDCAT-AP")
            continue
        failed += 1
        for v in violations:
            print(f"{dataset}: {v.line()}")
    if not results:
        print("(no catalogue entries)")
    return 2 if failed else 0


def cmd_export(args, settings) -> int:
    body = _catalogue(settings).export(args.format, args.page)
    if args.output:
        Path(args.output).write_bytes(body)
        print(f"wrote {len(body)} bytes to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
    return 0
