#!/usr/bin/env python3
"""Generate helm/spe/values.schema.json from its documented source values.schema.yaml.

Helm reads only the JSON; the YAML is where the descriptions are written and reviewed.
`--check` exits 1 if the committed JSON is stale (used by tests/helm).
Imports only the standard library and PyYAML; nothing from hub or egress.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1] / "spe"


def render(source: Path) -> str:
    schema = yaml.safe_load(source.read_text())
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chart", type=Path, default=CHART)
    ap.add_argument("--check", action="store_true", help="fail if values.schema.json is out of date")
    args = ap.parse_args(argv)
    text = render(args.chart / "values.schema.yaml")
    target = args.chart / "values.schema.json"
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is stale: run python3 helm/tools/gen-schema.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
