"""How the checks read a submitted table: which columns are labels and which are measures,
and whether it is a two-way table with margins.

Supported shapes (documented in docs/checker-rules.md):
- *long*: label columns (the GROUP BY keys) and one or more measure columns, one row per cell
  group: `sex | year | n`;
- *wide*: label columns and numeric columns, one per category of the last variable
  (`pandas.crosstab(...).reset_index()`), with a margins column named `All`/`Total`;
- margins anywhere: rows labelled `All`/`Total` (or NULL, as SQL's ROLLUP writes them);
  `egress.checks.grid` reads the layout for the secondary-suppression audit.

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
