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

Batching: unknowns split into independent groups (connected through shared equations); each
group is solved on its own, so cost grows with the size of the groups, not of the table.

Pure: numpy/scipy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Sequence

import numpy as np
from scipy import sparse

from egress.checks.grid import Grid, GridCell, InconsistentRelease  # noqa: F401 (re-exported)
from egress.checks.lp import INFEASIBLE, OPTIMAL, UNBOUNDED, Polytope

_EPS = 1e-7
# 2 LPs per protected unknown; a few hundred linked unknowns take seconds: the checker decides.
MAX_GROUP_UNKNOWNS = 1500
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

@dataclass
class _System:
    keys: list[tuple]                       # unknown keys, in variable order
    rows: list[tuple[dict[int, float], float]]  # sum(coefficient * x) = rhs over unknowns
    cells_of: dict[tuple, list[int]]


def _system(grid: Grid) -> _System:
    cells_of: dict[tuple, list[int]] = {}
    published: dict[tuple, float] = {}
    for i, c in enumerate(grid.cells):
        cells_of.setdefault(c.key, []).append(i)
        if c.value is not None:
            published.setdefault(c.key, c.value)
    keys = [k for k in cells_of if k not in published]
    position = {k: p for p, k in enumerate(keys)}
    rows = []
    seen = set()
    for total, parts in grid.equations:
        terms = [(grid.cells[total].key, -1.0)] + [(grid.cells[p].key, 1.0) for p in parts]
        coefficients: dict[int, float] = {}
        rhs = 0.0
        for key, sign in terms:
            if key in position:
                coefficients[position[key]] = coefficients.get(position[key], 0.0) + sign
            else:
                rhs -= sign * published[key]
        coefficients = {k: v for k, v in coefficients.items() if v != 0}
        if not coefficients:
            if abs(rhs) > 0.5 + 1e-6 * abs(rhs):
                raise InconsistentRelease(f"published cells and margins disagree by {abs(rhs):g}")
            continue
        signature = (tuple(sorted(coefficients.items())), round(rhs, 9))
        if signature not in seen:
            seen.add(signature)
            rows.append((coefficients, rhs))
    return _System(keys, rows, cells_of)


def _components(count: int, rows) -> list[tuple[list[int], list[int]]]:
    parent = list(range(count))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for coefficients, _ in rows:
        ks = list(coefficients)
        for other in ks[1:]:
            parent[find(other)] = find(ks[0])
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for k in range(count):
        groups.setdefault(find(k), ([], []))[0].append(k)
    for e, (coefficients, _) in enumerate(rows):
        groups[find(next(iter(coefficients)))][1].append(e)
    return list(groups.values())


def intervals(grid: Grid, wanted: set[tuple] | None = None,
              good_enough=None) -> dict[tuple, tuple[float, float]]:
    """`{key: (low, high)}` for the suppressed keys (all, or those in `wanted`).

    `good_enough(key, low, high)`: when given, two LPs over a whole group first (minimise and
    maximise the sum of its wanted cells) give feasible points; a key whose range over those
    points already satisfies it is answered with that range (a sub-interval of the exact one)
    and costs no LP of its own. The audit only needs to know that protection holds.
    """
    system = _system(grid)
    out: dict[tuple, tuple[float, float]] = {}
    for variables, rows in _components(len(system.keys), system.rows):
        need = [k for k in variables if wanted is None or system.keys[k] in wanted]
        if not need:
            continue
        if not rows:
            out.update({system.keys[k]: (0.0, math.inf) for k in need})
            continue
        if len(variables) > MAX_GROUP_UNKNOWNS:
            raise TooManyUnknowns(f"{len(variables)} linked suppressed values (more than {MAX_GROUP_UNKNOWNS}) "
                                  "are too many to bound here")
        position = {k: p for p, k in enumerate(variables)}
        polytope = Polytope(*_matrix([system.rows[e] for e in rows], position, len(variables)), lower=0.0)

        def solve(objective):
            result = polytope.minimise(objective)
            if result.status == INFEASIBLE:
                raise InconsistentRelease("published cells and margins admit no non-negative solution")
            return result

        points: list[np.ndarray] = []
        if good_enough is not None and len(need) > 1:
            weights = np.zeros(len(variables))
            weights[[position[k] for k in need]] = 1.0
            for objective in (weights, -weights):
                result = solve(objective)
                if result.status == OPTIMAL:
                    points.append(result.x)
        for k in need:
            at = position[k]
            if points:
                seen = [pt[at] for pt in points]
                if good_enough(system.keys[k], min(seen), max(seen)):
                    out[system.keys[k]] = (min(seen), max(seen))
                    continue
            objective = np.zeros(len(variables))
            objective[at] = 1.0
            low = solve(objective)
            high = solve(-objective)
            top = math.inf if high.status == UNBOUNDED else -high.value
            out[system.keys[k]] = (max(0.0, low.value), top)
            if good_enough is not None:
                # each vertex is a feasible point: it may already certify the keys still to come
                points += [r.x for r in (low, high) if r.status == OPTIMAL]
    return out


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
    return sparse.csr_array((data, (row_index, col_index)), shape=(len(rows), width)), b_eq


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
    a = Fraction(repr(float(req.truth)))
    tolerance = _EPS * max(1.0, abs(req.truth))
    p = Fraction(repr(float(req.p)))
    return low <= float(a * (1 - p)) + tolerance and high >= float(a * (1 + p)) - tolerance


def audit(grid: Grid, threshold: int, p: float, *, protect_all: bool = False) -> list[Exposure]:
    """Every suppressed cell that is not protected (module docstring). Raises
    InconsistentRelease (or TooManyUnknowns) when the system cannot be solved."""
    system = _system(grid)
    needs: dict[tuple, Requirement] = {}
    for key in system.keys:
        req = requirement(grid, system.cells_of[key], threshold, p, protect_all)
        if req is not None:
            needs[key] = req
    if not needs:
        return []
    bounds = intervals(grid, set(needs), good_enough=lambda key, low, high: bool(_meets(needs[key], low, high)))
    out = []
    for key, req in needs.items():
        low, high = bounds.get(key, (0.0, math.inf))
        ok = _meets(req, low, high)
        if ok:
            continue
        shown = f"[{low:g}, {high:g}]"
        if ok is None:
            message = (f"suppressed value lies within {shown}; its true value is unknown (no provenance), "
                       f"so its protection of {req.p:.0%} on each side cannot be checked")
            status = "review"
        elif req.width is not None:
            message = (f"suppressed value can be recomputed from the published cells and margins to within "
                       f"{shown} (fewer than {req.width} whole numbers apart)")
            status = "fail"
        else:
            message = (f"suppressed value can be recomputed to within {shown}: less than {req.p:.0%} of its "
                       f"value on {'each side' if low > req.truth * (1 - req.p) and high < req.truth * (1 + req.p) else 'one side'}")
            status = "fail"
        out.append(Exposure(key, tuple(system.cells_of[key]), low, high, status, message))
    return out


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
    for _ in range(MAX_ROUNDS):
        trial = _suppress(grid, chosen)
        try:
            exposures = audit(trial, threshold, p, protect_all=protect_all)
        except InconsistentRelease as err:
            return Pattern(tuple(sorted(chosen & set(primary))), (), len(chosen), 0.0, False, str(err))
        if not exposures:
            break
        added = set()
        for exposure in exposures:
            added |= _complement(trial, exposure, threshold, p, total)
        added -= chosen
        if not added:
            return Pattern(tuple(primary), tuple(sorted(chosen - set(primary))), len(chosen), 0.0, False,
                           "no complementary cells of this table can protect every suppressed cell "
                           "(the linked releases pin them)")
        chosen |= set(_same_key(grid, added))
    else:
        return Pattern(tuple(primary), tuple(sorted(chosen - set(primary))), len(chosen), 0.0, False,
                       f"no protecting pattern after {MAX_ROUNDS} rounds")
    chosen = _prune(grid, chosen, set(primary), threshold, p, protect_all)
    final = _suppress(grid, chosen)
    verified = not audit(final, threshold, p, protect_all=protect_all)
    secondary = tuple(sorted(chosen - set(primary)))
    return Pattern(tuple(sorted(primary)), secondary, len(chosen),
                   sum(abs(grid.cells[i].truth) for i in chosen), verified,
                   "" if verified else "the pattern did not pass the audit")


def _same_key(grid: Grid, cells) -> list[int]:
    keys = {grid.cells[i].key for i in cells}
    return [i for i, c in enumerate(grid.cells) if c.table == 0 and c.key in keys]


def _suppress(grid: Grid, chosen: set[int]) -> Grid:
    cells = [replace(c, value=None) if i in chosen else c for i, c in enumerate(grid.cells)]
    return Grid(grid.dims, cells, grid.equations, grid.integer)


def _levels(req_truth: float, threshold: int, p: float, integer: bool) -> tuple[float, float]:
    """(lower, upper) protection levels: how far the attacker must be unable to exclude."""
    if integer:
        lower = min(req_truth, threshold // 2)
        return lower, threshold - lower
    return p * req_truth, p * req_truth


def _complement(grid: Grid, exposure: Exposure, threshold: int, p: float, total: float) -> set[int]:
    """Own cells whose suppression protects `exposure`'s cell (one LP per missing direction)."""
    truth = next((grid.cells[i].truth for i in exposure.cells if grid.cells[i].truth is not None), None)
    if truth is None:
        return set()
    lower, upper = _levels(truth, threshold, p, grid.integer)
    added: set[int] = set()
    for direction, level in ((-1, lower), (1, upper)):
        reached = truth - exposure.low if direction < 0 else exposure.high - truth
        if level <= 0 or reached >= level - _EPS:
            continue
        added |= _deviation_support(grid, exposure.key, direction * level, total)
    return added


def _deviation_support(grid: Grid, target: tuple, shift: float, total: float) -> set[int]:
    """Cells (of table 0, not yet suppressed) that a least-cost deviation moving `target` by
    `shift` while keeping every margin equation must use (module docstring)."""
    keys: dict[tuple, dict] = {}
    for i, c in enumerate(grid.cells):
        info = keys.setdefault(c.key, {"cells": [], "fixed": False, "free": True, "truth": None, "cost": 0.0})
        info["cells"].append(i)
        if c.truth is not None and info["truth"] is None:
            info["truth"] = c.truth
        if c.value is not None:
            info["free"] = False
            if c.table != 0:
                info["fixed"] = True  # published by a linked table: cannot be hidden any more
    variables = [k for k, info in keys.items() if not info["fixed"]]
    position = {k: n for n, k in enumerate(variables)}
    if target not in position:
        return set()
    rows = []
    for total_cell, parts in grid.equations:
        coefficients: dict[int, float] = {}
        for cell, sign in [(total_cell, -1.0)] + [(p_, 1.0) for p_ in parts]:
            k = grid.cells[cell].key
            if k in position:
                coefficients[position[k]] = coefficients.get(position[k], 0.0) + sign
        if any(coefficients.values()):
            rows.append(coefficients)
    n = len(variables)
    # variables: z+ (n) then z- (n); A (z+ - z-) = 0 and z+_t - z-_t = shift
    signed = [({k: c for k, c in coefficients.items()}, 0.0) for coefficients in rows] + [({position[target]: 1.0}, shift)]
    half, b_eq = _matrix(signed, {k: k for k in range(n)}, n)
    a_eq = sparse.hstack([half, -half]).tocsc()
    cost = np.zeros(2 * n)
    for k in variables:
        info = keys[k]
        unit = 1e-6 if info["free"] else 1.0 + abs(info["truth"] or 0.0) / (total + 1.0)
        cost[position[k]] = cost[n + position[k]] = unit
    # z+ unbounded; z- at most the cell's value: the deviated table stays non-negative
    upper = np.concatenate([np.full(n, np.inf), [keys[k]["truth"] or 0.0 for k in variables]])
    result = Polytope(a_eq, b_eq, lower=0.0, upper=upper).minimise(cost)
    if result.status != OPTIMAL:
        return set()
    z = result.x[:n] - result.x[n:]
    support = set()
    for k in variables:
        if abs(z[position[k]]) > 1e-9 and not keys[k]["free"]:
            support |= {i for i in keys[k]["cells"] if grid.cells[i].table == 0}
    return support


def _prune(grid: Grid, chosen: set[int], primary: set[int], threshold: int, p: float,
           protect_all: bool) -> set[int]:
    """Drop complementary cells, largest first, while the audit still passes."""
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
            if not audit(_suppress(grid, trial), threshold, p, protect_all=protect_all):
                chosen = trial
        except InconsistentRelease:
            continue
    return chosen
