"""Exact DP sums on real Parquet files: the DOUBLE path (grid values centred and summed as
doubles where that is provably exact) must equal the BIGINT grid summed in 128 bits, rounding
ties, NaN, infinities, nulls and off-grid bounds included; beyond the exactness limit the
BIGINT sum takes over. Also: what each pooled database holds is tracked per database, and
the null-key check reads the file's statistics or, without them, scans."""

from __future__ import annotations

import math
from fractions import Fraction

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egress.dp.calibrate import grid_bounds, make_plan
from egress.dp.compute import exact_aggregate, has_null_keys
from egress.dp.spec import parse_query


def write(path, table: dict, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), str(path), **kw)


def bigint_reference(path, column: str, bounds, decimals: int, group: str | None = None) -> dict:
    """sum(k) per group with the grid formula cast to BIGINT (DuckDB rounds half to even), each
    row clamped on the grid as well, summed by DuckDB in 128 bits: the slow, obviously exact way."""
    lo_i, hi_i = grid_bounds(bounds, decimals)
    k = (f"least(greatest(CAST(least(greatest(CAST({column} AS DOUBLE), {bounds[0]!r}), {bounds[1]!r}) * "
         f"{float(10**decimals)!r} AS BIGINT), {lo_i}), {hi_i})")
    g = group or "1"
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(f"SELECT {g}, count(*), sum({k}) FROM read_parquet('{path}') WHERE {column} IS NOT NULL "
                           f"AND person_id IS NOT NULL GROUP BY {g}").fetchall()
    finally:
        con.close()
    return {str(r[0]): (r[1], int(r[2])) for r in rows}


TRICKY = [0.25, 0.35, -0.25, -0.35, 2.5, 3.5, 0.05, 0.15, 1e-300, -0.0, float("nan"), float("inf"),
          float("-inf"), 1e300, -1e300, 12345.678901, -99.99, None, 7.0, 0.45, 0.55]


@pytest.mark.parametrize("bounds", [(-100.0, 20000.0), (0.0, 200.0), (-5.05, 5.05), (0.0000004, 100.0000006)],
                         ids=["signed", "positive", "off-grid-ties", "off-grid"])
@pytest.mark.parametrize("kind", ["sum", "mean"])
def test_double_path_equals_the_bigint_grid_sum(tmp_path, bounds, kind):
    n = len(TRICKY) * 4
    values = [TRICKY[i % len(TRICKY)] for i in range(n)]
    write(tmp_path / "x" / "person.parquet", {
        "person_id": [f"p{i}" for i in range(n)],
        "g": ["a" if i % 3 else "b" for i in range(n)],
        "v": values,
    })
    schema = {"person": {"person_id": "person_key", "g": {"class": "other", "categories": ["a", "b"]},
                         "v": {"class": "sensitive", "bounds": list(bounds)}}}
    q = parse_query({"kind": kind, "table": "person", "column": "v", "by": ["g"], "epsilon": 1}, schema)
    plan = make_plan(q)
    got = exact_aggregate(q, plan, tmp_path / "x")
    want = bigint_reference(tmp_path / "x" / "person.parquet", "v", bounds, plan.decimals, group="g")
    assert got.counts == [want["a"][0], want["b"][0]]
    assert got.sums == [want[c][1] - plan.shift_units * want[c][0] for c in ("a", "b")]


def test_ties_round_half_to_even_like_the_bigint_cast(tmp_path):
    # bounds this wide give a grid of 10^-1, and these values land exactly on .5 there:
    # half to even gives 2 + 4 + 4 + 8 + 0 + 2 = 20, half away from zero would give 24
    bounds = (-100_000_000.0, 100_000_000.0)
    values = [0.25, 0.35, 0.45, 0.75, 0.05, 0.15]
    assert [v * 10.0 for v in values] == [2.5, 3.5, 4.5, 7.5, 0.5, 1.5]
    write(tmp_path / "t" / "person.parquet", {"person_id": list("abcdef"), "v": values})
    schema = {"person": {"person_id": "person_key", "v": {"class": "sensitive", "bounds": list(bounds)}}}
    q = parse_query({"kind": "sum", "table": "person", "column": "v", "epsilon": 1}, schema)
    plan = make_plan(q)
    assert plan.decimals == 1
    assert exact_aggregate(q, plan, tmp_path / "t").sums == [20]


def test_beyond_the_double_limit_the_bigint_sum_takes_over(tmp_path):
    # 4 M rows of an odd grid value near the upper bound: the centred terms (k - c) add up to
    # about 9.2e15, an odd number above 2^53 that no double holds, so only the 128-bit sum
    # gets it right
    rows, value = 4_000_001, 4_599_999_999
    d = tmp_path / "big"
    d.mkdir()
    con = duckdb.connect(":memory:")
    con.execute(f"COPY (SELECT 'p' || CAST(i AS VARCHAR) AS person_id, CAST({value} AS DOUBLE) AS v "
                f"FROM range({rows}) t(i)) TO '{d / 'person.parquet'}' (FORMAT parquet)")
    con.close()
    schema = {"person": {"person_id": "person_key", "v": {"class": "sensitive", "bounds": [0, 4_600_000_000]}}}
    q = parse_query({"kind": "sum", "table": "person", "column": "v", "epsilon": 1}, schema)
    plan = make_plan(q)
    assert plan.decimals == 0
    centred = rows * (value - 2_300_000_000)
    assert centred > 2**53 and float(centred) != centred  # a DOUBLE sum could not hold it
    got = exact_aggregate(q, plan, d)
    assert got.counts == [rows] and got.sums == [rows * value]


def test_each_pooled_database_builds_its_own_truncation_table(tmp_path):
    d = tmp_path / "trunc"
    # person 'h' has 9 rows, the bound is 2: 7 rows are dropped
    write(d / "measurement.parquet", {"person_id": ["h"] * 9 + ["a", "b"], "v": [float(i) for i in range(11)]})
    schema = {"measurement": {"person_id": "person_key",
                              "v": {"class": "sensitive", "bounds": [0, 100], "max_per_person": 2}}}
    q = parse_query({"kind": "sum", "table": "measurement", "column": "v", "epsilon": 1}, schema)
    plan = make_plan(q)
    first = exact_aggregate(q, plan, d)
    # another memory limit is another pooled database: it must not trust the first one's table
    second = exact_aggregate(q, plan, d, memory_limit="512MB")
    third = exact_aggregate(q, plan, d)
    assert first.counts == second.counts == third.counts == [4]
    assert first.sums == second.sums == third.sums
    assert first.truncated and second.truncated


@pytest.mark.parametrize("statistics", [True, False], ids=["with-stats", "without-stats"])
def test_null_keys_are_found_with_or_without_file_statistics(tmp_path, statistics):
    with_nulls, without = tmp_path / "n" / "a.parquet", tmp_path / "n" / "b.parquet"
    write(with_nulls, {"person_id": ["a", None, "b"], "v": [1.0, 2.0, 3.0]}, write_statistics=statistics)
    write(without, {"person_id": ["a", "c", "b"], "v": [1.0, 2.0, 3.0]}, write_statistics=statistics)
    con = duckdb.connect(":memory:")
    try:
        assert has_null_keys(con, with_nulls, "person_id") is True
        assert has_null_keys(con, without, "person_id") is False
    finally:
        con.close()
    schema = {"a": {"person_id": "person_key", "v": {"class": "sensitive", "bounds": [0, 10], "max_per_person": 5}}}
    q = parse_query({"kind": "sum", "table": "a", "column": "v", "epsilon": 1}, schema)
    got = exact_aggregate(q, make_plan(q), tmp_path / "n")
    assert got.counts == [2] and got.sums == [4 * 10**make_plan(q).decimals]


def test_the_grid_of_the_double_path_is_exact_for_every_declared_bound():
    # the DOUBLE rounding trick needs |k| < 2^51 and M + c < 2^53 for every admissible bound
    from egress.dp.calibrate import I64_SAFE, ROW_CAP, sum_decimals

    for b in (1e-3, 1.0, 200.0, 1e6, 4.6e9):
        d = sum_decimals((-b, b))
        lo_i, hi_i = grid_bounds((-b, b), d)
        assert max(abs(lo_i), abs(hi_i)) * ROW_CAP <= I64_SAFE and max(abs(lo_i), abs(hi_i)) < 2**51
        assert Fraction(hi_i) == math.floor(Fraction(b) * 10**d)
