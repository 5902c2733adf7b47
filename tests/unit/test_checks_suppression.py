"""Secondary suppression (issue 4): an interval attack on a released table with margins
recovers none of the suppressed cells; a badly suppressed table is caught."""

import math

import pyarrow as pa
import pytest

from egress.checks import check_table
from egress.checks.grid import make_grids
from egress.checks.secondary import apply_pattern
from egress.checks.suppression import intervals

# True counts (rows: age bands, columns: sex) used to build the published tables below.
TRUE = {"18-39": {"F": 40, "M": 35, "X": 3}, "40-64": {"F": 52, "M": 47, "X": 20},
        "65+": {"F": 30, "M": 28, "X": 25}}


def published(suppress: set[tuple[str, str]]) -> pa.Table:
    """The wide table with margins `All`, with the `suppress`ed inner cells set to NULL."""
    rows = list(TRUE)
    columns = ["F", "M", "X"]
    data = {"age_band": rows + ["All"]}
    for c in columns:
        data[c] = [None if (r, c) in suppress else TRUE[r][c] for r in rows] + [sum(TRUE[r][c] for r in rows)]
    data["All"] = [sum(TRUE[r].values()) for r in rows] + [sum(sum(v.values()) for v in TRUE.values())]
    return pa.table(data)


def bounds_of(table):
    """{(row label, column): (low, high)} of the suppressed cells of a wide table."""
    measures = [c for c in table.column_names if c != table.column_names[0]]
    (_, grid), = make_grids(table, [table.column_names[0]], measures)
    found = intervals(grid)
    labels = table.column(0).to_pylist()
    return {(labels[c.origin[0]], c.origin[1]): found[c.key] for c in grid.cells if c.key in found}


def attack(table):
    """Suppressed values an attacker recovers exactly (the interval holds one whole number)."""
    return {where: float(math.ceil(low - 1e-7)) for where, (low, high) in bounds_of(table).items()
            if math.ceil(low - 1e-7) == math.floor(high + 1e-7)}


# Primary suppression 18-39/X (3 persons) plus complementary cells forming a 2x2 block with
# large values, so that every suppressed cell ranges over an interval wider than 10.
WELL = {("18-39", "X"), ("18-39", "F"), ("65+", "X"), ("65+", "F")}
# Suppressed only in column X: each is alone in its row, so row total minus the rest gives it.
BAD = {("18-39", "X"), ("65+", "X")}


def test_attack_recovers_nothing_from_a_well_suppressed_table():
    table = published(WELL)
    assert attack(table) == {}
    found = bounds_of(table)
    assert len(found) == 4
    for (row, column), (low, high) in found.items():
        assert low <= TRUE[row][column] <= high
        assert high - low == pytest.approx(28)  # [0, 28] for 18-39/X: 43 in the row, 28 in the column


def test_attack_recovers_the_single_suppressed_cell_of_a_row():
    table = published(BAD)
    recovered = attack(table)
    # row 18-39: X = 78 - 40 - 35 = 3; row 65+: X = 83 - 30 - 28 = 25.
    assert recovered == {("18-39", "X"): 3.0, ("65+", "X"): 25.0}


def test_check_flags_badly_suppressed_cells_and_passes_the_good_table():
    bad = check_table(published(BAD), None, kind="frequency")
    assert bad.cells_with("secondary_suppression") == {(0, "X"), (2, "X")}
    finding = next(c for c in bad.cells if c.row == 0 and c.column == "X").findings[0]
    assert "[3, 3]" in finding.message
def test_spe_proposes_a_pattern_that_the_audit_and_the_attack_accept():
    full = published(set())  # 18-39/X is 3 persons: the threshold fails
    verdicts = check_table(full, None, kind="frequency")
    assert verdicts.cells_with("threshold") == {(0, "X")}
    pattern = verdicts.suppression
    assert pattern["verified"] is True
    cells = {(c["row"], c["column"]) for c in pattern["cells"]}
    assert (0, "X") in cells and 2 <= len(cells) - 1 <= 4  # a few complementary cells, not a whole row
    applied = apply_pattern(full, pattern["cells"])
    assert attack(applied) == {}
    again = check_table(applied, None, kind="frequency")
    assert again.status == "pass" and again.suppression is None
    good = check_table(published(WELL), None, kind="frequency")
    assert good.cells_with("secondary_suppression") == set()


def test_interval_width_must_reach_the_threshold():
    # 2x2 inner table, all four suppressed, margins published: each cell ranges over
    # [max(0, r + c - n), min(r, c)].
    table = pa.table({"g": ["a", "b", "Total"], "u": [None, None, 30], "v": [None, None, 30],
                      "Total": [12, 48, 60]})
    found = bounds_of(table)
    assert found[("a", "u")] == pytest.approx((0, 12))
    assert found[("b", "v")] == pytest.approx((18, 30))
    assert check_table(table, None, kind="frequency").cells_with("secondary_suppression") == set()
    narrow = pa.table({"g": ["a", "b", "Total"], "u": [None, None, 30], "v": [None, None, 30],
                       "Total": [8, 52, 60]})
    assert check_table(narrow, None, kind="frequency").cells_with("secondary_suppression") == {
        (0, "u"), (0, "v"), (1, "u"), (1, "v")}


def test_suppressed_cell_without_margins_is_unbounded():
    table = pa.table({"g": ["a", "b"], "u": [None, 30], "v": [40, 30], "All": [None, 60]})
    assert all(math.isinf(high) for _, high in bounds_of(table).values())


def test_inconsistent_margins_are_sent_to_review():
    table = pa.table({"g": ["a", "Total"], "u": [10, 99], "v": [None, 20], "Total": [30, 119]})
    verdicts = check_table(table, None, kind="frequency")
    assert "secondary_suppression" in verdicts.table_rules() or verdicts.cells_with("secondary_suppression")


def test_a_suppressed_margin_is_an_unknown_too():
    # Row a: one cell and its total suppressed; the column total and grand total still pin both.
    table = pa.table({"g": ["a", "b", "All"], "u": [None, 30, 33], "v": [40, 30, 70], "All": [None, 60, 103]})
    recovered = attack(table)
    assert recovered == {("a", "u"): 3.0, ("a", "All"): 43.0}
    assert check_table(table, None, kind="frequency").cells_with("secondary_suppression") == {(0, "u"), (0, "All")}


def test_means_with_margins_are_not_treated_as_additive():
    table = pa.table({"g": ["a", "b", "All"], "mean_u": [None, 30.5, 31.0], "mean_v": [40.0, 30.0, 35.0],
                      "All": [35.0, 30.2, 33.0]})
    verdicts = check_table(table, None, kind="magnitude")
    assert verdicts.cells_with("secondary_suppression") == set()


def test_too_many_linked_suppressed_cells_go_to_review_instead_of_hours_of_lp():
    size = 40  # 1600 suppressed cells linked through the margins: more than the LP budget
    data = {"g": [f"r{i}" for i in range(size)] + ["All"]}
    for j in range(size):
        data[f"c{j}"] = [None] * size + [100 * size]
    data["All"] = [100 * size] * size + [100 * size * size]
    verdicts = check_table(pa.table(data), None, kind="frequency")
    finding = next(f for f in verdicts.table if f.rule == "secondary_suppression")
    assert finding.status == "review" and "too many" in finding.message
