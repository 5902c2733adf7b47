"""`spe mirror add|remove|list`: the reviewed package mirror's indexes (hub.mirror).

    spe mirror add six==1.16.0 --permit DEMO-2026-001     download (operator side) and add
    spe mirror add ./inhouse-1.0-py3-none-any.whl --all   a local wheel, for every permit
    spe mirror remove six==1.16.0 --permit DEMO-2026-001
    spe mirror list [--permit ID | --all] [--json]

Downloads come from one index: --index-url, else $SPE_MIRROR_INDEX_URL, else the host pip's
index, else PyPI; the CA bundle as for the image build ($SPE_EXTRA_CA_BUNDLE, PIP_CERT, ...).
Every change is audited (`mirror.add`, `mirror.remove`); a refused one too (`cli.mirror.*`).
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.cli.common import engine_for, print_json, print_table
from hub.exceptions import Conflict, InvalidInput
from hub.mirror.download import DownloadSettings, download_wheel
from hub.mirror.store import PackageMirror
from hub.mirror.wheels import parse_requirement
from hub.pipconfig import find_extra_ca_bundle, find_index_url


def register(sub) -> None:
    p = sub.add_parser("mirror", help="the reviewed package mirror (wheels workspaces may pip install)")
    s = p.add_subparsers(dest="mirror_cmd", required=True)
    add = s.add_parser("add", help="add releases (NAME==VERSION, downloaded here) or local wheel files to an index")
    add.add_argument("specs", nargs="+", metavar="NAME==VERSION|FILE.whl")
    _index_args(add)
    add.add_argument("--index-url", help="the index to download from (default: $SPE_MIRROR_INDEX_URL, "
                                         "the host pip's index-url, else PyPI)")
    add.add_argument("--python-version", default="3.11", help="the workspaces' Python (default 3.11)")
    add.set_defaults(func=cmd_add)
    rm = s.add_parser("remove", help="remove a release (every wheel of NAME==VERSION) from an index")
    rm.add_argument("spec", metavar="NAME==VERSION")
    _index_args(rm)
    rm.add_argument("--reason", default="", help="why (kept in the audit trail)")
    rm.set_defaults(func=cmd_remove)
    ls = s.add_parser("list", help="the wheels of one index, or of all")
    group = ls.add_mutually_exclusive_group()
    group.add_argument("--permit", dest="permit_id", help="a permit's own index")
    group.add_argument("--all", dest="shared", action="store_true", help="the shared index")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)


def _index_args(parser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--permit", dest="permit_id", help="the index of this permit only")
    group.add_argument("--all", dest="shared", action="store_true", help="the shared index (every permit)")


def _mirror(settings) -> PackageMirror:
    return PackageMirror(engine_for(settings), settings.mirror_dir)


def cmd_add(args, settings) -> int:
    mirror = _mirror(settings)
    index = mirror.index_name(None if args.shared else args.permit_id)
    ca = find_extra_ca_bundle(os.environ)
    download = DownloadSettings(index_url=args.index_url or find_index_url(os.environ),
                                ca_bundle=str(ca) if ca else "", python_version=args.python_version)
    for spec in args.specs:  # check them all before fetching any
        if not spec.endswith(".whl"):
            parse_requirement(spec, field="spec")
        elif not Path(spec).is_file():
            raise InvalidInput(f"no such wheel file: {spec}", field="spec")
    where = "the shared index" if args.shared else f"the index of permit {index}"
    for spec in args.specs:
        if spec.endswith(".whl"):
            path = Path(spec)
            row = mirror.add(index, path.name, path.read_bytes(), actor=settings.actor, source=str(path.resolve()))
        else:
            requirement = parse_requirement(spec, field="spec")
            if mirror.list(index, requirement):
                raise Conflict(f"{requirement} is already in {where}")
            print(f"downloading {requirement} from {download.index_url} ...", flush=True)
            info, data = download_wheel(requirement, download)
            row = mirror.add(index, info.filename, data, actor=settings.actor, source=download.index_url,
                             expected=requirement)
        print(f"added {row['filename']} ({row['size_bytes']} bytes, sha256 {row['sha256']}) to {where}")
    return 0


def cmd_remove(args, settings) -> int:
    mirror = _mirror(settings)
    index = mirror.index_name(None if args.shared else args.permit_id)
    removed = mirror.remove(index, parse_requirement(args.spec, field="spec"), actor=settings.actor, reason=args.reason)
    print(f"removed {', '.join(removed)}")
    return 0


def cmd_list(args, settings) -> int:
    mirror = _mirror(settings)
    index = None
    if args.shared or args.permit_id:
        index = mirror.index_name(None if args.shared else args.permit_id)
    rows = mirror.list(index)
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        r["state"] = "served" if r["present"] else "MISSING"
    print_table(rows, ["index", "project", "version", "filename", "added_by", "added_at", "origin", "state"])
    return 0
