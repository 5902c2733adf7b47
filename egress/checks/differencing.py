"""Differencing: a new table next to an earlier release of the same permit can reveal a small
group by subtraction (`released 120, now 117` → 3 persons left the cohort).

Two tables are compared when they share the label columns; cells are matched by their label
values and measure column, so a table whose cells are a subset of the other's (fewer
categories, one more filter on a row) is compared on the cells they have in common. A cell
is flagged when `0 < |new - old| < threshold`. Only count columns are compared: means and
sums differ by small amounts all the time without revealing a group (documented limitation:
differences between tables with different label columns, e.g. a margin against a split, are
left to the checker, as ACRO's PresenceOfLinkedTableCheck does).

Pure: pyarrow only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pyarrow as pa

from egress.checks.evidence import label_key
from egress.checks.tables import Shape, as_float, split_columns


@dataclass(frozen=True)
class Difference:
    row: int
    column: str
    new: float
    old: float
    released_index: int

    @property
    def size(self) -> float:
        return abs(self.new - self.old)


def find_differences(table: pa.Table, shape: Shape, count_columns: Sequence[str],
                     released: Sequence[pa.Table], threshold: int) -> list[Difference]:
    found: list[Difference] = []
    if not shape.labels or not count_columns:
        return found
    own_keys = _keys(table, shape.labels)
    for index, old_table in enumerate(released):
        if not all(c in old_table.column_names for c in shape.labels):
            continue
        old_shape = split_columns(old_table, label_columns=shape.labels)
        columns = [c for c in count_columns if c in old_shape.measures]
        if not columns:
            continue
        old_rows = {key: row for row, key in enumerate(_keys(old_table, shape.labels))}
        for column in columns:
            new_values = table.column(column).to_pylist()
            old_values = old_table.column(column).to_pylist()
            for row, key in enumerate(own_keys):
                old_row = old_rows.get(key)
                if old_row is None:
                    continue
                new, old = as_float(new_values[row]), as_float(old_values[old_row])
                if new is None or old is None:
                    continue
                if 0 < abs(new - old) < threshold:
                    found.append(Difference(row, column, new, old, index))
    return found


def _keys(table: pa.Table, labels: Sequence[str]) -> list[tuple]:
    columns = [table.column(c).to_pylist() for c in labels]
    return [label_key(values) for values in zip(*columns)]
