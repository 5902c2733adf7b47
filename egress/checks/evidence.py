"""Per-cell evidence: what the enclave knows about the persons behind each published cell.

Evidence comes from re-executing the provenance SQL against the extract (`egress.provenance`);
a table without provenance has none and is checked on what it shows (`verified=False`).

A cell is addressed by `(label_key, column)`: `label_key` is the normalised tuple of the row's
label values (`label_key(values)`), `column` the name of the measure column. Normalising makes
`2019`, `2019.0` and `"2019"` the same key, so a table read back from CSV still finds its
evidence.

Pure: no DuckDB, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

# Aggregates whose cells are counts of persons/rows (frequency rules) vs magnitudes.
COUNT_AGGREGATES = frozenset({"count", "count_star"})
MAGNITUDE_AGGREGATES = frozenset({"sum", "avg", "mean", "median", "min", "max", "stddev", "stddev_samp",
                                  "stddev_pop", "var_samp", "var_pop", "variance", "quantile_cont",
                                  "quantile_disc", "mode"})


@dataclass(frozen=True)
class CellEvidence:
    """What lies behind one cell.

    persons:  distinct persons contributing to the cell.
    total:    sum of the per-person contributions (None for count cells).
    top:      the largest per-person contributions, descending (at least `dominance_n` and 2
              when known, fewer if fewer persons).
    negative: rows with a negative measure value.
    missing:  rows whose measure value is NULL (ignored by the aggregate).
    aggregate: the SQL aggregate that produced the cell (`count`, `sum`, `avg`, ...).
    """

    persons: int
    total: float | None = None
    top: tuple[float, ...] = ()
    negative: int = 0
    missing: int = 0
    aggregate: str = "count"


@dataclass(frozen=True)
class Evidence:
    """Evidence for a whole table: `cells[(label_key, column)] -> CellEvidence`."""

    label_columns: tuple[str, ...]
    cells: Mapping[tuple[tuple, str], CellEvidence] = field(default_factory=dict)
    source: str = "provenance"

    def get(self, labels: Iterable[Any], column: str) -> CellEvidence | None:
        return self.cells.get((label_key(labels), column))

    def aggregate_of(self, column: str) -> str | None:
        for (_, col), cell in self.cells.items():
            if col == column:
                return cell.aggregate
        return None


def normalise_label(value: Any) -> Any:
    """One canonical form per label value (see module docstring)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer() and text.lstrip("+-").replace(".", "", 1).isdigit():
        return str(int(number))
    return text


def label_key(values: Iterable[Any]) -> tuple:
    return tuple(normalise_label(v) for v in values)
