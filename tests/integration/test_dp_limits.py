"""DP gateway limits found by an independent audit (issue 15): values DuckDB cannot bind are
refused before the ledger is charged, the per-query epsilon is capped by the permit, and
answers above the permit's auto-release epsilon are held for review."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from egress.dp.service import budget, run_query
from hub.exceptions import InvalidInput
from tests.integration.dp_fixtures import SCHEMA, make_extract, make_permit


@pytest.fixture
def extract(tmp_path):
    return make_extract(tmp_path / "extract", persons=200)


def untyped_schema():
    """The descriptor without column types: the extract's own types must decide."""
    schema = copy.deepcopy(SCHEMA)
    for table in schema["tables"].values():
        for column in table["columns"].values():
            column.pop("type", None)
    return schema


@pytest.mark.parametrize("table, column, value", [
    ("person", "year_of_birth", 2 ** 63),            # beyond BIGINT
    ("person", "year_of_birth", -(2 ** 63) - 1),
    ("person", "gender_concept_id", 10 ** 30),
    ("measurement", "measurement_date", "2020/01/01"),  # not ISO
    ("measurement", "measurement_date", "20200101"),    # compact ISO: Python parses it, DuckDB does not
    ("measurement", "measurement_date", "2020-02-30"),
    ("measurement", "measurement_date", "2020-W01-1"),
])
def test_unbindable_filter_values_are_refused_before_the_charge(engine, extract, table, column, value):
    permit = make_permit(epsilon=1.0)
    spec = {"kind": "count", "table": table, "epsilon": 0.5,
            "where": [{"column": column, "op": ">=" if table == "person" and column == "year_of_birth" else "=",
                       "value": value}]}
    if column == "gender_concept_id":
        spec["where"][0]["op"] = "!="
    with pytest.raises(InvalidInput) as err:
        run_query(engine, extract, permit, "alice", spec, schema=untyped_schema())
    assert err.value.field == "where.0.value"
    assert budget(engine, permit, "alice")["epsilon_remaining"] == pytest.approx(1.0)


def test_a_valid_iso_date_on_a_date_column_is_answered(engine, extract):
    spec = {"kind": "count", "table": "measurement", "epsilon": 0.5,
            "where": [{"column": "measurement_date", "op": ">=", "value": "2020-03-01"}]}
    assert "value" in run_query(engine, extract, make_permit(), "alice", spec, schema=untyped_schema())


@pytest.mark.parametrize("cap, epsilon, refused", [(None, 10.0, False), (None, 10.5, True),
                                                    (2.0, 2.0, False), (2.0, 2.01, True)])
def test_per_query_epsilon_is_capped_by_the_permit(engine, extract, cap, epsilon, refused):
    permit = make_permit(epsilon=50.0)
    if cap is not None:
        permit = replace(permit, dp=replace(permit.dp, max_query_epsilon=cap))
    spec = {"kind": "count", "table": "person", "epsilon": epsilon}
    if refused:
        with pytest.raises(InvalidInput, match="at most") as err:
            run_query(engine, extract, permit, "alice", spec, schema=SCHEMA)
        assert err.value.field == "epsilon"
        assert budget(engine, permit, "alice")["epsilon_remaining"] == pytest.approx(50.0)
    else:
        assert run_query(engine, extract, permit, "alice", spec, schema=SCHEMA)["epsilon"] == pytest.approx(epsilon)


@pytest.mark.parametrize("limit, epsilon, release", [(None, 1.0, "auto"), (None, 1.01, "review"),
                                                     (None, 10.0, "review"), (5.0, 5.0, "auto"), (5.0, 6.0, "review"),
                                                     (0.0, 0.1, "review")])
def test_auto_release_only_up_to_the_permit_epsilon(engine, extract, limit, epsilon, release):
    permit = make_permit(epsilon=50.0)
    dp = replace(permit.dp, auto_release=True)
    if limit is not None:
        dp = replace(dp, auto_release_max_epsilon=limit)
    answer = run_query(engine, extract, replace(permit, dp=dp), "alice",
                       {"kind": "count", "table": "person", "epsilon": epsilon}, schema=SCHEMA)
    assert answer["release"] == release


@pytest.mark.parametrize("value, column_type, ok", [
    (2 ** 31 - 1, "INTEGER", True), (2 ** 31, "INTEGER", False), (-2 ** 31, "INTEGER", True),
    (2 ** 63 - 1, "BIGINT", True), (2 ** 63, "BIGINT", False), (-1, "UBIGINT", False), (2 ** 63, "UBIGINT", False),
    (2 ** 63, "DOUBLE", False), (1e300, "DOUBLE", True), (1e30, "BIGINT", False), (127, "TINYINT", True),
    (128, "TINYINT", False), ("2020-01-31", "DATE", True), ("2020-1-31", "DATE", False),
    ("2020-01-31 10:00", "TIMESTAMP", True), ("2020-01-31T10:00:00.5", "TIMESTAMP", True),
    ("2020-01-31T25:00", "TIMESTAMP", False), ("31.01.2020", "TIMESTAMP", False),
])
def test_value_fits_column_type_at_the_boundaries(value, column_type, ok):
    from egress.dp.compute import value_problem

    assert (value_problem(value, column_type) is None) is ok
