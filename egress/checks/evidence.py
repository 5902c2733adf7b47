"""Per-cell evidence: what the enclave knows about the persons behind each published cell.

Evidence comes from re-executing the provenance SQL against the extract (`egress.provenance`);
a table without provenance has none and is checked on what it shows (`verified=False`).

A cell is addressed by `(label_key, column)`: `label_key` is the normalised tuple of the row's
label values (`label_key(values)`), `column` the name of the measure column. Normalising makes
`2019`, `2019.0` and `"2019"` the same key, so a table read back from CSV still finds its
evidence.

Pure: no DuckDB, no I/O (numpy for person sets).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

# Aggregates whose cells are counts of persons/rows (frequency rules) vs magnitudes.
COUNT_AGGREGATES = frozenset({"count", "count_star"})
MAGNITUDE_AGGREGATES = frozenset({"sum", "avg", "mean", "median", "min", "max", "stddev", "stddev_samp",
                                  "stddev_pop", "var_samp", "var_pop", "variance", "quantile_cont",
                                  "quantile_disc", "mode"})


class PersonSet:
    """The (hashed) persons behind a cell, as a sorted array of distinct 64-bit hashes: 8 bytes
    a person (a Python set of ints takes ~70), so the cells of a 10 M-row extract fit in memory.
    Supports what differencing asks of a set: `len`, `<=` (subset), `isdisjoint`."""

    __slots__ = ("ids",)

    def __init__(self, ids: Any):
        self.ids = np.unique(np.asarray(ids, dtype=np.uint64))

    def __len__(self) -> int:
        return int(self.ids.size)

    def __bool__(self) -> bool:
        return self.ids.size > 0

    def __le__(self, other: "PersonSet") -> bool:
        if self.ids.size > other.ids.size:
            return False
        if self.ids.size == 0:
            return True
        if self.ids[0] < other.ids[0] or self.ids[-1] > other.ids[-1]:
            return False
        # a few persons first: most cells that are not inside another fail on them already
        probe = self.ids[::max(1, self.ids.size // 32)]
        return _contains(other.ids, probe) and _contains(other.ids, self.ids)

    def isdisjoint(self, other: "PersonSet") -> bool:
        small, big = (self.ids, other.ids) if self.ids.size <= other.ids.size else (other.ids, self.ids)
        if small.size == 0 or small[-1] < big[0] or small[0] > big[-1]:
            return True
        at = np.searchsorted(big, small)
        found = at < big.size
        return not np.any(big[at[found]] == small[found])


def _contains(sorted_ids: np.ndarray, probe: np.ndarray) -> bool:
    at = np.searchsorted(sorted_ids, probe)
    return bool(np.all(at < sorted_ids.size)) and bool(np.all(sorted_ids[np.minimum(at, sorted_ids.size - 1)] == probe))


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
    value:    the cell's true value (the re-executed query's result), when `value_known`;
              None there is a genuinely empty cell (e.g. the mean of no values), not a
              suppressed one. The suppression audit protects suppressed cells around it.
    person_set: the (hashed) persons behind the cell when the evidence query listed them;
              differencing then works on sets of persons instead of cell values.
    values:   rows with a value behind the cell (None: not known), for the checker's page.
    """

    persons: int
    total: float | None = None
    top: tuple[float, ...] = ()
    negative: int = 0
    missing: int = 0
    aggregate: str = "count"
    value: float | None = None
    value_known: bool = False
    person_set: PersonSet | frozenset | None = field(default=None, repr=False)
    values: int | None = None


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
    try:
        return _normalised(value)
    except TypeError:  # not hashable
        return _normalise(value)


# A table's label values repeat across its cells and every lookup normalises them again.
_normalised = functools.lru_cache(maxsize=1 << 16, typed=True)(lambda value: _normalise(value))


def _normalise(value: Any) -> Any:
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
