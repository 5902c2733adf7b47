"""`egress.checks.compare`: is the submitted table the result of its query? (pure)"""

import pyarrow as pa
import pytest

from egress.exceptions import TableMismatch
from egress.checks.compare import check_match, compare

RESULT = pa.table({"sex": ["F", "M", "X"], "n": [120, 98, 12], "mean_age": [41.23456, 39.5, 50.0]})


def test_same_rows_in_any_order_and_shown_precision_match():
    submitted = pa.table({"mean_age": [39.5, 41.23, 50.0], "sex": ["M", "F", "X"], "n": [98, 120, 12]})
    match = compare(submitted, RESULT)
    assert match.equal, match.reason
    assert match.rows_compared == 3


def test_suppressed_and_rounded_cells_are_allowed_and_counted():
    submitted = pa.table({"sex": ["F", "M", "X"], "n": [120, 100, None], "mean_age": [41.23456, 39.5, None]})
    match = compare(submitted, RESULT, rounding_base=5)
    assert match.equal, match.reason
    assert (match.suppressed_cells, match.rounded_cells) == (2, 1)


@pytest.mark.parametrize("submitted, reason", [
    (pa.table({"sex": ["F", "M", "X"], "n": [120, 98, 15], "mean_age": [41.23456, 39.5, 50.0]}), "differ"),
    (pa.table({"sex": ["F", "M", "X"], "n": [120, 98, 12], "mean_age": [41.3, 39.5, 50.0]}), "differ"),
    (pa.table({"sex": ["F", "M"], "n": [120, 98], "mean_age": [41.2, 39.5]}), "rows submitted"),
    (pa.table({"sex": ["F", "M", "Y"], "n": [120, 98, 12], "mean_age": [41.23456, 39.5, 50.0]}), "labels"),
    (pa.table({"sex": ["F", "M", "X"], "count": [120, 98, 12], "mean_age": [41.2, 39.5, 50.0]}), "columns"),
])
def test_tampered_tables_do_not_match(submitted, reason):
    match = compare(submitted, RESULT, rounding_base=5)
    assert not match.equal
    assert reason in match.reason
    with pytest.raises(TableMismatch, match="not the result of its provenance SQL"):
        check_match(match)


def test_a_rounded_count_more_than_one_base_away_is_tampering():
    submitted = pa.table({"sex": ["F", "M", "X"], "n": [120, 90, 12], "mean_age": [41.23456, 39.5, 50.0]})
    assert not compare(submitted, RESULT, rounding_base=5).equal
