"""Statistical audit of the released count: two neighbouring extracts that differ by ALL rows
of one person (who has more rows than the declared bound, so truncation is exercised), the
exact counts from the real DuckDB path, then the real OpenDP measurement sampled 2000 times
on each; the Clopper-Pearson (alpha = 0.05) lower bound on epsilon must not exceed the claim,
while the same audit catches a mechanism that ignores the contribution bound.

The event is fixed in advance: "noisy count >= n - 2" (n = count on the larger dataset). For
discrete Laplace with sensitivity 5 and epsilon 1 its true privacy loss is ln(2.31) = 0.84,
not the full epsilon: a tail event would be exactly tight (loss = epsilon) and the assertion
would then fail by chance in roughly 1 run in 500. The benchmark runs the tight event with
many more samples (bench/dp.py).
"""

from pathlib import Path

import duckdb

from egress.dp.calibrate import int_vector_laplace, make_plan
from egress.dp.compute import exact_aggregate
from egress.dp.empirical import clopper_pearson, epsilon_lower_bound
from egress.dp.spec import parse_query
from tests.integration.dp_fixtures import SCHEMA, make_extract

SAMPLES = 2000
EPSILON = 1.0


def neighbours(tmp_path: Path) -> tuple[Path, Path, str]:
    d = make_extract(tmp_path / "D", persons=300)
    con = duckdb.connect(":memory:")
    victim = con.execute(f"SELECT person_id FROM read_parquet('{d / 'measurement.parquet'}') GROUP BY 1 "
                         f"HAVING count(*) > 5 ORDER BY 1 LIMIT 1").fetchone()[0]
    d2 = tmp_path / "D_minus_one"
    d2.mkdir()
    for t in ("person", "measurement"):
        con.execute(f"COPY (SELECT * FROM read_parquet('{d / (t + '.parquet')}') WHERE person_id <> $v) "
                    f"TO '{d2 / (t + '.parquet')}' (FORMAT parquet)", {"v": victim})
    return d, d2, victim


def sample(meas, value: int) -> list[int]:
    # the vector mechanism adds independent noise to each coordinate: SAMPLES runs in one call
    return meas([value] * SAMPLES)


def test_released_count_passes_the_clopper_pearson_audit(tmp_path):
    d, d2, _ = neighbours(tmp_path)
    q = parse_query({"kind": "count", "table": "measurement", "epsilon": EPSILON}, SCHEMA)
    plan = make_plan(q)
    n = exact_aggregate(q, plan, d).counts[0]
    n2 = exact_aggregate(q, plan, d2).counts[0]
    assert n - n2 == q.max_per_person == 5  # the victim's rows, truncated to the declared bound

    meas = plan.components[0].measurement
    threshold = n - 2
    k1 = sum(v >= threshold for v in sample(meas, n))
    k2 = sum(v >= threshold for v in sample(meas, n2))
    bound = epsilon_lower_bound(k1, SAMPLES, k2, SAMPLES, alpha=0.05)
    assert bound <= EPSILON
    assert bound > 0.4  # the audit has power: the noise is not grossly over-scaled either

    # the same audit on a mechanism calibrated for one row per person (ignoring the bound)
    broken = int_vector_laplace(1.0 / EPSILON)
    k1 = sum(v >= threshold for v in sample(broken, n))
    k2 = sum(v >= threshold for v in sample(broken, n2))
    assert epsilon_lower_bound(k1, SAMPLES, k2, SAMPLES, alpha=0.05) > EPSILON


def test_clopper_pearson_matches_known_values():
    lo, hi = clopper_pearson(50, 100, 0.05)
    assert round(lo, 4) == 0.3983 and round(hi, 4) == 0.6017
    assert clopper_pearson(0, 10, 0.05)[0] == 0.0 and clopper_pearson(10, 10, 0.05)[1] == 1.0
