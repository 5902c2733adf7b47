"""DP query spec validation: good specs parse to the declared calibration inputs, hostile or
malformed specs are refused naming the field (pure; no data, no ledger)."""

import math

import pytest

from egress.dp.schema import make_dp_schema
from egress.dp.spec import MAX_CELLS, parse_query
from hub.datasets.descriptor import parse_descriptor
from hub.datasets.example import DESCRIPTOR
from hub.exceptions import InvalidInput, Refused
from hub.yamlio import load_yaml_file
from tests.integration.dp_fixtures import SCHEMA

PLAIN = {
    "person": {"gender_concept_id": {"class": "quasi_identifier", "categories": [8507, 8532]},
               "year_of_birth": {"class": "quasi_identifier", "bounds": [1900, 2025]}},
    "measurement": {"value_as_number": {"class": "sensitive", "bounds": [0, 1000], "max_per_person": 50}},
}


def spec(**kw):
    base = {"kind": "count", "table": "person", "epsilon": 0.5}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def test_grouped_count_takes_categories_and_bound_from_the_descriptor():
    q = parse_query(spec(table="measurement", by=["unit"]), SCHEMA)
    assert q.categories == (("mg", "g"),)
    assert q.max_per_person == 5 and q.cells == 2 and q.mechanism == "laplace" and q.delta == 0


def test_histogram_groups_by_its_column_and_by():
    q = parse_query(spec(kind="histogram", column="race", by=["gender_concept_id"]), SCHEMA)
    assert q.group_columns == ("gender_concept_id", "race") and q.cells == 6 and q.max_per_person == 1


def test_mean_uses_declared_bounds_and_plain_schema_column_bound():
    q = parse_query(spec(kind="mean", table="measurement", column="value_as_number"), PLAIN)
    assert q.bounds == (0.0, 1000.0) and q.max_per_person == 50


def test_person_table_defaults_to_one_row_per_person_in_a_plain_schema():
    assert parse_query(spec(by=["gender_concept_id"]), PLAIN).max_per_person == 1


def test_eunomia_descriptor_object_and_registry_shape_agree():
    desc = parse_descriptor(load_yaml_file(DESCRIPTOR, "descriptor"))
    s = spec(kind="mean", table="drug_exposure", column="days_supply", epsilon=1.0)
    q1 = parse_query(s, desc)
    assert q1.bounds == (0.0, 365.0) and q1.max_per_person == 100
    assert make_dp_schema(desc).person_key == "person_id"


def test_filters_are_normalised_and_the_hash_is_stable():
    where = [{"column": "measurement_date", "op": "between", "value": ["2020-01-01", "2020-12-31"]},
             {"column": "unit", "op": "in", "value": ["mg"]},
             {"column": "value_as_number", "op": ">=", "value": 10}]
    a = parse_query(spec(table="measurement", where=where), SCHEMA)
    b = parse_query(spec(table="measurement", where=where), SCHEMA)
    assert a.where[0].value == ("2020-01-01", "2020-12-31") and a.query_hash == b.query_hash
    assert a.query_hash != parse_query(spec(table="measurement", where=where[:2]), SCHEMA).query_hash


def test_gaussian_needs_delta():
    q = parse_query(spec(mechanism="gaussian", delta=1e-7), SCHEMA)
    assert q.delta == 1e-7


@pytest.mark.parametrize("changes, field, words", [
    ({"table": "nosuch"}, "table", "unknown table"),
    ({"table": "person; DROP TABLE person"}, "table", "not a column or table name"),
    ({"by": ["shoe_size"]}, "by.0", "no declared column"),
    ({"by": ["year_of_birth"]}, "by.0", "no categories"),
    ({"by": ["person_id"]}, "by.0", "identifies a person"),
    ({"table": "measurement", "by": ["measurement_id"]}, "by.0", "identifies a person"),
    ({"by": ['gender_concept_id"']}, "by.0", "not a column"),
    ({"by": ["gender_concept_id", "race", "gender_concept_id"]}, "by", "twice"),
    ({"by": ["a", "b", "c", "d"]}, "by", "at most 3"),
    ({"epsilon": 0}, "epsilon", "greater than 0"),
    ({"epsilon": -1}, "epsilon", "greater than 0"),
    ({"epsilon": math.nan}, "epsilon", "finite"),
    ({"epsilon": math.inf}, "epsilon", "finite"),
    ({"epsilon": "0.5"}, "epsilon", "number"),
    ({"epsilon": True}, "epsilon", "number"),
    ({"epsilon": None}, "epsilon", "required"),
    ({"kind": "variance"}, "kind", "one of"),
    ({"mechanism": "exponential"}, "mechanism", "one of"),
    ({"mechanism": "gaussian"}, "delta", "needs delta"),
    ({"mechanism": "gaussian", "delta": 1.5}, "delta", "between 0 and 1"),
    ({"delta": 1e-6}, "delta", "only to mechanism 'gaussian'"),
    ({"column": "year_of_birth"}, "column", "count counts rows"),
    ({"kind": "sum"}, "column", "needs a column"),
    ({"kind": "sum", "column": "race"}, "column", "no bounds"),
    ({"kind": "histogram", "column": "year_of_birth"}, "column", "no categories"),
    ({"kind": "quantile", "column": "year_of_birth"}, "alphas", "needs alphas"),
    ({"kind": "quantile", "column": "year_of_birth", "alphas": [1.5]}, "alphas", "(0, 1)"),
    ({"kind": "quantile", "column": "year_of_birth", "alphas": [0.5], "by": ["race"]}, "by", "grouped quantiles"),
    ({"alphas": [0.5]}, "alphas", "only to kind 'quantile'"),
    ({"where": "1=1; DROP TABLE person"}, "where", "list of filters"),
    ({"where": ["1=1; DROP TABLE person"]}, "where.0", "object"),
    ({"where": [{"column": "race", "op": "= 'x' OR 1=1 --", "value": "white"}]}, "where.0.op", "unknown operator"),
    ({"where": [{"column": "race", "op": "like", "value": "w%"}]}, "where.0.op", "unknown operator"),
    ({"where": [{"column": 'race" OR 1=1 --', "op": "=", "value": "white"}]}, "where.0.column", "not a column"),
    ({"where": [{"column": "race", "op": "=", "value": "white", "sql": "1=1"}]}, "where.0", "exactly the keys"),
    ({"where": [{"column": "race", "op": "=", "value": {"$ne": 1}}]}, "where.0.value", "string or a number"),
    ({"where": [{"column": "gender_concept_id", "op": "=", "value": "8507 OR 1=1"}]}, "where.0.value", "holds number"),
    ({"where": [{"column": "year_of_birth", "op": "between", "value": [2000]}]}, "where.0.value", "[low, high]"),
    ({"where": [{"column": "year_of_birth", "op": "between", "value": [2000, 1990]}]}, "where.0.value", "low <= high"),
    ({"where": [{"column": "year_of_birth", "op": "in", "value": 1990}]}, "where.0.value", "list"),
    ({"where": [{"column": "year_of_birth", "op": ">", "value": math.nan}]}, "where.0.value", "finite"),
    ({"where": [{"column": "race", "op": "=", "value": "x" * 500}]}, "where.0.value", "longer"),
    ({"where": [{"column": "person_id", "op": "=", "value": "p000001"}]}, "where.0.column", "identifies a person"),
    ({"table": "measurement", "where": [{"column": "measurement_date", "op": ">", "value": "yesterday"}]},
     "where.0.value", "ISO date"),
    ({"sql": "SELECT 1"}, None, "unknown keys"),
])
def test_bad_specs_are_refused_naming_the_field(changes, field, words):
    with pytest.raises(InvalidInput) as err:
        parse_query(spec(**changes), SCHEMA)  # spec() drops None values: epsilon=None means absent
    assert err.value.field == field
    assert words in str(err.value)


def test_too_many_cells_are_refused():
    schema = {"t": {"a": {"class": "other", "categories": list(range(200))},
                    "b": {"class": "other", "categories": list(range(200))}}}
    with pytest.raises(InvalidInput, match=f"at most {MAX_CELLS}"):
        parse_query({"kind": "count", "table": "t", "by": ["a", "b"], "epsilon": 1}, schema)


def test_table_without_declared_bound_is_refused():
    with pytest.raises(Refused, match="max_per_person"):
        parse_query({"kind": "count", "table": "visits", "epsilon": 1},
                    {"visits": {"kind": {"class": "other", "categories": [1, 2]}}})


def test_columns_outside_the_permits_extract_are_refused():
    with pytest.raises(InvalidInput, match="not in this permit's extract"):
        parse_query(spec(by=["race"]), SCHEMA, available={"person": ("person_id", "gender_concept_id")})
    with pytest.raises(InvalidInput, match="not in this permit's extract"):
        parse_query(spec(table="measurement"), SCHEMA, available={"person": ("person_id",)})
