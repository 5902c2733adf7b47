"""`spe optout import FILE`: add national identifiers to the opt-out registry."""

from __future__ import annotations

from hub.cli.common import engine_for
from hub.optout import import_optouts
from hub.provision.keys import KeyStore


def register(sub) -> None:
    p = sub.add_parser("optout", help="EHDS Art. 71 opt-out registry")
    s = p.add_subparsers(dest="optout_cmd", required=True)
    imp = s.add_parser("import", help="import a file of national identifiers (one per line)")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)


def cmd_import(args, settings) -> int:
    total, added = import_optouts(engine_for(settings), KeyStore(settings.keys_dir), args.file, settings.actor)
    print(f"opt-outs: {total} identifiers read, {added} new; they apply to every later provisioning")
    return 0
