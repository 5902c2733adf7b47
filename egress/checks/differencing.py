"""Differencing: a new table next to the permit's earlier outputs (released, or pending review)
can reveal a small group by subtraction: `released 120, now 117` → 3 persons left the cohort;
a released `count by sex` against a new `count by sex and age` with one age group filtered out.

Two levels, whichever the evidence allows:

- **person level** (both tables carry per-cell person sets from the provenance re-execution):
  for a new cell A and an earlier cell B, `A ⊂ B` or `B ⊂ A` with fewer than `threshold`
  persons in the difference is unsafe; so is an earlier cell B (or new cell A) that equals the
  union of disjoint cells of the other table plus fewer than `threshold` persons. This holds
  for counts and magnitudes (the difference of two sums is the small group's total) and
  whatever the label sets are.
- **cell-value level** (otherwise): cells are matched over the union of the two tables' label
  columns (`egress.checks.grid`): the same cell in both tables, or a cell of the coarser table
  against the sum of the finer table's cells below it (a margin of a released table, a
  sub-table, a table minus a filter). A count difference `0 < |d| < threshold` is unsafe; a
  magnitude cell in a row whose count cell is unsafe is unsafe too.

`Related` carries an earlier table with its evidence; `find_differences` returns one
`Difference` per new cell and reason. Values used for the new table are the true values when
known (so a suppressed cell that would disclose by difference is known to need protection).

Pure: pyarrow only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import pyarrow as pa

from egress.checks.evidence import Evidence
from egress.checks.grid import MARGIN, Grid, make_grids

# persons(row, column) -> a set of persons (PersonSet, frozenset) | None ; value(row, column) -> float | None
CellFn = Callable[[int, str], object]


@dataclass(frozen=True)
class Related:
    """An earlier output of the same permit: `status` is `released` or `pending`."""

    table: pa.Table
    name: str
    status: str = "released"
    evidence: Evidence | None = None
    label_columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Difference:
    row: int
    column: str
    size: float
    related: int
    detail: str


@dataclass(frozen=True)
class Side:
    """One table as differencing reads it: its label columns, its count and magnitude
    columns, the value per cell (true values where known) and the person set per cell."""

    table: pa.Table
    labels: tuple[str, ...]
    counts: tuple[str, ...]
    magnitudes: tuple[str, ...]
    value: CellFn
    persons: CellFn


def find_differences(new: Side, related: Sequence[Side], threshold: int) -> list[Difference]:
    found: dict[tuple[int, str, int], Difference] = {}
    for index, old in enumerate(related):
        for d in _person_level(new, old, index, threshold) or _value_level(new, old, index, threshold):
            found.setdefault((d.row, d.column, d.related), d)
    return sorted(found.values(), key=lambda d: (d.row, d.column, d.related))


# --- person level ----------------------------------------------------------------------------

def _sets(side: Side) -> dict[tuple[int, str], object] | None:
    out = {}
    for column in side.counts + side.magnitudes:
        for row in range(side.table.num_rows):
            persons = side.persons(row, column)
            if persons is None:
                return None
            if side.value(row, column) is not None or column in side.counts:
                out[(row, column)] = persons
    return out or None


def _person_level(new: Side, old: Side, index: int, threshold: int) -> list[Difference] | None:
    mine, theirs = _sets(new), _sets(old)
    if mine is None or theirs is None:
        return None
    out = []
    published_old = {k: s for k, s in theirs.items() if old.value(*k) is not None}
    for (row, column), a in mine.items():
        for (orow, ocolumn), b in published_old.items():
            small, big = (a, b) if len(a) <= len(b) else (b, a)
            gap = len(big) - len(small)
            if 0 < gap < threshold and small <= big:
                out.append(Difference(row, column, gap, index,
                                      f"its persons and those of cell {_where(old, orow, ocolumn)} differ by "
                                      f"{gap} person(s)"))
    # unions of disjoint cells of one table inside a cell of the other
    for target_side, target, parts, new_is_target in ((old, published_old, mine, False), (new, mine, published_old, True)):
        for (trow, tcolumn), big in target.items():
            inside = [(k, s) for k, s in parts.items() if s and len(s) <= len(big) and s <= big]
            taken: list = []
            used = []
            for k, s in sorted(inside, key=lambda item: -len(item[1])):
                if all(t.isdisjoint(s) for t in taken):
                    taken.append(s)
                    used.append(k)
            gap = len(big) - sum(len(t) for t in taken)  # disjoint: the union's size
            if len(used) > 1 and 0 < gap < threshold:
                cells = [(trow, tcolumn)] if new_is_target else used
                for row, column in cells:
                    out.append(Difference(row, column, gap, index,
                                          f"cell {_where(target_side, trow, tcolumn)} minus the sum of "
                                          f"{len(used)} disjoint cells leaves {gap} person(s)"))
    return out


# --- value level -----------------------------------------------------------------------------

def _grid(side: Side, column: str) -> Grid:
    # only the layout (keys, margins) comes from make_grids; values are the side's (true) values
    _, grid = make_grids(side.table.select(list(side.labels) + [column]), side.labels, [column])[0]
    grid.cells = [replace(cell, value=side.value(cell.origin[0], column)) for cell in grid.cells]
    return grid


def _value_level(new: Side, old: Side, index: int, threshold: int) -> list[Difference]:
    out = []
    for column in new.counts:
        if column not in old.counts or set(new.labels) - set(old.labels) and set(old.labels) - set(new.labels):
            continue
        try:
            mine, theirs = _grid(new, column), _grid(old, column)
        except ValueError:
            continue
        fine_is_new = len(new.labels) >= len(old.labels)
        fine, coarse = (mine, theirs) if fine_is_new else (theirs, mine)
        position = [fine.dims.index(d) for d in coarse.dims]
        extra = [d for d in range(len(fine.dims)) if d not in position]
        groups: dict[tuple, list] = {}
        for cell in fine.cells:
            if any(cell.key[d] == MARGIN for d in extra):
                continue
            groups.setdefault(tuple(cell.key[p] for p in position), []).append(cell)
        for cell in coarse.cells:
            if cell.value is None:
                continue
            below = groups.get(cell.key)
            if not below or any(c.value is None for c in below):
                continue
            below_sum = sum(c.value for c in below)
            gap = abs(cell.value - below_sum)
            if 0 < gap < threshold:
                mine_value, their_value = (below_sum, cell.value) if fine_is_new else (cell.value, below_sum)
                other = cell if fine_is_new else below[0]
                what = ("this cell" if len(below) == 1 and not extra else
                        f"the sum of {len(below)} cells" if fine_is_new else "this margin")
                detail = (f"{what} ({mine_value:g}) differs by {gap:g} from cell "
                          f"{_where(old, other.origin[0], column)} ({their_value:g})")
                for c in (below if fine_is_new else [cell]):
                    out.append(Difference(c.origin[0], column, gap, index, detail))
        # a magnitude in a row whose count is unsafe reveals the small group's total
        flagged_rows = {d.row for d in out if d.column == column}
        for magnitude in new.magnitudes:
            for row in flagged_rows:
                if new.value(row, magnitude) is not None:
                    out.append(Difference(row, magnitude, 0, index,
                                          f"its count differs by fewer than {threshold} from an earlier output"))
    return out


def _where(side: Side, row: int, column: str) -> str:
    labels = ", ".join(str(side.table.column(c)[row].as_py()) for c in side.labels)
    return f"({labels}) {column}"
