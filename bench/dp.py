"""DP gateway benchmark: latency of a grouped DP count and a DP mean over a generated Parquet
extract (1 M rows by default, 10 M with --full), against the bare DuckDB aggregate of the same
query in the same run (fresh connection each, like the gateway). Goal: ratio <= 1.3.

The DP path is the whole `run_query`: validation, extract check, OpenDP calibration, the
SQLite ledger charge and audit events, DuckDB with per-person truncation, noise. The data
have 100 "heavy" persons far above the declared bound (1 % of the rows): truncation removes
their excess rows, found once per file ("cold" is the first query on a file); a count or sum
is then the aggregate over the file minus the aggregate over the removed rows. "forced
truncation" runs the truncation window inside the query instead, for comparison. The mean is
measured on a dictionary-encoded column (the goal) and, for information, on a column of
distinct values stored PLAIN ("mean_plain_column"): DuckDB runs the bare query's clamp once per
dictionary entry, the DP grid's arithmetic per row (see docs/benchmarks.md).

Also the large statistical audit: the tight tail event of the released count, sampled
200 k times per dataset (2 M with --full), Clopper-Pearson lower bound vs the claimed epsilon.

Each path runs --repeats times, interleaved; the report gives medians and minimums. On a
shared machine the minimum is the least disturbed estimate, so the goal is judged on the
ratio of minimums (the median ratio is reported beside it).

    python -m bench.dp [--full] [--rows N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from bench.common import write_report

EPSILON = 1.0
MAX_PER_PERSON = 20
SCHEMA = {
    "person_table": "person",
    "person_key": "person_id",
    "tables": {"measurement": {"max_per_person": MAX_PER_PERSON, "columns": {
        "person_id": {"class": "person_key"},
        "unit": {"class": "other", "categories": ["mg", "g", "mmol"]},
        "sex": {"class": "quasi_identifier", "categories": ["F", "M"]},
        "value_as_number": {"class": "sensitive", "bounds": [0, 1000]},
        "value_plain": {"class": "sensitive", "bounds": [0, 1000]},
    }}},
}


def generate(rows: int, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    persons = max(1, rows // 10)
    con = duckdb.connect(":memory:")
    # 1 % of the rows belong to 100 heavy persons (far above the bound of 20): the realistic
    # case where truncation must run, for those persons only
    con.execute(f"""COPY (SELECT CASE WHEN i % 100 = 0 THEN 'h' || CAST(i // 100 % 100 AS VARCHAR)
                               ELSE 'p' || CAST(i % {persons} AS VARCHAR) END AS person_id,
                          ['mg', 'g', 'mmol', 'other'][1 + CAST(hash(i) % 4 AS INTEGER)] AS unit,
                          CASE WHEN (i % {persons}) % 2 = 0 THEN 'F' ELSE 'M' END AS sex,
                          CAST(hash(i * 7) % 1200 AS DOUBLE) / 1.1 AS value_as_number,
                          -- nearly all distinct: stored PLAIN, not dictionary-encoded (see latency())
                          CAST(hash(i * 13) % 110000000 AS DOUBLE) / 100000 AS value_plain
                   FROM range({rows}) t(i)) TO '{out / "measurement.parquet"}' (FORMAT parquet)""")
    con.close()
    return out


def bare(con, path: Path, sql: str) -> float:
    """The same aggregate without DP, on an open connection (the gateway keeps its database
    open per extract too, so both sides pay only the query)."""
    started = time.perf_counter()
    con.execute(sql.replace("{t}", f"read_parquet('{path}')")).fetchall()
    return time.perf_counter() - started


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def latency(rows: int, repeats: int) -> dict:
    from datetime import date

    from egress.dp.calibrate import make_plan
    from egress.dp.compute import exact_aggregate
    from egress.dp.service import run_query
    from egress.dp.spec import parse_query
    from egress.extension import install
    from hub.db import make_engine
    from hub.permits.model import DpBudget, Member, Permit

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        extract = generate(rows, Path(tmp) / "extract")
        gen_seconds = time.perf_counter() - t0
        path = extract / "measurement.parquet"
        install()  # the DP ledger's tables
        engine = make_engine(f"sqlite:///{tmp}/registry.db")
        permit = Permit(id="BENCH-DP", title="b", purpose="scientific_research", organisation="o",
                        principal_investigator="alice", members=(Member("alice", "principal_investigator"),),
                        dataset="bench", tables={"measurement": ("person_id", "unit", "sex", "value_as_number", "value_plain")},
                        valid_from=date(2026, 1, 1), valid_until=date(2030, 1, 1),
                        dp=DpBudget(epsilon=1e6, delta=1e-6), status="active")
        count_spec = {"kind": "count", "table": "measurement", "by": ["unit", "sex"], "epsilon": 0.01}
        mean_spec = {"kind": "mean", "table": "measurement", "column": "value_as_number", "epsilon": 0.01}
        plain_spec = {**mean_spec, "column": "value_plain"}

        def dp(spec):
            return lambda: timed(lambda: run_query(engine, extract, permit, "alice", spec, schema=SCHEMA))

        cold_count = dp(count_spec)()
        bare_count_sql = "SELECT unit, sex, count(*) FROM {t} GROUP BY unit, sex"
        bare_mean_sql = "SELECT avg(least(greatest(value_as_number, 0), 1000)) FROM {t} WHERE value_as_number IS NOT NULL"
        bare_plain_sql = bare_mean_sql.replace("value_as_number", "value_plain")
        con = duckdb.connect(":memory:")
        bare(con, path, bare_count_sql)  # page cache warm for both paths
        results = {}
        # "mean" reads a dictionary-encoded column (1,200 distinct values): DuckDB evaluates the bare
        # query's clamp once per distinct value, while the DP grid's arithmetic runs per row.
        # "mean_plain_column" is the same query on a column of distinct values (informational).
        for name, spec, sql in (("grouped_count", count_spec, bare_count_sql), ("mean", mean_spec, bare_mean_sql),
                                ("mean_plain_column", plain_spec, bare_plain_sql)):
            # interleave to share the machine's load fairly between the two paths
            b, d = [], []
            for _ in range(repeats):
                b.append(bare(con, path, sql))
                d.append(dp(spec)())
            results[name] = {"bare_duckdb_seconds": statistics.median(b), "dp_seconds": statistics.median(d),
                             "ratio": statistics.median(d) / statistics.median(b),
                             "bare_duckdb_min_seconds": min(b), "dp_min_seconds": min(d),
                             "ratio_of_minimums": min(d) / min(b)}
        results["grouped_count"]["cold_first_query_seconds"] = cold_count
        if rows <= 2_000_000:  # the window spills heavily beyond that; measured at the default size
            q = parse_query(count_spec, SCHEMA)
            plan = make_plan(q)
            forced = median(lambda: timed(lambda: exact_aggregate(q, plan, extract, force_truncation=True)), 3)
            results["grouped_count"]["forced_truncation_exact_seconds"] = forced
            results["grouped_count"]["forced_truncation_ratio"] = forced / results["grouped_count"]["bare_duckdb_seconds"]
        results["generate_seconds"] = gen_seconds
        return results


def audit(samples: int) -> dict:
    from egress.dp.calibrate import make_plan
    from egress.dp.empirical import epsilon_lower_bound
    from egress.dp.spec import parse_query

    q = parse_query({"kind": "count", "table": "measurement", "epsilon": EPSILON}, SCHEMA)
    meas = make_plan(q).components[0].measurement
    n, m = 100_000, q.max_per_person  # D' = D without one person's m (truncated) rows
    out = {"samples_per_dataset": samples, "epsilon_claimed": EPSILON, "max_per_person": m}
    chunk = 100_000
    a, b = [], []
    started = time.perf_counter()
    for _ in range(0, samples, chunk):
        a.extend(meas([n] * min(chunk, samples - len(a))))
        b.extend(meas([n - m] * min(chunk, samples - len(b))))
    out["sampling_seconds"] = time.perf_counter() - started
    for label, threshold in (("tight_tail_event_count_ge_n", n), ("test_event_count_ge_n_minus_2", n - 2)):
        k1 = sum(v >= threshold for v in a)
        k2 = sum(v >= threshold for v in b)
        out[label] = {"k_D": k1, "k_D_prime": k2,
                      "epsilon_lower_bound": epsilon_lower_bound(k1, samples, k2, samples, alpha=0.05)}
    out["ok"] = all(v["epsilon_lower_bound"] <= EPSILON for k, v in out.items() if "event" in k)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 M rows and 2 M audit samples per dataset")
    parser.add_argument("--rows", type=int, help="rows of the generated table (default 1 M, --full 10 M)")
    parser.add_argument("--repeats", type=int, default=9)
    args, _ = parser.parse_known_args(argv)
    rows = args.rows or (10_000_000 if args.full else 1_000_000)
    samples = 2_000_000 if args.full else 200_000
    lat = latency(rows, args.repeats)
    report = {
        "rows": rows, "repeats": args.repeats, "goal_ratio": 1.3,
        "latency": lat,
        # the machine is shared: the best of N runs is the least disturbed estimate of each path
        "goal_met": all(lat[k]["ratio_of_minimums"] <= 1.3 for k in ("grouped_count", "mean")),
        "goal_met_on_medians": all(lat[k]["ratio"] <= 1.3 for k in ("grouped_count", "mean")),
        "statistical_audit": audit(samples),
    }
    write_report("dp", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
