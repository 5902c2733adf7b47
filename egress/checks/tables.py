"""How the checks read a submitted table: which columns are labels and which are measures,
and whether it is a two-way table with margins.

Supported shapes (documented in docs/checker-rules.md):
- *long*: label columns (the GROUP BY keys) and one or more measure columns, one row per cell
  group: `sex | year | n`;
- *wide*: one label column and numeric columns, one per category of the second variable
  (`pandas.crosstab(...).reset_index()`), optionally with a margins row and a margins column
  named `All`/`Total` (the secondary-suppression check needs them).

Label columns are, in order of preference: given by the caller, the evidence's labels (the
provenance query's GROUP BY keys), or every non-numeric column plus integer columns named like
categories (`year`, `*_concept_id`, `age_group`, `*_code` ...). A NULL/NaN in a measure
column is a *suppressed* cell.

Pure: pyarrow only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from egress.checks.evidence import Evidence

MARGIN_NAMES = frozenset({"all", "total", "totals", "overall", "sum"})
# Integer columns that are categories, not measures, when nobody said which columns are labels.
_LABEL_NAME = re.compile(r"^(.*concept_id|.*year.*|month|week|day|quarter|age|age_.*|.*_age|.*_group|.*_band|"
                         r".*_code|.*_category|.*_class|.*_level|category|group|band|code|region)$", re.I)
_COUNT_NAME = re.compile(r"^(n|count|counts|freq|frequency|persons|n_persons|num_persons|patients|"
                         r"n_patients|subjects|n_subjects|(n|count|num)_.*|.*_(count|n))$", re.I)


@dataclass(frozen=True)
class Shape:
    labels: tuple[str, ...]
    measures: tuple[str, ...]


def is_numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def is_count_name(name: str) -> bool:
    return bool(_COUNT_NAME.match(name))


def split_columns(table: pa.Table, label_columns: Sequence[str] | None = None,
                  evidence: Evidence | None = None) -> Shape:
    names = list(table.column_names)
    if label_columns is not None:
        labels = [c for c in label_columns if c in names]
    elif evidence is not None and all(c in names for c in evidence.label_columns):
        labels = list(evidence.label_columns)
    else:
        labels = [c for c in names if not is_numeric(table.schema.field(c).type)
                  or (pa.types.is_integer(table.schema.field(c).type) and _LABEL_NAME.match(c)
                      and not is_count_name(c))]
    measures = [c for c in names if c not in labels and is_numeric(table.schema.field(c).type)]
    return Shape(tuple(labels), tuple(measures))


def as_float(value: Any) -> float | None:
    """A measure value as float; None for a suppressed (NULL/NaN) cell."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def measure_matrix(table: pa.Table, measures: Sequence[str]) -> list[list[float | None]]:
    """Rows × measures as Python floats (None = suppressed). Output tables are small."""
    columns = [[as_float(v) for v in table.column(m).to_pylist()] for m in measures]
    return [list(row) for row in zip(*columns)] if columns else [[] for _ in range(table.num_rows)]


@dataclass(frozen=True)
class Margins:
    """A wide two-way table split into inner cells and margins (None = suppressed/absent)."""

    row_labels: tuple
    column_names: tuple[str, ...]
    inner: tuple[tuple[float | None, ...], ...]
    row_totals: tuple[float | None, ...] | None     # margins column, one per inner row
    column_totals: tuple[float | None, ...] | None  # margins row, one per inner column
    grand_total: float | None
    inner_row_index: tuple[int, ...]                # row of the submitted table per inner row


def find_margins(table: pa.Table, shape: Shape) -> Margins | None:
    """Recognise a wide two-way table with a margins row and/or column; None otherwise."""
    if len(shape.labels) != 1 or len(shape.measures) < 2:
        return None
    label_values = table.column(shape.labels[0]).to_pylist()
    margin_rows = [i for i, v in enumerate(label_values) if isinstance(v, str) and v.strip().lower() in MARGIN_NAMES]
    margin_cols = [c for c in shape.measures if c.strip().lower() in MARGIN_NAMES]
    if len(margin_rows) > 1 or len(margin_cols) > 1 or not (margin_rows or margin_cols):
        return None
    inner_cols = tuple(c for c in shape.measures if c not in margin_cols)
    inner_rows = tuple(i for i in range(table.num_rows) if i not in margin_rows)
    matrix = measure_matrix(table, list(inner_cols) + margin_cols)
    width = len(inner_cols)
    inner = tuple(tuple(matrix[i][:width]) for i in inner_rows)
    row_totals = tuple(matrix[i][width] for i in inner_rows) if margin_cols else None
    column_totals = tuple(matrix[margin_rows[0]][:width]) if margin_rows else None
    grand = matrix[margin_rows[0]][width] if (margin_rows and margin_cols) else None
    return Margins(tuple(label_values[i] for i in inner_rows), inner_cols, inner, row_totals,
                   column_totals, grand, inner_rows)
