"""Differencing against earlier releases of the same permit (issue 4)."""

import pyarrow as pa

from egress.checks import check_table


def counts(values, groups=("a", "b", "c")):
    return pa.table({"region": list(groups), "n": values})


def test_a_differencing_pair_is_flagged():
    released = [counts([120, 200, 310])]
    verdicts = check_table(counts([117, 200, 330]), None, kind="frequency", released=released)
    assert verdicts.cells_with("differencing") == {(0, "n")}  # 3 persons revealed; 20 is fine
    assert "120" in verdicts.cells[0].findings[0].message


def test_identical_release_and_large_differences_are_not_flagged():
    assert check_table(counts([120, 200, 310]), None, kind="frequency",
                       released=[counts([120, 200, 310])]).cells_with("differencing") == set()
    assert check_table(counts([130, 210, 320]), None, kind="frequency",
                       released=[counts([120, 200, 310])]).cells_with("differencing") == set()


def test_subset_tables_are_compared_on_common_cells():
    released = [counts([120, 200], groups=("a", "b"))]
    verdicts = check_table(counts([120, 195, 310]), None, kind="frequency", released=released)
    assert verdicts.cells_with("differencing") == {(1, "n")}


def test_tables_with_other_labels_are_not_compared():
    released = [pa.table({"sex": ["F"], "n": [121]})]
    assert check_table(counts([120, 200, 310]), None, kind="frequency",
                       released=released).cells_with("differencing") == set()
