"""Benchmark: disclosure check time with provenance re-execution vs ACRO 1.0.2 `crosstab`.

    python -m bench.egress            # 1 M synthetic rows
    python -m bench.egress --full     # 10 M rows (issue 4)
    python -m bench.egress --acro-path /path/to/site-packages-with-acro

For a 2-way count table and a 2-way mean table over the same synthetic events (numpy →
Parquet), it measures SPE's check of a submitted table = re-execute its provenance SQL in the
sandbox + compare + derive per-cell evidence + `check_table`, and ACRO's `crosstab` (count,
and mean with `values=`/`aggfunc="mean"`, which runs ACRO's threshold, zero, NK and p% checks)
on the same data, in the same run, and compares the verdicts cell by cell (same cells flagged,
per rule). Each synthetic event is its own person, so rows = persons and ACRO's row-level
rules and SPE's person-level rules must agree exactly. Goal: SPE >= 10x faster, same verdicts.

Reported per table: `spe_seconds` (warm, best of `--repeat`), `spe_cold_seconds` (first check
of the extract: includes the scan that learns that `events` has one row per person), and
`spe_seconds_10_rows_per_person` (the same rows in a table with 10 rows per person, which
takes the general per-(cell, person) evidence path; ACRO cannot count persons, so only the
time is compared).

ACRO pins pandas <= 2.3.3, so it runs in a child process whose `sys.path` starts with
`--acro-path` (a `pip install --target DIR acro==1.0.2`), or with the current environment when
`acro` imports there (`pip install .[bench]`). Only the `crosstab` call is timed (best of
`--repeat`), not the import nor reading the Parquet file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import write_report

ROWS_DEFAULT = 1_000_000
ROWS_FULL = 10_000_000
A_COMMON, B_LEVELS = 20, 10
RARE_COUNTS = [1, 3, 5, 8, 9, 10, 11, 12, 15, 20]      # a = 20: threshold boundary cells per b
DOMINATED_ROWS = 30                                   # a = 21: one huge value in b < 5
COUNT_SQL = "SELECT a, b, count(*) AS n FROM events GROUP BY a, b"
MEAN_SQL = "SELECT a, b, avg(x) AS mean_x FROM events GROUP BY a, b"
ROWS_PER_PERSON_VISITS = 10
VISITS_SQL = {"count": COUNT_SQL.replace("events", "visits"), "mean": MEAN_SQL.replace("events", "visits")}
ACRO_RULES = {"MinimumThresholdCheck": "threshold", "PresenceOfZeroCheck": "zero", "NKCheck": "dominance",
              "PPercentCheck": "p_percent", "negative": "negative", "missing": "missing"}


def make_events(rows: int, seed: int = 7) -> pa.Table:
    """Synthetic events: common cells (a < 20) of ~rows/200 each, rare cells at the threshold
    boundary (a = 20) and dominated cells (a = 21, one contribution of 1e6 among 30)."""
    rng = np.random.default_rng(seed)
    rare_b = np.repeat(np.arange(B_LEVELS), RARE_COUNTS)
    dom_b = np.repeat(np.arange(B_LEVELS), DOMINATED_ROWS)
    common = rows - len(rare_b) - len(dom_b)
    a = np.concatenate([rng.integers(0, A_COMMON, common), np.full(len(rare_b), 20), np.full(len(dom_b), 21)])
    b = np.concatenate([rng.integers(0, B_LEVELS, common), rare_b, dom_b])
    x = rng.lognormal(3.0, 0.5, rows)
    dominated_start = common + len(rare_b)
    for level in range(5):
        x[dominated_start + level * DOMINATED_ROWS] = 1e6
    person = pc.binary_join_element_wise("p", pc.cast(pa.array(np.arange(rows)), pa.string()), "")
    return pa.table({"person_id": person, "a": a.astype(np.int64), "b": b.astype(np.int64), "x": x})


def write_extract(events: pa.Table, directory: Path) -> Path:
    """`events` (one row per person) and `visits` (the same rows, 10 rows per person)."""
    extract = directory / "extract"
    extract.mkdir(parents=True)
    pq.write_table(events, extract / "events.parquet")
    persons = max(1, events.num_rows // ROWS_PER_PERSON_VISITS)
    ids = pa.array(np.arange(events.num_rows) % persons)
    visits = events.set_column(0, "person_id", pc.binary_join_element_wise("p", pc.cast(ids, pa.string()), ""))
    pq.write_table(visits, extract / "visits.parquet")
    # as provisioning writes it: rows and distinct persons per table (hub/provision/run.py)
    table_persons = {"events": events.num_rows, "visits": persons}
    (extract / "manifest.json").write_text(json.dumps({
        "persons": events.num_rows,
        "tables": {name: {"file": f"{name}.parquet", "rows": events.num_rows, "persons": table_persons[name],
                          "columns": events.column_names} for name in ("events", "visits")}}))
    return extract


def spe_check(submitted: pa.Table, sql: str, extract: Path, kind: str, threads: int):
    from egress.checks import check_table
    from egress.provenance import verify_provenance

    result = verify_provenance(submitted, sql, extract, threads=threads, memory_limit="2GB", timeout_seconds=600)
    assert result.match.equal, result.match.reason
    assert result.evidence is not None, result.evidence_reason
    return check_table(submitted, None, kind=kind, evidence=result.evidence, extract_persons=result.extract_persons)


def spe_flags(verdicts, submitted: pa.Table) -> dict[str, list]:
    rows = submitted.to_pylist()
    flags: dict[str, set] = {}
    for cell in verdicts.cells:
        for finding in cell.findings:
            if finding.status == "fail" or finding.rule in ("negative", "missing"):
                flags.setdefault(finding.rule, set()).add((rows[cell.row]["a"], rows[cell.row]["b"]))
    return {rule: sorted(cells) for rule, cells in flags.items()}


def time_spe(submitted, sql, extract, kind, repeat, threads):
    """(cold seconds, warm best-of-`repeat` seconds, verdicts). Cold includes the one-time scan
    that learns whether the extract table has one row per person (cached per extract file)."""
    from egress.provenance import clear_caches

    clear_caches()
    started = time.perf_counter()
    verdicts = spe_check(submitted, sql, extract, kind, threads)
    cold = time.perf_counter() - started
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        verdicts = spe_check(submitted, sql, extract, kind, threads)
        best = min(best, time.perf_counter() - started)
    return cold, best, verdicts


# --- ACRO child --------------------------------------------------------------------------------

def acro_worker(parquet: str, repeat: int) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    import pandas as pd
    from acro import ACRO

    frame = pd.read_parquet(parquet, columns=["a", "b", "x"])
    report = {"pandas": pd.__version__}
    for name, kwargs in {"count": {}, "mean": {"values": frame.x, "aggfunc": "mean"}}.items():
        best = float("inf")
        for _ in range(repeat):
            acro = ACRO(suppress=False)
            started = time.perf_counter()
            acro.crosstab(frame.a, frame.b, **kwargs)
            best = min(best, time.perf_counter() - started)
        record = list(acro.results.results.values())[-1]
        outcome = record.outcome
        flags: dict[str, set] = {}
        for a_value in outcome.index:
            for b_value in outcome.columns:
                text = str(outcome.loc[a_value, b_value])
                for part in (p.strip() for p in text.split(";")):
                    if part and part != "ok":
                        flags.setdefault(ACRO_RULES.get(part, part), set()).add((int(a_value), int(b_value)))
        report[name] = {"seconds": best, "status": record.status,
                        "flags": {rule: sorted(cells) for rule, cells in flags.items()}}
    return report


def run_acro(parquet: Path, repeat: int, acro_path: str | None) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([p for p in (acro_path, root) if p])
    completed = subprocess.run([sys.executable, "-m", "bench.egress", "--acro-worker", str(parquet),
                                "--repeat", str(repeat)], env=env, capture_output=True, text=True, timeout=3600)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["acro failed"])[-1]
        return {"error": f"{last} (install ACRO with `pip install --target DIR acro==1.0.2` and pass "
                         "--acro-path DIR or set SPE_ACRO_PATH; or `pip install '.[bench]'`)"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.egress", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help=f"{ROWS_FULL:,} rows instead of {ROWS_DEFAULT:,}")
    parser.add_argument("--rows", type=int, help="number of synthetic rows (overrides --full)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, best is reported")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ACRO/SPE rounds, best of each kept")
    parser.add_argument("--threads", type=int, default=1, help="DuckDB threads of the sandbox (service default 1)")
    parser.add_argument("--acro-path", default=os.environ.get("SPE_ACRO_PATH"),
                        help="directory holding acro==1.0.2 and its pandas (pip install --target)")
    parser.add_argument("--acro-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.acro_worker:
        print(json.dumps(acro_worker(args.acro_worker, args.repeat)))
        return 0

    rows = args.rows or (ROWS_FULL if args.full else ROWS_DEFAULT)
    with tempfile.TemporaryDirectory(prefix="spe-bench-egress-") as tmp:
        started = time.perf_counter()
        events = make_events(rows)
        extract = write_extract(events, Path(tmp))
        generate_seconds = time.perf_counter() - started
        del events
        import duckdb

        con = duckdb.connect()
        submitted = {name: con.sql(sql.replace("events", f"'{extract / 'events.parquet'}'")).to_arrow_table()
                     for name, sql in (("count", COUNT_SQL), ("mean", MEAN_SQL))}
        submitted_visits = {name: con.sql(sql.replace("visits", f"'{extract / 'visits.parquet'}'")).to_arrow_table()
                            for name, sql in VISITS_SQL.items()}
        con.close()
        # Rounds alternate ACRO and SPE so that both see the same machine load; the best
        # time of each side over all rounds is reported (the machine is shared).
        acro: dict = {}
        spe: dict = {}
        for _ in range(max(1, args.rounds)):
            result = run_acro(extract / "events.parquet", max(1, min(args.repeat, 2)), args.acro_path)
            if "error" in result:
                acro = result
            elif "error" not in acro:
                for name in ("count", "mean"):
                    if name not in acro or result[name]["seconds"] < acro[name]["seconds"]:
                        acro[name] = result[name]
                acro["pandas"] = result["pandas"]
            for name, sql, kind in (("count", COUNT_SQL, "frequency"), ("mean", MEAN_SQL, "magnitude")):
                cold, seconds, verdicts = time_spe(submitted[name], sql, extract, kind, args.repeat, args.threads)
                _, visits_seconds, _ = time_spe(submitted_visits[name], VISITS_SQL[name], extract, kind,
                                                args.repeat, args.threads)
                best = spe.get(name)
                spe[name] = {"cold": min(cold, best["cold"]) if best else cold,
                             "warm": min(seconds, best["warm"]) if best else seconds,
                             "visits": min(visits_seconds, best["visits"]) if best else visits_seconds,
                             "verdicts": verdicts}
        report: dict = {"rows": rows, "generate_seconds": round(generate_seconds, 3), "threads": args.threads,
                        "rounds": args.rounds, "acro_version": "1.0.2", "acro_pandas": acro.get("pandas"),
                        "goal_speedup": 10}
        all_same, all_fast = True, True
        for name in ("count", "mean"):
            cold, seconds, visits_seconds = spe[name]["cold"], spe[name]["warm"], spe[name]["visits"]
            verdicts = spe[name]["verdicts"]
            ours = spe_flags(verdicts, submitted[name])
            entry = {"cells": submitted[name].num_rows, "spe_seconds": round(seconds, 4),
                     "spe_cold_seconds": round(cold, 4), "spe_status": verdicts.status,
                     "spe_flagged": {rule: len(cells) for rule, cells in ours.items()},
                     # Same rows, 10 per person: the general per-(cell, person) aggregation path.
                     "spe_seconds_10_rows_per_person": round(visits_seconds, 4)}
            if "error" in acro:
                entry["acro_error"] = acro["error"]
                all_same = all_fast = False
            else:
                theirs = acro[name]["flags"]
                same = ({r: set(map(tuple, c)) for r, c in ours.items()}
                        == {r: set(map(tuple, c)) for r, c in theirs.items()})
                entry.update({"acro_seconds": round(acro[name]["seconds"], 4), "acro_status": acro[name]["status"],
                              "acro_flagged": {rule: len(cells) for rule, cells in theirs.items()},
                              "same_verdicts": same,
                              "speedup": round(acro[name]["seconds"] / seconds, 1),
                              "speedup_cold": round(acro[name]["seconds"] / cold, 1),
                              "speedup_10_rows_per_person": round(acro[name]["seconds"] / visits_seconds, 1)})
                if not same:
                    entry["only_spe"] = {r: sorted(set(map(tuple, ours.get(r, []))) - set(map(tuple, theirs.get(r, []))))
                                         for r in set(ours) | set(theirs)}
                    entry["only_acro"] = {r: sorted(set(map(tuple, theirs.get(r, []))) - set(map(tuple, ours.get(r, []))))
                                          for r in set(ours) | set(theirs)}
                all_same &= same
                all_fast &= entry["speedup"] >= 10
            report[name] = entry
        report["same_verdicts"] = all_same
        report["meets_goal"] = all_same and all_fast
    write_report("egress", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
