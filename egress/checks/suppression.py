"""Secondary suppression: the LP audit of a suppression pattern, and the pattern SPE proposes.

**Audit.** Every suppressed cell of a grid (`egress.checks.grid`: an n-way table with its
margins, linked with the tables already released or pending for the permit) is an unknown
`x >= 0`; every margin equation whose cells are not all published ties unknowns to published
values. The feasible set is what an attacker knows. For each suppressed cell that needs
protection we solve two linear programmes (min x, max x; HiGHS through `egress.checks.lp`, one warm-started
model per group of linked unknowns) and
compare the interval `[low, high]` with its protection requirement:

- counts (integer grids): the whole numbers in the interval must span at least `threshold`
  (`floor(high) - ceil(low) >= threshold`);
- magnitudes (sums): with the true value `a` known (provenance), `low <= a (1 - p)` and
  `high >= a (1 + p)`: the attacker's interval reaches p % of the value on each side (the
  protection level of the p % rule); without the true value the audit cannot decide (review).

A suppressed cell needs protection when the primary rules failed on it (its evidence) or
when nothing is known about it (no evidence: every suppressed cell). Cells are addressed by
key, so the same cell published in a linked table is known to the attacker.

**Proposal.** `propose` computes a pattern: the primary (sensitive) cells plus complementary
cells of least information loss, LP-guided and verified: for each unprotected cell and
direction, one LP finds a deviation `z` that keeps every margin equation (`A z = 0`), keeps
cells non-negative, moves the cell by its protection level and costs least (cost per unit of
deviation: 1 per cell, ties broken by the cell's value; cells already suppressed are free,
published cells of linked tables are fixed). Suppressing the support of `z` makes `a + z` a
solution the attacker cannot exclude, so the cell is protected in that direction. Rounds
repeat until the exact audit passes; then complementary cells are removed one by one (largest
first) while the audit still passes. The result is always re-audited: a pattern is offered
only when `audit` finds nothing.

One model per grid (`_Model`): the margin equations `A x = 0` over one variable per key, built
once; a trial pattern only fixes the published keys at their values and frees the others, so
every LP of an audit and of a proposal (its rounds, its thinning, its final audit) runs on the
same warm-started HiGHS model (`egress.checks.lp`), whose presolve drops the fixed keys.

Pure: numpy/scipy/highspy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
from scipy import sparse

from egress.checks.grid import Grid, GridCell, InconsistentRelease  # noqa: F401 (re-exported)
from egress.checks.lp import INFEASIBLE, OPTIMAL, UNBOUNDED, Polytope

_EPS = 1e-7
# 2 LPs per protected unknown; a few hundred linked unknowns take seconds: the checker decides.
MAX_UNKNOWNS = 1500
MAX_ROUNDS = 12
MAX_PRUNE = 12


class TooManyUnknowns(InconsistentRelease):
    """Too many linked suppressed values to bound within a request (checker reviews)."""


@dataclass(frozen=True)
class Requirement:
    """What protects a suppressed cell: `width` (counts) or `p` around `truth` (magnitudes)."""

    width: int | None = None
    p: float | None = None
    truth: float | None = None


@dataclass(frozen=True)
class Exposure:
    """A suppressed cell (`key`; `cells`: its cells in the grid) whose interval `[low, high]`
    does not meet its requirement; status `fail`, or `review` when it cannot be decided."""

    key: tuple
    cells: tuple[int, ...]
    low: float
    high: float
    status: str
    message: str


@dataclass(frozen=True)
class Pattern:
    """A proposed suppression: cells (indices into the grid) to leave empty."""

    primary: tuple[int, ...]
    secondary: tuple[int, ...]
    loss_cells: int
    loss_total: float
    verified: bool
    reason: str = ""


# --- the linear system ---------------------------------------------------------------------

class _Model:
    """A grid's margin equations over its keys (`A x = 0`, one variable per key), built once and
    solved for every trial pattern of an audit or a proposal: a trial only changes which keys
    are published (their variable fixed at the value) and which are unknown (`x >= 0`), so one
    warm-started HiGHS model serves every LP (`egress.checks.lp`)."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.cells_of: dict[tuple, list[int]] = {}
        for i, c in enumerate(grid.cells):
            self.cells_of.setdefault(c.key, []).append(i)
        self.keys = list(self.cells_of)
        position = {k: n for n, k in enumerate(self.keys)}
        rows, seen = [], set()
        for total, parts in grid.equations:
            coefficients: dict[int, float] = {}
            for cell, sign in [(total, -1.0)] + [(p_, 1.0) for p_ in parts]:
                k = position[grid.cells[cell].key]
                coefficients[k] = coefficients.get(k, 0.0) + sign
            coefficients = {k: v for k, v in coefficients.items() if v != 0}
            signature = tuple(sorted(coefficients.items()))
            if coefficients and signature not in seen:
                seen.add(signature)
                rows.append(coefficients)
        self.rows = rows
        self.matrix, _ = _matrix([(r, 0.0) for r in rows], {k: k for k in range(len(self.keys))}, len(self.keys))
        self.in_rows = np.zeros(len(self.keys), dtype=bool)
        for r in rows:
            self.in_rows[list(r)] = True
        self.truth = np.array([next((grid.cells[i].truth for i in cells if grid.cells[i].truth is not None), np.nan)
                               for cells in self.cells_of.values()])
        # published by a linked table: known to the attacker whatever this table leaves empty
        self.pinned = np.array([any(grid.cells[i].table != 0 and grid.cells[i].value is not None for i in cells)
                                for cells in self.cells_of.values()])
        self._bounded: Polytope | None = None
        self._deviation: Polytope | None = None
        self._cell_key = np.array([position[c.key] for c in grid.cells], dtype=np.int64)
        self._cell_value = np.array([np.nan if c.value is None else c.value for c in grid.cells])

    def values(self, hidden: set[int]) -> np.ndarray:
        """The published value of every key (NaN: unknown) once the cells `hidden` are suppressed too."""
        shown = ~np.isnan(self._cell_value)
        if hidden:
            shown[list(hidden)] = False
        out = np.full(len(self.keys), np.nan)
        out[self._cell_key[shown]] = self._cell_value[shown]  # the cells of one key show one value
        return out

    def intervals(self, values: np.ndarray, wanted: list[int], good_enough=None) -> dict[int, tuple[float, float]]:
        """`{key index: (low, high)}` of the unknown keys in `wanted` (see `intervals`)."""
        known = ~np.isnan(values)
        for r in self.rows:
            if all(known[k] for k in r):
                gap = sum(c * values[k] for k, c in r.items())
                if abs(gap) > 0.5 + 1e-6 * abs(gap):
                    raise InconsistentRelease(f"published cells and margins disagree by {abs(gap):g}")
        out = {k: (0.0, math.inf) for k in wanted if not self.in_rows[k]}
        need = [k for k in wanted if self.in_rows[k]]
        if not need:
            return out
        if int((~known & self.in_rows).sum()) > MAX_UNKNOWNS:
            raise TooManyUnknowns(f"{int((~known & self.in_rows).sum())} linked suppressed values (more than "
                                  f"{MAX_UNKNOWNS}) are too many to bound here")
        if self._bounded is None:
            self._bounded = Polytope(self.matrix, np.zeros(len(self.rows)), lower=0.0)
        model = self._bounded
        model.set_bounds(np.where(known, values, 0.0), np.where(known, values, np.inf))

        def solve(objective):
            result = model.minimise(objective)
            if result.status == INFEASIBLE:
                raise InconsistentRelease("published cells and margins admit no non-negative solution")
            return result

        # the lowest and highest value of each key over the feasible points seen so far
        lowest = np.full(len(self.keys), np.inf)
        highest = np.full(len(self.keys), -np.inf)

        def seen(x: np.ndarray) -> None:
            np.minimum(lowest, x, out=lowest)
            np.maximum(highest, x, out=highest)

        def certified(k: int) -> bool:
            if highest[k] >= lowest[k] and good_enough(k, lowest[k], highest[k]):
                out[k] = (lowest[k], highest[k])  # inside the exact interval, and enough
                return True
            return False

        pending = list(need)
        while good_enough is not None and len(pending) > 1:
            # the lowest and highest sum of the keys still open: each optimum is a feasible point
            # that may show many of them protected at once (no LP of their own)
            weights = np.zeros(len(self.keys))
            weights[pending] = 1.0
            for objective in (weights, -weights):
                result = solve(objective)
                if result.status == OPTIMAL:
                    seen(result.x)
            still = [k for k in pending if not certified(k)]
            if len(still) == len(pending):
                break
            pending = still
        for k in pending:
            if good_enough is not None and certified(k):
                continue
            objective = np.zeros(len(self.keys))
            objective[k] = 1.0
            high = solve(-objective)
            top = math.inf if high.status == UNBOUNDED else -high.value
            if good_enough is not None:
                if high.status == OPTIMAL:
                    seen(high.x)
                if good_enough(k, lowest[k], top):
                    out[k] = (lowest[k], top)  # the lowest seen is above the exact minimum: still enough
                    continue
            low = solve(objective)
            out[k] = (max(0.0, low.value), top)
            if good_enough is not None and low.status == OPTIMAL:
                seen(low.x)
        return out

    def audit(self, hidden: set[int], threshold: int, p: float, protect_all: bool) -> list[Exposure]:
        """Every unknown key that is not protected once the cells `hidden` are suppressed too."""
        values = self.values(hidden)
        needs: dict[int, Requirement] = {}
        for n in np.flatnonzero(np.isnan(values)).tolist():
            req = requirement(self.grid, self.cells_of[self.keys[n]], threshold, p, protect_all)
            if req is not None:
                needs[n] = req
        if not needs:
            return []
        bounds = self.intervals(values, list(needs),
                                good_enough=lambda k, low, high: bool(_meets(needs[k], low, high)))
        out = []
        for n, req in needs.items():
            low, high = bounds[n]
            ok = _meets(req, low, high)
            if not ok:
                out.append(_exposure(self.keys[n], self.cells_of[self.keys[n]], req, low, high, ok))
        return out

    def deviation_support(self, hidden: set[int], target: tuple, shift: float, total: float) -> set[int]:
        """Cells (of table 0, not yet suppressed) that a least-cost deviation moving `target` by
        `shift` while keeping every margin equation must use (module docstring)."""
        t = self.keys.index(target)
        if self.pinned[t]:
            return set()
        n = len(self.keys)
        if self._deviation is None:
            # z+ and z-, the deviation's two halves: A (z+ - z-) = 0
            self._deviation = Polytope(sparse.hstack([self.matrix, -self.matrix]).tocsc(), np.zeros(len(self.rows)),
                                       lower=0.0)
        free = np.isnan(self.values(hidden))  # suppressed already: hiding it further costs nothing
        truth = np.nan_to_num(self.truth)
        upper = np.concatenate([np.where(self.pinned, 0.0, np.inf), np.where(self.pinned, 0.0, truth)])
        lower = np.zeros(2 * n)
        side = t if shift > 0 else n + t  # the target moves by exactly `shift`, up or down
        lower[side] = upper[side] = abs(shift)
        upper[n + t if shift > 0 else t] = 0.0
        unit = np.where(free, 1e-6, 1.0 + np.abs(truth) / (total + 1.0))
        self._deviation.set_bounds(lower, upper)
        result = self._deviation.minimise(np.concatenate([unit, unit]))
        if result.status != OPTIMAL:
            return set()
        z = result.x[:n] - result.x[n:]
        support = set()
        for k in np.flatnonzero((np.abs(z) > 1e-9) & ~free):
            support |= {i for i in self.cells_of[self.keys[k]] if self.grid.cells[i].table == 0}
        return support


def intervals(grid: Grid, wanted: set[tuple] | None = None,
              good_enough=None) -> dict[tuple, tuple[float, float]]:
    """`{key: (low, high)}` for the suppressed keys (all, or those in `wanted`).

    `good_enough(key, low, high)`: when given, two LPs over all wanted cells first (minimise and
    maximise their sum) give feasible points; a key whose range over those points already
    satisfies it is answered with that range (a sub-interval of the exact one) and costs no LP
    of its own. The audit only needs to know that protection holds.
    """
    model = _Model(grid)
    values = model.values(set())
    keys = [n for n, key in enumerate(model.keys) if np.isnan(values[n]) and (wanted is None or key in wanted)]
    check = None if good_enough is None else (lambda n, low, high: good_enough(model.keys[n], low, high))
    return {model.keys[n]: bounds for n, bounds in model.intervals(values, keys, check).items()}


def _matrix(rows, position: dict, width: int):
    """Sparse equality constraints from `({variable: coefficient}, rhs)` rows."""
    data, row_index, col_index = [], [], []
    b_eq = np.zeros(len(rows))
    for r, (coefficients, rhs) in enumerate(rows):
        for k, c in coefficients.items():
            data.append(c)
            row_index.append(r)
            col_index.append(position[k])
        b_eq[r] = rhs
    return sparse.csc_array((data, (row_index, col_index)), shape=(len(rows), width)), b_eq


# --- the audit -----------------------------------------------------------------------------

def requirement(grid: Grid, cells: Sequence[int], threshold: int, p: float,
                protect_all: bool = False) -> Requirement | None:
    """The protection a suppressed key needs (None: none, its cells passed the primary rules)."""
    members = [grid.cells[i] for i in cells]
    truth = next((c.truth for c in members if c.truth is not None), None)
    if not protect_all and all(c.sensitive is False for c in members):
        return None
    if grid.integer:
        return Requirement(width=threshold, truth=truth)
    return Requirement(p=p, truth=truth)


def _meets(req: Requirement, low: float, high: float) -> bool | None:
    if req.width is not None:
        if math.isinf(high):
            return True
        return math.floor(high + _EPS) - math.ceil(low - _EPS) >= req.width
    if req.truth is None:
        return None  # a magnitude cell whose true value is unknown: cannot be decided
    below, above = _p_bounds(float(req.truth), float(req.p))
    tolerance = _EPS * max(1.0, abs(req.truth))
    return low <= below + tolerance and high >= above - tolerance


@functools.lru_cache(maxsize=4096)
def _p_bounds(truth: float, p: float) -> tuple[float, float]:
    """truth * (1 - p) and truth * (1 + p), each rounded once from the exact product (the
    audit asks the same cells again and again while a pattern is proposed and thinned)."""
    a, share = Fraction(repr(truth)), Fraction(repr(p))
    return float(a * (1 - share)), float(a * (1 + share))


def _exposure(key: tuple, cells: list[int], req: Requirement, low: float, high: float, ok: bool | None) -> Exposure:
    shown = f"[{low:g}, {high:g}]"
    if ok is None:
        message = (f"suppressed value lies within {shown}; its true value is unknown (no provenance), "
                   f"so its protection of {req.p:.0%} on each side cannot be checked")
        return Exposure(key, tuple(cells), low, high, "review", message)
    if req.width is not None:
        message = (f"suppressed value can be recomputed from the published cells and margins to within "
                   f"{shown} (fewer than {req.width} whole numbers apart)")
    else:
        side = 'each side' if low > req.truth * (1 - req.p) and high < req.truth * (1 + req.p) else 'one side'
        message = f"suppressed value can be recomputed to within {shown}: less than {req.p:.0%} of its value on {side}"
    return Exposure(key, tuple(cells), low, high, "fail", message)


def audit(grid: Grid, threshold: int, p: float, *, protect_all: bool = False) -> list[Exposure]:
    """Every suppressed cell that is not protected (module docstring). Raises
    InconsistentRelease (or TooManyUnknowns) when the system cannot be solved."""
    return _Model(grid).audit(set(), threshold, p, protect_all)


# --- the proposal --------------------------------------------------------------------------

def propose(grid: Grid, threshold: int, p: float, *, protect_all: bool = False) -> Pattern:
    """A verified suppression pattern for the cells of table 0 (module docstring).

    `grid` holds the table as it would be published without suppression: every own cell has
    its `truth`; cells with `sensitive=True` must be suppressed (primary); cells already
    suppressed (`value is None`) stay suppressed. `protect_all`: complementary cells need
    protection too (a table checked without evidence, where the audit cannot tell them apart).
    """
    own = [i for i, c in enumerate(grid.cells) if c.table == 0]
    primary = [i for i in own if grid.cells[i].sensitive or grid.cells[i].value is None]
    if any(grid.cells[i].truth is None for i in own):
        return Pattern(tuple(primary), (), len(primary), 0.0, False,
                       "some cells have no known value; no pattern can be computed")
    chosen = set(_same_key(grid, primary))
    if not grid.equations:  # no margins tie cells together: the failing cells alone protect themselves
        return Pattern(tuple(sorted(primary)), (), len(chosen), sum(abs(grid.cells[i].truth) for i in chosen), True)
    total = sum(abs(grid.cells[i].truth) for i in own) or 1.0
    model = _Model(grid)
    for _ in range(MAX_ROUNDS):
        try:
            exposures = model.audit(chosen, threshold, p, protect_all)
        except InconsistentRelease as err:
            return Pattern(tuple(sorted(chosen & set(primary))), (), len(chosen), 0.0, False, str(err))
        if not exposures:
            break
        added = set()
        for exposure in exposures:
            added |= _complement(model, chosen, exposure, threshold, p, total)
        added -= chosen
        if not added:
            return Pattern(tuple(primary), tuple(sorted(chosen - set(primary))), len(chosen), 0.0, False,
                           "no complementary cells of this table can protect every suppressed cell "
                           "(the linked releases pin them)")
        chosen |= set(_same_key(grid, added))
    else:
        return Pattern(tuple(primary), tuple(sorted(chosen - set(primary))), len(chosen), 0.0, False,
                       f"no protecting pattern after {MAX_ROUNDS} rounds")
    chosen = _prune(model, chosen, set(primary), threshold, p, protect_all)
    verified = not _Model(grid).audit(chosen, threshold, p, protect_all)  # a fresh model: an independent check
    secondary = tuple(sorted(chosen - set(primary)))
    return Pattern(tuple(sorted(primary)), secondary, len(chosen),
                   sum(abs(grid.cells[i].truth) for i in chosen), verified,
                   "" if verified else "the pattern did not pass the audit")


def _same_key(grid: Grid, cells) -> list[int]:
    keys = {grid.cells[i].key for i in cells}
    return [i for i, c in enumerate(grid.cells) if c.table == 0 and c.key in keys]


def _levels(req_truth: float, threshold: int, p: float, integer: bool) -> tuple[float, float]:
    """(lower, upper) protection levels: how far the attacker must be unable to exclude."""
    if integer:
        lower = min(req_truth, threshold // 2)
        return lower, threshold - lower
    return p * req_truth, p * req_truth


def _complement(model: _Model, hidden: set[int], exposure: Exposure, threshold: int, p: float,
                total: float) -> set[int]:
    """Own cells whose suppression protects `exposure`'s cell (one LP per missing direction)."""
    grid = model.grid
    truth = next((grid.cells[i].truth for i in exposure.cells if grid.cells[i].truth is not None), None)
    if truth is None:
        return set()
    lower, upper = _levels(truth, threshold, p, grid.integer)
    added: set[int] = set()
    for direction, level in ((-1, lower), (1, upper)):
        reached = truth - exposure.low if direction < 0 else exposure.high - truth
        if level <= 0 or reached >= level - _EPS:
            continue
        added |= model.deviation_support(hidden, exposure.key, direction * level, total)
    return added


def _prune(model: _Model, chosen: set[int], primary: set[int], threshold: int, p: float,
           protect_all: bool) -> set[int]:
    """Drop complementary cells, largest first, while the audit still passes."""
    grid = model.grid
    secondary = sorted(chosen - primary, key=lambda i: -abs(grid.cells[i].truth or 0.0))[:MAX_PRUNE]
    done: set[tuple] = set()
    for i in secondary:
        key = grid.cells[i].key
        if key in done or i not in chosen:
            continue
        done.add(key)
        same = {j for j in chosen if grid.cells[j].key == key}
        if same & primary:
            continue
        trial = chosen - same
        try:
            if not model.audit(trial, threshold, p, protect_all):
                chosen = trial
        except InconsistentRelease:
            continue
    return chosen
