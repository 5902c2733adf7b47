"""Provisioning benchmark: 100 k synthetic persons -> a 3-table extract with projection,
generalisation and keyed pseudonyms, against a bare DuckDB `COPY (SELECT same columns) TO
parquet` of the same data in the same run. Goal: ratio <= 1.5, peak memory <= 2 GB.

    python -m bench.provision [--persons N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from bench.common import run_measured, write_report

REPO = Path(__file__).resolve().parents[1]
TABLES = {
    "person": ["person_id", "gender_concept_id", "year_of_birth"],
    "condition_occurrence": ["person_id", "condition_source_value", "condition_start_date"],
    "measurement": ["person_id", "measurement_concept_id", "value_as_number", "measurement_date"],
}


def _synth(persons: int, out: str) -> int:
    from bench.synth import generate

    return generate(persons, Path(out), seed=42, workers=2)["rows"]


def _provision(home: str, source: str) -> dict:
    from hub.datasets.registry import add_dataset
    from hub.db import make_engine
    from hub.permits.store import PermitStore
    from hub.provision.run import provision
    from hub.settings import Settings

    settings = Settings(home=Path(home), db_url=f"sqlite:///{home}/registry.db", actor="bench")
    settings.ensure_dirs()
    engine = make_engine(settings.db_url)
    add_dataset(engine, name="synth", kind="parquet", source=source,
                descriptor_path=REPO / "hub/datasets/descriptors/synth.yaml", actor="bench")
    doc = yaml.safe_load((REPO / "examples/permits/demo-gibleed.yaml").read_text())
    doc.update(dataset="synth", tables=TABLES, cohort={},
               generalise={"person.year_of_birth": {"band": 5},
                           "condition_occurrence.condition_start_date": {"date": "month"},
                           "measurement.measurement_date": {"date": "shift", "max_days": 14}})
    PermitStore(engine).apply(doc, "bench")
    r = provision(engine, settings, doc["id"], "bench")
    return {"rows": sum(t["rows"] for t in r.manifest["tables"].values()), "persons": r.manifest["persons"],
            "seconds": r.seconds}


def _baseline(source: str, out: str) -> int:
    import duckdb

    con = duckdb.connect()
    rows = 0
    for table, cols in TABLES.items():
        rel = f"read_parquet('{source}/{table}.parquet')"
        con.execute(f"COPY (SELECT {', '.join(cols)} FROM {rel}) TO '{out}/{table}.parquet' "
                    f"(FORMAT parquet, COMPRESSION zstd)")
        rows += con.execute(f"SELECT count(*) FROM '{out}/{table}.parquet'").fetchone()[0]
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--full", action="store_true", help="same as the default (100 k persons)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        synth = run_measured(_synth, args.persons, str(source))
        base_out = Path(tmp) / "baseline"
        base_out.mkdir()
        baseline = run_measured(_baseline, str(source), str(base_out))
        spe = run_measured(_provision, str(Path(tmp) / "home"), str(source))
    rows, seconds = spe["value"]["rows"], spe["value"]["seconds"]
    return write_report("provision", {
        "persons": args.persons,
        "synth": {"rows": synth["value"], "seconds": synth["seconds"], "rows_per_second": synth["value"] / synth["seconds"],
                  "peak_rss_bytes": synth["peak_rss_bytes"]},
        "spe_provision": {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds,
                          "peak_rss_bytes": spe["peak_rss_bytes"],
                          "note": "seconds of provisioning only; peak RSS of the whole process incl. registration"},
        "baseline_duckdb_copy": {"rows": baseline["value"], "seconds": baseline["seconds"],
                                 "peak_rss_bytes": baseline["peak_rss_bytes"]},
        "ratio_spe_to_baseline": seconds / baseline["seconds"],
        "goal": {"ratio_max": 1.5, "peak_rss_bytes_max": 2 * 1024**3},
    })


if __name__ == "__main__":
    main()
