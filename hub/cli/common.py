"""Helpers shared by CLI sub-commands: the engine, audited operator actions, table output."""

from __future__ import annotations

import json
import sys

from hub.db import make_engine
from hub.settings import Settings


def engine_for(settings: Settings):
    settings.ensure_dirs()
    return make_engine(settings.db_url)


def print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
