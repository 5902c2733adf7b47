"""`spe dataset add|add-example|list|show`: register source datasets."""

from __future__ import annotations

from hub.cli.common import engine_for, print_json, print_table
from hub.datasets.example import DESCRIPTOR, eunomia_path
from hub.datasets.registry import add_dataset, get_dataset, list_datasets
from hub.exceptions import InvalidInput


def register(sub) -> None:
    p = sub.add_parser("dataset", help="register and inspect source datasets")
    s = p.add_subparsers(dest="dataset_cmd", required=True)
    add = s.add_parser("add", help="register a source dataset (OMOP DuckDB file or Parquet directory)")
    add.add_argument("name")
    src = add.add_mutually_exclusive_group(required=True)
    src.add_argument("--omop-duckdb", metavar="FILE")
    src.add_argument("--parquet", metavar="DIR")
    add.add_argument("--descriptor", required=True, metavar="YAML", help="disclosure class per column")
    add.set_defaults(func=cmd_add)
    ex = s.add_parser("add-example", help="register the embedded Eunomia (GiBleed) OMOP example")
    ex.set_defaults(func=cmd_add_example)
    ls = s.add_parser("list")
    ls.set_defaults(func=cmd_list)
    show = s.add_parser("show")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)


def _report(ds, outcome) -> int:
    tables = ds.schema["tables"]
    print(f"dataset {ds.name} {outcome}: {len(tables)} tables, "
          f"{sum(t['rows'] for t in tables.values())} rows, fingerprint {ds.fingerprint[:16]}…")
    return 0


def cmd_add(args, settings) -> int:
    kind, source = ("omop-duckdb", args.omop_duckdb) if args.omop_duckdb else ("parquet", args.parquet)
    if not args.name:
        raise InvalidInput("dataset name is empty", field="name")
    ds, outcome = add_dataset(engine_for(settings), name=args.name, kind=kind, source=source,
                              descriptor_path=args.descriptor, actor=settings.actor)
    return _report(ds, outcome)


def cmd_add_example(args, settings) -> int:
    ds, outcome = add_dataset(engine_for(settings), name="eunomia", kind="omop-duckdb", source=eunomia_path(),
                              descriptor_path=DESCRIPTOR, actor=settings.actor)
    return _report(ds, outcome)


def cmd_list(args, settings) -> int:
    rows = [{"name": d.name, "kind": d.kind, "tables": len(d.schema["tables"]), "fingerprint": d.fingerprint[:16],
             "source": str(d.source)} for d in list_datasets(engine_for(settings))]
    print_table(rows, ["name", "kind", "tables", "fingerprint", "source"])
    return 0


def cmd_show(args, settings) -> int:
    ds = get_dataset(engine_for(settings), args.name)
    print_json({"name": ds.name, "kind": ds.kind, "source": str(ds.source), "fingerprint": ds.fingerprint,
                "schema": ds.schema})
    return 0
