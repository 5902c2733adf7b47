"""Benchmark: the egress service's check of a submitted table vs ACRO 1.0.2 on the same data.

    python -m bench.egress                  # 1 M synthetic rows
    python -m bench.egress --full           # 1 M and 10 M rows, in the same run (issue 15)
    python -m bench.egress --sizes 2000000  # any sizes

For each table SPE's whole service path is timed: `egress.review.checking.check_submission`
with the table as a Parquet file and its provenance SQL, as the service calls it on a
submission: read the file, parse the SQL (DuckDB's parse tree), re-execute it in the sandbox
(the service's default sandbox settings), compare, derive and verify per-cell evidence, run the
rules, the LP audit of suppressed cells and, for a failing table, the suppression SPE proposes.
ACRO's `crosstab` on the same rows is timed in a child process (only the call; not the import,
not reading the Parquet file). Rounds alternate ACRO and SPE so that both see the same machine
load; the best time of each over all rounds is kept.

Tables (a and b: categories, x: a value; cells at the threshold boundary and dominated cells
planted): `count` (GROUP BY a, b / `crosstab(a, b)`), `mean` (avg(x) / `aggfunc="mean"`),
`count_margins` (GROUP BY CUBE with `All` labels / `margins=True`) and `sum_margins` (sum(x)).
Each synthetic event is its own person, so ACRO's row-level rules and SPE's person-level rules
must agree: both are compared cell by cell (per rule) with a brute-force recomputation done
here with numpy, and the report says where they differ and who is right. `spe_seconds_10_rows_
per_person` times the same tables over `visits` (the same rows, 10 per person: the per-person
evidence path); ACRO cannot count persons there, so only the time is reported.

ACRO pins pandas <= 2.3.3: it runs in a child process whose `sys.path` starts with
`--acro-path` (a `pip install --target DIR acro==1.0.2`), or with the current environment when
`acro` imports there (`pip install '.[bench]'`). Goal: SPE >= 20x faster than ACRO at every size,
same verdicts wherever ACRO's are right.
"""

from __future__ import annotations

import argparse
import io
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
ROWS_FULL = (1_000_000, 10_000_000)
GOAL_SPEEDUP = 20
THRESHOLD, DOMINANCE_N, DOMINANCE_K, P_PERCENT = 10, 2, 0.9, 0.1
A_COMMON, B_LEVELS = 20, 10
RARE_COUNTS = [1, 3, 5, 8, 9, 10, 11, 12, 15, 20]      # a = 20: threshold boundary cells per b
DOMINATED_ROWS = 30                                   # a = 21: one huge value in b < 5
ROWS_PER_PERSON_VISITS = 10
_ALL = "CASE WHEN GROUPING({c}) = 1 THEN 'All' ELSE CAST({c} AS VARCHAR) END AS {c}"
CASES = {
    # name: (SQL over `events`, kind, ACRO crosstab keyword arguments (values=x is added))
    "count": ("SELECT a, b, count(*) AS n FROM events GROUP BY a, b", "frequency", {}),
    "mean": ("SELECT a, b, avg(x) AS mean_x FROM events GROUP BY a, b", "magnitude", {"aggfunc": "mean"}),
    "count_margins": (f"SELECT {_ALL.format(c='a')}, {_ALL.format(c='b')}, count(*) AS n FROM events "
                      "GROUP BY CUBE (a, b)", "frequency", {"margins": True}),
    "sum_margins": (f"SELECT {_ALL.format(c='a')}, {_ALL.format(c='b')}, sum(x) AS total_x FROM events "
                    "GROUP BY CUBE (a, b)", "magnitude", {"aggfunc": "sum", "margins": True}),
}
ACRO_RULES = {"MinimumThresholdCheck": "threshold", "PresenceOfZeroCheck": "zero", "NKCheck": "dominance",
              "PPercentCheck": "p_percent", "negative": "negative", "missing": "missing"}
COMPARED_RULES = ("threshold", "zero", "dominance", "p_percent", "negative", "missing")


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
    """`events` (one row per person) and `visits` (the same rows, 10 rows per person), with a
    manifest as provisioning writes it (rows, distinct persons, person key per table)."""
    extract = directory / "extract"
    extract.mkdir(parents=True)
    pq.write_table(events, extract / "events.parquet", row_group_size=122_880)
    persons = max(1, events.num_rows // ROWS_PER_PERSON_VISITS)
    ids = pa.array(np.arange(events.num_rows) % persons)
    visits = events.set_column(0, "person_id", pc.binary_join_element_wise("p", pc.cast(ids, pa.string()), ""))
    pq.write_table(visits, extract / "visits.parquet", row_group_size=122_880)
    table_persons = {"events": events.num_rows, "visits": persons}
    (extract / "manifest.json").write_text(json.dumps({
        "persons": events.num_rows,
        "tables": {name: {"file": f"{name}.parquet", "rows": events.num_rows, "persons": table_persons[name],
                          "person_key": "person_id", "columns": events.column_names}
                   for name in ("events", "visits")}}))
    return extract


# --- brute force (numpy only: who is right when SPE and ACRO differ) ---------------------------

def brute_force(events: pa.Table, case: str) -> dict[str, set]:
    """rule -> cells `(a, b)` (labels as text, `All` for a margin) that break it, recomputed
    from the rows (one per person) without SPE or ACRO."""
    _, kind, acro = CASES[case]
    a = events.column("a").to_numpy()
    b = events.column("b").to_numpy()
    x = events.column("x").to_numpy()
    groups = [(True, True)] + ([(True, False), (False, True), (False, False)] if acro.get("margins") else [])
    out: dict[str, set] = {}
    for keep_a, keep_b in groups:
        key_a = a if keep_a else np.zeros_like(a)
        key_b = b if keep_b else np.zeros_like(b)
        order = np.lexsort((x, key_b, key_a))
        sa, sb, sx = key_a[order], key_b[order], x[order]
        starts = np.flatnonzero(np.r_[True, (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])])
        ends = np.r_[starts[1:], len(sa)]
        for start, end in zip(starts, ends):
            cell = (str(sa[start]) if keep_a else "All", str(sb[start]) if keep_b else "All")
            persons = end - start
            if persons < THRESHOLD:
                out.setdefault("threshold", set()).add(cell)
            if kind == "magnitude":
                values = sx[start:end]            # sorted ascending: the largest are last
                total = values.sum()
                top = values[-DOMINANCE_N:].sum()
                if total > 0 and top / total >= DOMINANCE_K:
                    out.setdefault("dominance", set()).add(cell)
                largest = values[-1]
                second = values[-2] if persons > 1 else 0.0
                if (total - largest - second) / largest < P_PERCENT:
                    out.setdefault("p_percent", set()).add(cell)
    return out


# --- SPE --------------------------------------------------------------------------------------

def spe_check(data: bytes, sql: str, extract: Path, kind: str):
    """The service path: `check_submission` on the submitted file (one table, its SQL)."""
    from egress.review.checking import check_submission

    [result] = check_submission([("table.parquet", data)], kind=kind, provenance={"table.parquet": sql},
                                policy=None, extract_dir=extract, extract_persons=None)
    assert result.verified, result.result.get("provenance")
    return result


def spe_flags(result, table: pa.Table) -> dict[str, set]:
    labels = list(zip(*(table.column(c).to_pylist() for c in ("a", "b"))))
    flags: dict[str, set] = {}
    for cell in result.result["cells"]:
        for finding in cell["findings"]:
            if finding["rule"] in COMPARED_RULES and (finding["status"] == "fail"
                                                      or finding["rule"] in ("negative", "missing")):
                flags.setdefault(finding["rule"], set()).add(tuple(str(v) for v in labels[cell["row"]]))
    return flags


def time_spe(data: bytes, sql: str, extract: Path, kind: str, repeat: int):
    """(cold seconds, warm best-of-`repeat` seconds, result). Cold: the first check on a fresh
    sandbox pool (opening the extract, learning which tables have one row per person)."""
    from egress import sandbox
    from egress.provenance import clear_caches

    sandbox.configure(sandbox.SandboxSettings(timeout_seconds=600))  # the service's defaults, bench-long budget
    clear_caches()
    started = time.perf_counter()
    result = spe_check(data, sql, extract, kind)
    cold = time.perf_counter() - started
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = spe_check(data, sql, extract, kind)
        best = min(best, time.perf_counter() - started)
    return cold, best, result


# --- ACRO child --------------------------------------------------------------------------------

def acro_worker(parquet: str, repeat: int) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    import pandas as pd
    from acro import ACRO

    frame = pd.read_parquet(parquet, columns=["a", "b", "x"])
    report = {"pandas": pd.__version__}
    for name, (_, kind, kwargs) in CASES.items():
        kwargs = dict(kwargs, values=frame.x) if kind == "magnitude" else dict(kwargs)
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
                        flags.setdefault(ACRO_RULES.get(part, part), set()).add((str(a_value), str(b_value)))
        report[name] = {"seconds": best, "status": record.status,
                        "flags": {rule: sorted(cells) for rule, cells in flags.items()}}
    return report


def run_acro(parquet: Path, repeat: int, acro_path: str | None) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([p for p in (acro_path, root) if p])
    completed = subprocess.run([sys.executable, "-m", "bench.egress", "--acro-worker", str(parquet),
                                "--repeat", str(repeat)], env=env, capture_output=True, text=True, timeout=7200)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["acro failed"])[-1]
        return {"error": f"{last} (install ACRO with `pip install --target DIR acro==1.0.2` and pass "
                         "--acro-path DIR or set SPE_ACRO_PATH; or `pip install '.[bench]'`)"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- one size ---------------------------------------------------------------------------------

def compare(ours: dict[str, set], theirs: dict[str, set], truth: dict[str, set]) -> dict:
    """Per rule: cells only one side flags, and which side agrees with the brute force."""
    out = {}
    for rule in sorted(set(ours) | set(theirs) | set(truth)):
        mine, acro, real = ours.get(rule, set()), theirs.get(rule, set()), truth.get(rule, set())
        if mine == acro:
            continue
        out[rule] = {"only_spe": sorted(mine - acro), "only_acro": sorted(acro - mine),
                     "spe_right": mine == real, "acro_right": acro == real}
    return out


def bench_size(rows: int, args) -> dict:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="spe-bench-egress-") as tmp:
        started = time.perf_counter()
        events = make_events(rows)
        extract = write_extract(events, Path(tmp))
        truth = {name: brute_force(events, name) for name in CASES}
        generate_seconds = time.perf_counter() - started
        del events
        con = duckdb.connect()
        submitted, files, visits_files = {}, {}, {}
        for name, (sql, _, _) in CASES.items():
            for table_name, target in (("events", files), ("visits", visits_files)):
                query = sql.replace("events", table_name)
                table = con.sql(query.replace(f"FROM {table_name}",
                                              f"FROM '{extract / (table_name + '.parquet')}'")).to_arrow_table()
                sink = io.BytesIO()
                pq.write_table(table, sink)
                target[name] = (sink.getvalue(), query)
                if table_name == "events":
                    submitted[name] = table
        con.close()
        acro: dict = {}
        spe: dict = {}
        for _ in range(max(1, args.rounds)):
            result = run_acro(extract / "events.parquet", max(1, min(args.repeat, 2)), args.acro_path)
            if "error" in result:
                acro = result
            elif "error" not in acro:
                for name in CASES:
                    if name not in acro or result[name]["seconds"] < acro[name]["seconds"]:
                        acro[name] = result[name]
                acro["pandas"] = result["pandas"]
            for name, (_, kind, _) in CASES.items():
                cold, seconds, checked = time_spe(*files[name], extract, kind, args.repeat)
                _, visits_seconds, _ = time_spe(*visits_files[name], extract, kind, args.repeat)
                best = spe.get(name)
                spe[name] = {"cold": min(cold, best["cold"]) if best else cold,
                             "warm": min(seconds, best["warm"]) if best else seconds,
                             "visits": min(visits_seconds, best["visits"]) if best else visits_seconds,
                             "result": checked}
    report: dict = {"rows": rows, "generate_seconds": round(generate_seconds, 3)}
    for name in CASES:
        entry_spe = spe[name]
        result = entry_spe["result"]
        ours = spe_flags(result, submitted[name])
        suppression = result.result.get("suppression")
        entry = {"cells": submitted[name].num_rows, "spe_seconds": round(entry_spe["warm"], 4),
                 "spe_cold_seconds": round(entry_spe["cold"], 4), "spe_status": result.status,
                 "spe_flagged": {rule: len(cells) for rule, cells in sorted(ours.items())},
                 "spe_proposed_suppression": (None if not suppression else
                                              {"cells": suppression["loss_cells"], "verified": suppression["verified"]}),
                 "spe_seconds_10_rows_per_person": round(entry_spe["visits"], 4),
                 "spe_right": {rule: ours.get(rule, set()) == cells for rule, cells in truth[name].items()}}
        if "error" in acro:
            entry["acro_error"] = acro["error"]
        else:
            theirs = {rule: set(map(tuple, cells)) for rule, cells in acro[name]["flags"].items()}
            entry.update({"acro_seconds": round(acro[name]["seconds"], 4), "acro_status": acro[name]["status"],
                          "acro_flagged": {rule: len(cells) for rule, cells in sorted(theirs.items())},
                          "same_verdicts": ours == theirs,
                          "differences": compare(ours, theirs, truth[name]),
                          "speedup": round(acro[name]["seconds"] / entry_spe["warm"], 1),
                          "speedup_cold": round(acro[name]["seconds"] / entry_spe["cold"], 1),
                          "speedup_10_rows_per_person": round(acro[name]["seconds"] / entry_spe["visits"], 1)})
        report[name] = entry
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.egress", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1 M and 10 M rows in the same run")
    parser.add_argument("--sizes", help="comma-separated row counts (overrides --full)")
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)  # one size (older name of --sizes)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, best is reported")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ACRO/SPE rounds, best of each kept")
    parser.add_argument("--acro-path", default=os.environ.get("SPE_ACRO_PATH"),
                        help="directory holding acro==1.0.2 and its pandas (pip install --target)")
    parser.add_argument("--acro-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.acro_worker:
        print(json.dumps(acro_worker(args.acro_worker, args.repeat), default=sorted))
        return 0
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    elif args.rows:
        sizes = [args.rows]
    else:
        sizes = list(ROWS_FULL) if args.full else [ROWS_DEFAULT]
    runs = []
    for rows in sizes:
        print(f"bench.egress: {rows:,} rows ...", file=sys.stderr)
        runs.append(bench_size(rows, args))
    entries = [run[name] for run in runs for name in CASES]
    right = all(e.get("same_verdicts") or all(d["spe_right"] for d in e.get("differences", {}).values())
                for e in entries)
    fast = all(e.get("speedup", 0) >= GOAL_SPEEDUP for e in entries)
    report = {"acro_version": "1.0.2", "goal_speedup": GOAL_SPEEDUP, "sizes": runs,
              "same_verdicts": all(e.get("same_verdicts") for e in entries),
              "spe_right_where_different": right, "meets_goal": right and fast}
    write_report("egress", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
