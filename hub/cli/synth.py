"""`spe synth`: write a synthetic OMOP-like Parquet dataset for scale tests and demos.

Thin edge over `hub.synth.runner`: parses and checks the options (one-line errors via
`InvalidInput`), prints progress to stderr and a summary to stdout. Writes no registry state
(register the result with `spe dataset add NAME --parquet DIR --descriptor
hub/datasets/descriptors/synth.yaml`).
"""

from __future__ import annotations

import os
import sys

from hub.exceptions import InvalidInput
from hub.synth.runner import PART_PERSONS, Progress, generate


def register(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic OMOP-like Parquet dataset (deterministic per seed)",
                       description="Write OMOP-like tables (person, observation_period, visit_occurrence, "
                                   "condition_occurrence, drug_exposure, measurement, death) as "
                                   "DIR/<table>.parquet. The bytes depend only on --persons, --seed and "
                                   "--part-persons, never on --workers or --chunk-persons.")
    p.add_argument("--persons", required=True, metavar="N", help="number of persons (1 to 10 000 000)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (new or empty)")
    p.add_argument("--seed", default="0", metavar="S", help="seed, a whole number >= 0 (default 0)")
    p.add_argument("--workers", metavar="W", default=str(min(os.cpu_count() or 1, 4)),
                   help="worker processes; speed only (default: CPUs, at most 4)")
    p.add_argument("--chunk-persons", metavar="C", default=None,
                   help="persons generated at once inside a part; memory only (default: the part size)")
    p.add_argument("--part-persons", metavar="P", default=str(PART_PERSONS),
                   help=f"persons per Parquet row group (default {PART_PERSONS}); changes the bytes")
    p.add_argument("--force", action="store_true",
                   help="replace a previous synthetic dataset in DIR (never other files)")
    p.set_defaults(func=cmd_synth)


def parse_count(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).replace("_", ""), 10)
    except ValueError:
        raise InvalidInput(f"must be a whole number, got {value!r}", field=option) from None


def _print_progress(p: Progress) -> None:
    print(f"synth: {p.parts_done}/{p.parts_total} parts, {p.rows_written:,} rows written",
          file=sys.stderr, flush=True)


def cmd_synth(args, settings) -> int:
    options = {name: parse_count(getattr(args, attr), f"--{name.replace('_', '-')}")
               for name, attr in (("persons", "persons"), ("seed", "seed"), ("workers", "workers"),
                                  ("chunk_persons", "chunk_persons"), ("part_persons", "part_persons"))}
    try:
        result = generate(args.out, force=args.force, progress=_print_progress, **options)
    except InvalidInput as err:  # name the option as the operator typed it
        if err.field and not err.field.startswith("--"):
            raise InvalidInput(str(err).split(": ", 1)[1], field=f"--{err.field.replace('_', '-')}") from None
        raise
    width = max(len(t) for t in result.rows)
    for table, rows in result.rows.items():
        print(f"{table.ljust(width)}  {rows:>12,}")
    print(f"{'total'.ljust(width)}  {result.total_rows:>12,} rows in {result.seconds:.1f} s "
          f"({result.total_rows / max(result.seconds, 1e-9):,.0f} rows/s) -> {result.out}")
    return 0
