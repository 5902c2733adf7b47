"""A published table as an attacker sees it: cells addressed by their label values over named
dimensions, with the margins that tie them together as linear equations.

A *cell* has one key entry per dimension: a (normalised) category, or `MARGIN` when the cell
adds up that dimension. The shapes read here:

- **long**: label columns are the dimensions, one measure column per grid; a margin is a row
  whose label is `All`/`Total`/... (what `pandas`' `margins=True` writes) or NULL (what SQL's
  `ROLLUP`/`GROUPING SETS`/`CUBE` write); any number of label columns (n-way tables), every
  combination of margins, nested label columns (hierarchies: `region`, `district` with a
  subtotal per region) included;
- **wide** (a crosstab): a measure column named `All`/`Total` marks the measure columns as the
  categories of one more dimension (`__column__`).

Equations: for every cell with a margin in dimension `d`, the cell equals the sum of the
cells that agree with it everywhere but in `d`, where they hold a category. A NULL label is
read as a margin only if every fully published equation it makes holds (else it is a
category of its own, e.g. "unknown sex"); a named margin that breaks its equation makes the
table inconsistent (`InconsistentRelease`), which a checker looks at.

Linked tables (`link`) put cells of several tables of the same measure into one grid over the
union of their dimensions: a dimension a table does not have is a margin there, so the
released `count by sex` is the margin of the new `count by sex and age`.

Pure: no I/O, no solver (egress.checks.suppression solves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import pyarrow as pa

from egress.checks.evidence import label_key
from egress.checks.tables import MARGIN_NAMES, as_float

MARGIN = "\x00margin"  # never a normalised label (those come from text without NUL)
COLUMN_DIM = "__column__"
_TOLERANCE = 1e-6


class InconsistentRelease(ValueError):
    """The published cells and margins contradict each other (e.g. rounded margins)."""


@dataclass(frozen=True)
class GridCell:
    """One cell. `value` is what was published (None: suppressed); `truth` the true value when
    the checker knows it (evidence, or the submitted value before suppression); `sensitive`
    True/False when the primary rules decided it, None when unknown (then a suppressed cell
    must be protected); `origin` its `(row, column)` in its table; `table` 0 for the table
    being checked, i > 0 for linked table i (read-only: already released or pending)."""

    key: tuple
    value: float | None
    truth: float | None = None
    sensitive: bool | None = None
    origin: tuple | None = None
    table: int = 0

    @property
    def suppressed(self) -> bool:
        return self.value is None


@dataclass
class Grid:
    dims: tuple[str, ...]
    cells: list[GridCell]
    equations: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # (total, parts)
    integer: bool = True  # counts: the attacker also knows cells are whole numbers

    def index(self) -> dict[tuple, int]:
        return {c.key: i for i, c in enumerate(self.cells)}


def is_margin_label(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in MARGIN_NAMES


def is_wide(measures: Sequence[str]) -> bool:
    """A crosstab: one of several measure columns is named like a margin (`All`, `Total`)."""
    return len(measures) >= 2 and any(is_margin_label(m) for m in measures)


def make_grids(table: pa.Table, labels: Sequence[str], measures: Sequence[str], *,
               truth=None, sensitive=None, integer=None) -> list[tuple[tuple[str, ...], Grid]]:
    """One grid per measure column of a long table, or one grid for a wide table; each with the
    measure columns it covers. `truth(row, column)`, `sensitive(row, column)` and
    `integer(columns)` are callbacks from the rules (what the checker knows per cell)."""
    truth = truth or (lambda row, column: None)
    sensitive = sensitive or (lambda row, column: None)
    integer = integer or (lambda columns: True)
    label_values = [table.column(c).to_pylist() for c in labels]
    rows = list(zip(*label_values)) if label_values else [()] * table.num_rows
    if is_wide(measures):
        specs = [(tuple(measures), tuple(labels) + (COLUMN_DIM,))]
    else:
        specs = [((m,), tuple(labels)) for m in measures]
    grids = []
    for columns, dims in specs:
        cells = []
        for column in columns:
            values = table.column(column).to_pylist()
            for r, row in enumerate(rows):
                raw = row + ((column,) if len(dims) > len(labels) else ())
                cells.append(GridCell(_key(raw), as_float(values[r]), truth(r, column), sensitive(r, column),
                                      (r, column)))
        grid = _with_null_margins(Grid(dims, cells, integer=integer(columns)))
        grids.append((columns, grid))
    return grids


def _key(raw: tuple) -> tuple:
    out = []
    for value in raw:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(_NULL)
        elif is_margin_label(value):
            out.append(MARGIN)
        else:
            out.append(label_key([value])[0])
    return tuple(out)


_NULL = "\x00null"  # a NULL label: a margin (ROLLUP) or a category, decided per dimension


def _with_null_margins(grid: Grid) -> Grid:
    """Decide per dimension whether NULL labels are margins (module docstring), then build the
    equations. A table whose named margins contradict its cells raises InconsistentRelease."""
    dims_with_null = [d for d in range(len(grid.dims)) if any(c.key[d] == _NULL for c in grid.cells)]
    if dims_with_null:
        as_margin = {d for d in dims_with_null if not _violations(_replace_null(grid, {d}), d)}
        final = _replace_null(grid, as_margin)
    else:
        final = Grid(grid.dims, grid.cells, equations_of(grid.cells, len(grid.dims)), grid.integer)
    problems = _violations(final, None)
    if problems:
        raise InconsistentRelease(problems[0])
    return final


def _replace_null(grid: Grid, margin_dims: set[int]) -> Grid:
    """NULL labels become margins in `margin_dims`, a category of their own elsewhere."""
    cells = [replace(c, key=tuple((MARGIN if d in margin_dims else None) if v == _NULL else v
                                  for d, v in enumerate(c.key))) for c in grid.cells]
    return Grid(grid.dims, cells, equations_of(cells, len(grid.dims)), grid.integer)


def equations_of(cells: Sequence[GridCell], ndims: int) -> list[tuple[int, tuple[int, ...]]]:
    """`(total cell, part cells)` for every margin cell and every dimension it adds up."""
    index: dict[tuple, int] = {}
    for i, c in enumerate(cells):
        index.setdefault(c.key, i)
    children: dict[tuple[int, tuple], list[int]] = {}
    for i, c in enumerate(cells):
        if index.get(c.key) != i:
            continue  # a duplicate key (the same cell in a linked table) is one unknown
        for d in range(ndims):
            if c.key[d] != MARGIN:
                parent = c.key[:d] + (MARGIN,) + c.key[d + 1:]
                children.setdefault((d, parent), []).append(i)
    out = []
    for (d, parent), parts in children.items():
        total = index.get(parent)
        if total is not None:
            out.append((total, tuple(parts)))
    return out


def _violations(grid: Grid, dim: int | None) -> list[str]:
    """Fully published equations that do not hold (only those over `dim` when given)."""
    bad = []
    for total, parts in grid.equations:
        cells = [grid.cells[total]] + [grid.cells[p] for p in parts]
        if dim is not None:
            t = grid.cells[total].key
            first = grid.cells[parts[0]].key
            if not (t[dim] == MARGIN and first[dim] != MARGIN):
                continue
        if any(c.value is None for c in cells):
            continue
        diff = grid.cells[total].value - sum(grid.cells[p].value for p in parts)
        if abs(diff) > _TOLERANCE * max(1.0, abs(grid.cells[total].value)):
            bad.append(f"a margin differs from the sum of its cells by {abs(diff):g}")
    return bad


def is_additive(grid: Grid) -> bool:
    """Whether the published margins are sums of their cells (True when no equation can be
    checked: nothing contradicts it). Means and medians with margins are not."""
    return not _violations(grid, None)


def link(own: Grid, others: Sequence[Grid]) -> tuple[Grid, list[int]]:
    """One grid over the union of the dimensions of `own` and the linked `others` (module
    docstring). A linked grid whose published cells contradict `own`'s (same key, different
    value) measures something else and is left out; returns the linked grid and the indices
    (into `others`) of the grids it took in."""
    dims = list(own.dims)
    for other in others:
        dims += [d for d in other.dims if d not in dims]
    dims_t = tuple(dims)

    def widen(grid: Grid, table: int) -> list[GridCell]:
        where = [grid.dims.index(d) if d in grid.dims else None for d in dims_t]
        return [replace(c, key=tuple(MARGIN if w is None else c.key[w] for w in where), table=table)
                for c in grid.cells]

    cells = widen(own, 0)
    published = {c.key: c.value for c in cells if c.value is not None}
    taken = []
    for i, other in enumerate(others):
        extra = widen(other, i + 1)
        shared = [(published[c.key], c.value) for c in extra if c.value is not None and c.key in published]
        if not shared or any(abs(a - b) > _TOLERANCE * max(1.0, abs(a)) for a, b in shared):
            continue  # shares no published cell, or another quantity under the same names
        trial = cells + extra
        grid = Grid(dims_t, trial, equations_of(trial, len(dims_t)), own.integer)
        if _violations(grid, None):
            continue
        cells = trial
        for c in extra:
            if c.value is not None:
                published.setdefault(c.key, c.value)
        taken.append(i)
    return Grid(dims_t, cells, equations_of(cells, len(dims_t)), own.integer), taken
