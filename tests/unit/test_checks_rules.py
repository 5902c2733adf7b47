"""Disclosure rules at their exact boundaries (issue 4): n = 9/10 persons, dominance ratio
exactly 0.90, p exactly 0.10, dof 9/10, plus zeros, negatives, missing values and content rules."""

import pyarrow as pa
import pytest

from egress.checks import CellEvidence, Evidence, check_model_dof, check_other_output, check_table, make_policy
from egress.checks.verdicts import FAIL, PASS, REVIEW
from hub.exceptions import InvalidInput
from hub.permits.model import EgressPolicy


def evidence_for(cells: dict, labels=("group",)) -> Evidence:
    return Evidence(label_columns=labels, cells={((g,), column): ev for (g, column), ev in cells.items()})


@pytest.mark.parametrize("persons, rows, expected", [
    (9, 9, FAIL), (10, 10, PASS), (9, 40, FAIL), (10, 11, PASS), (11, 11, PASS),
])
def test_frequency_threshold_counts_distinct_persons_not_rows(persons, rows, expected):
    table = pa.table({"group": ["a"], "n": [rows]})
    ev = evidence_for({("a", "n"): CellEvidence(persons=persons)})
    verdicts = check_table(table, None, kind="frequency", evidence=ev)
    assert verdicts.status == expected
    assert verdicts.verified is True
    if expected == FAIL:
        assert verdicts.cells_with("threshold") == {(0, "n")}
        assert "suppress" in verdicts.cells[0].findings[0].action


@pytest.mark.parametrize("shown, expected", [(9, FAIL), (10, PASS)])
def test_frequency_without_evidence_uses_shown_count_and_is_unverified(shown, expected):
    verdicts = check_table(pa.table({"group": ["a", "b"], "n": [shown, 100]}), None, kind="frequency")
    assert verdicts.status == expected
    assert verdicts.verified is False
    if expected == FAIL:
        assert verdicts.cells[0].verified is False
        assert "unverified" in verdicts.cells[0].findings[0].message


def test_zero_cell_is_flagged_and_rounding_suggested():
    verdicts = check_table(pa.table({"group": ["a", "b"], "n": [0, 12]}), None, kind="frequency")
    assert verdicts.cells_with("zero") == {(0, "n")}
    assert verdicts.cells[0].rules == ("zero", "threshold")  # as ACRO: both checks fail
    assert any("base 5" in s for s in verdicts.suggestions)


def test_infinite_values_are_invalid():
    verdicts = check_table(pa.table({"group": ["a", "b"], "n": [float("inf"), 20.0]}), None, kind="frequency")
    assert verdicts.cells_with("invalid_value") == {(0, "n")}


def test_negative_count_is_invalid():
    verdicts = check_table(pa.table({"group": ["a"], "n": [-3]}), None, kind="frequency")
    assert verdicts.cells_with("invalid_value") == {(0, "n")}
    assert verdicts.status == FAIL


def magnitude(total, top, persons=20, negative=0, missing=0):
    table = pa.table({"group": ["a"], "total_cost": [float(total)]})
    ev = evidence_for({("a", "total_cost"): CellEvidence(persons=persons, total=float(total), top=tuple(top),
                                                         negative=negative, missing=missing, aggregate="sum")})
    return check_table(table, None, kind="magnitude", evidence=ev)


@pytest.mark.parametrize("top, expected_rules", [
    ((50.0, 40.0), {"dominance"}),     # (50 + 40) / 100 = 0.90 exactly: fails (ACRO NKCheck: >= k)
    ((50.0, 39.0), set()),             # 0.89: passes
    ((45.0, 45.0), {"dominance"}),
])
def test_dominance_boundary(top, expected_rules):
    verdicts = magnitude(100, top)
    assert {r for c in verdicts.cells for r in c.rules} == expected_rules


@pytest.mark.parametrize("total, top, fails", [
    (120.0, (100.0, 10.0), False),   # rest = 10 = 0.10 x largest exactly: passes (ACRO: < p fails)
    (119.0, (100.0, 10.0), True),    # rest = 9 = 0.09 x largest: fails
    (100.0, (100.0,), True),         # a single contributor: rest 0
    (0.0, (0.0, 0.0), True),         # all-zero cell: everyone's value revealed (ACRO fails it too)
])
def test_p_percent_boundary(total, top, fails):
    verdicts = magnitude(total, top)
    assert ((0, "total_cost") in verdicts.cells_with("p_percent")) is fails


def test_p_percent_at_boundary_with_policy_from_dict():
    policy = make_policy({"p_percent": 0.2, "dominance_k": 0.99, "reviewers_required": 2})
    table = pa.table({"group": ["a"], "s": [130.0]})
    ev = evidence_for({("a", "s"): CellEvidence(persons=30, total=130.0, top=(100.0, 10.0), aggregate="sum")})
    assert check_table(table, policy, kind="magnitude", evidence=ev).status == PASS  # rest 20 = 0.2 x 100
    ev = evidence_for({("a", "s"): CellEvidence(persons=30, total=129.0, top=(100.0, 10.0), aggregate="sum")})
    assert check_table(table, policy, kind="magnitude", evidence=ev).cells_with("p_percent") == {(0, "s")}


def test_magnitude_threshold_on_persons():
    assert magnitude(1000, (10.0, 10.0), persons=9).cells_with("threshold") == {(0, "total_cost")}
    assert magnitude(1000, (10.0, 10.0), persons=10).status == PASS


def test_negative_values_make_dominance_a_review_like_acro():
    verdicts = magnitude(100, (90.0, 9.0), negative=2)
    assert verdicts.cells[0].rules == ("negative",)
    assert verdicts.status == REVIEW


def test_missing_values_are_reported_for_review():
    verdicts = magnitude(1000, (10.0, 10.0), missing=3)
    assert verdicts.cells[0].rules == ("missing",)
    assert verdicts.status == REVIEW


def test_evidence_aggregate_decides_count_or_magnitude_whatever_the_kind():
    table = pa.table({"group": ["a"], "n": [40], "mean_cost": [12.5]})
    ev = evidence_for({("a", "n"): CellEvidence(persons=40),
                       ("a", "mean_cost"): CellEvidence(persons=40, total=500.0, top=(460.0, 20.0),
                                                        aggregate="avg")})
    verdicts = check_table(table, None, kind="frequency", evidence=ev)
    assert verdicts.cells_with("dominance") == {(0, "mean_cost")}
    assert verdicts.cells_with("invalid_value") == set()  # 12.5 is a mean, not a broken count


@pytest.mark.parametrize("aggregate, rules", [
    ("sum", {"dominance", "p_percent"}), ("avg", {"dominance", "p_percent"}),
    ("median", set()), ("stddev", set()), ("max", {"extreme_value"}),
])
def test_dominance_applies_to_linear_aggregates_only_like_acro(aggregate, rules):
    table = pa.table({"group": ["a"], "v": [1.0]})
    ev = evidence_for({("a", "v"): CellEvidence(persons=20, total=100.0, top=(95.0, 1.0), aggregate=aggregate)})
    verdicts = check_table(table, None, kind="magnitude", evidence=ev)
    assert {r for c in verdicts.cells for r in c.rules} == rules


def test_magnitude_without_evidence_needs_review_and_uses_shown_count():
    table = pa.table({"group": ["a", "b"], "n": [9, 50], "mean_age": [40.5, 41.0]})
    verdicts = check_table(table, None, kind="magnitude")
    assert "no_evidence" in verdicts.table_rules()
    assert verdicts.cells_with("threshold") == {(0, "n"), (0, "mean_age")}
    assert verdicts.verified is False


@pytest.mark.parametrize("dof, expected", [(9, FAIL), (10, PASS), (9.5, FAIL)])
def test_model_residual_degrees_of_freedom(dof, expected):
    assert check_model_dof(dof).status == expected
    table = pa.table({"term": ["const", "age"], "coef": [1.2, 0.3], "df_resid": [dof, dof]})
    assert check_table(table, None, kind="model").status == expected


def test_model_without_dof_column_fails():
    verdicts = check_table(pa.table({"term": ["age"], "coef": [0.3]}), None, kind="model")
    assert verdicts.table_rules() == {"dof"}


def test_policy_accepts_the_permit_object_and_rejects_nonsense():
    policy = make_policy(EgressPolicy(threshold=20))
    assert (policy.threshold, policy.dominance_k, policy.max_file_bytes) == (20, 0.9, 16 * 1024 * 1024)
    assert check_table(pa.table({"g": ["a"], "n": [15]}), EgressPolicy(threshold=20), kind="frequency").status == FAIL
    with pytest.raises(InvalidInput, match="threshold"):
        make_policy({"threshold": 0})
    with pytest.raises(InvalidInput, match="dominance_k"):
        make_policy({"dominance_k": "high"})
    with pytest.raises(InvalidInput, match="kind"):
        check_table(pa.table({"n": [1]}), None, kind="histogram")


@pytest.mark.parametrize("column, values", [
    ("person_id", ["a", "b", "c"]),
    ("visit_occurrence_id", [1, 2, 3]),
    ("pseudonym", ["x", "y", "z"]),
    ("who", [f"{i:032x}" for i in range(20)]),
    ("who", [f"123e4567-e89b-12d3-a456-4266141740{i:02d}" for i in range(10)]),
])
def test_person_key_columns_are_refused(column, values):
    table = pa.table({column: values, "n": [50] * len(values)})
    verdicts = check_table(table, None, kind="frequency", label_columns=[column])
    assert "person_key_column" in verdicts.table_rules()
    assert verdicts.status == FAIL


def test_concept_ids_and_categories_are_not_person_keys():
    table = pa.table({"gender_concept_id": [8507, 8532], "year": [2019, 2019], "n": [50, 60]})
    verdicts = check_table(table, None, kind="frequency")
    assert verdicts.status == PASS
    assert verdicts.cells_checked == 2  # year and the concept id are labels, only n is a measure


@pytest.mark.parametrize("text, flagged", [
    ("=HYPERLINK(\"http://x\")", True), ("+cmd|' /C calc'!A0", True), ("@SUM(A1)", True),
    ("-2+3", True), ("-3.5", False), ("+2", False), ("female", False), ("1e-3", False),
])
def test_formula_injection(text, flagged):
    verdicts = check_table(pa.table({"label": [text], "n": [50]}), None, kind="frequency")
    assert ("formula_injection" in verdicts.table_rules()) is flagged


def test_table_with_rows_close_to_the_number_of_persons_is_refused():
    table = pa.table({"age": list(range(60)), "n": [10] * 60})
    assert "too_many_rows" in check_table(table, None, kind="frequency", label_columns=["age"],
                                          extract_persons=100).table_rules()
    assert "too_many_rows" not in check_table(table, None, kind="frequency", label_columns=["age"],
                                              extract_persons=120).table_rules()


def test_verdicts_serialise_to_json():
    import json

    verdicts = check_table(pa.table({"group": ["a"], "n": [3]}), None, kind="frequency")
    document = json.loads(json.dumps(verdicts.to_dict()))
    assert document["status"] == "fail"
    assert document["cells"][0]["findings"][0]["rule"] == "threshold"


def test_figures_and_text_go_to_manual_review():
    assert check_other_output("figure").status == REVIEW
    assert check_other_output("text").table_rules() == {"manual_review"}
    with pytest.raises(InvalidInput, match="kind"):
        check_other_output("binary")
