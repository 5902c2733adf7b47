"""Permit schema and semantic validation: every bad document is refused naming the field."""

import copy

import pytest
import yaml

from hub.exceptions import InvalidInput
from hub.permits.model import check_against_dataset, parse_permit
from tests.conftest import EXAMPLES

BASE = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())


def doc(**changes):
    d = copy.deepcopy(BASE)
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def test_demo_permit_parses_with_defaults():
    p = parse_permit(doc(egress=None))
    assert p.id == "DEMO-2026-001"
    assert p.egress.threshold == 10 and p.egress.dominance_n == 2 and p.egress.dominance_k == 0.9
    assert p.egress.p_percent == 0.1 and p.egress.rounding_base == 5 and p.egress.reviewers_required == 2
    assert p.is_member("alice") and not p.is_member("mallory")


@pytest.mark.parametrize("changes, field, words", [
    ({"purpose": "advertising"}, "purpose", "prohibited"),
    ({"purpose": "insurance_or_credit_exclusion"}, "purpose", "prohibited"),
    ({"purpose": "fun"}, "purpose", "unknown purpose"),
    ({"valid_until": "2025-01-01"}, "valid_until", "after valid_from"),
    ({"valid_until": "2037-01-02"}, "valid_until", "10 years"),
    ({"members": [{"username": "alice", "role": "principal_investigator"},
                  {"username": "alice", "role": "researcher"}]}, "members.1.username", "duplicate"),
    ({"principal_investigator": "zed"}, "principal_investigator", "listed in members"),
    ({"title": None}, "(top level)", "title"),
    ({"extra_field": 1}, "(top level)", "extra_field"),
    ({"egress": {"reviewers_required": 1}}, "egress.reviewers_required", "minimum"),
    ({"dp": {"epsilon": 0}}, "dp.epsilon", ""),
    ({"valid_from": "not-a-date"}, "valid_from", ""),
    ({"cohort": {"age": {"min": 50, "max": 20, "at": "2020-01-01"}}}, "cohort.age", "greater"),
    ({"cohort": {"date_window": {"from": "2020-01-01", "to": "2019-01-01"}}}, "cohort.date_window", "before"),
    ({"tables": {"person": ["person_id; DROP TABLE x"]}}, "tables.person.0", ""),
])
def test_bad_documents_are_refused_naming_the_field(changes, field, words):
    with pytest.raises(InvalidInput) as err:
        parse_permit(doc(**changes))
    assert err.value.field == field
    assert words in str(err.value)


@pytest.mark.parametrize("changes, field, words", [
    ({"tables": {"nosuch": ["person_id"]}}, "tables.nosuch", "no table"),
    ({"tables": {"person": ["person_id", "shoe_size"]}}, "tables.person", "no column"),
    ({"tables": {"person": ["person_id", "person_source_value"]}}, "tables.person", "direct identifier"),
    ({"generalise": {"person.race_concept_id": {"date": "year"}}}, "generalise.person.race_concept_id", "date rule"),
    ({"generalise": {"person.month_of_birth": {"band": 5}}}, "generalise.person.month_of_birth", "does not allow"),
    ({"cohort": {"codes": [{"table": "condition_occurrence", "column": "nope", "any_of": [1]}]}},
     "cohort.codes.0", "no column"),
])
def test_permit_wider_than_dataset_is_refused(eunomia, changes, field, words):
    p = parse_permit(doc(**changes))
    with pytest.raises(InvalidInput) as err:
        check_against_dataset(p, eunomia.schema)
    assert err.value.field == field
    assert words in str(err.value)
