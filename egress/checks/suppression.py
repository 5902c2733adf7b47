"""Secondary suppression: can a suppressed cell be recomputed from the published cells and margins?

For a two-way table with margins, every suppressed value (inner cell or margin) is an unknown
`x >= 0`; every published row/column total gives one linear equation. The feasible set is what
an attacker knows. For each unknown we solve two linear programmes (min x, max x) with
`scipy.optimize.linprog` (HiGHS) and get the interval `[low, high]` of values consistent with
the release. A suppressed cell is protected only if `high - low >= threshold`.

Batching: the unknowns split into independent groups (connected through shared equations);
each group is solved on its own, and an unknown that is alone in an equation is pinned
without any LP. So the cost grows with the size of the groups, not of the table.

`attack(margins)` is the adversary: it returns every suppressed cell whose interval contains a
single integer, i.e. the exact value an attacker recovers.

Pure: numpy/scipy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from egress.checks.tables import Margins

_EPS = 1e-7
# 2 LPs per unknown; a few hundred linked unknowns already take seconds, the checker decides.
MAX_GROUP_UNKNOWNS = 300


@dataclass(frozen=True)
class Interval:
    """Values of a suppressed cell consistent with the release. `where` is `("cell", i, j)`,
    `("row_total", i)`, `("column_total", j)` or `("grand_total",)`; `i`, `j` index the inner
    table of the `Margins`."""

    where: tuple
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


class InconsistentRelease(ValueError):
    """The published cells and margins contradict each other (e.g. rounded margins)."""


class TooManyUnknowns(InconsistentRelease):
    """Too many linked suppressed values to solve 2 LPs each within a request (checker reviews)."""


def suppressed_intervals(margins: Margins) -> list[Interval]:
    """Interval per suppressed value of a two-way table with margins (see module docstring)."""
    rows, cols = len(margins.inner), len(margins.column_names)
    index: dict[tuple, int] = {}

    def var(where: tuple) -> int:
        return index.setdefault(where, len(index))

    # Each equation: ({var: coefficient}, rhs) with published values moved to the rhs.
    equations: list[tuple[dict[int, float], float]] = []

    def add_equation(terms: list[tuple[tuple, float | None, float]]) -> None:
        coefficients: dict[int, float] = {}
        rhs = 0.0
        for where, value, sign in terms:
            if value is None:
                key = var(where)
                coefficients[key] = coefficients.get(key, 0.0) + sign
            else:
                rhs -= sign * value
        if coefficients:
            equations.append((coefficients, rhs))
        elif abs(rhs) > 0.5:
            raise InconsistentRelease(f"published cells and margins disagree by {abs(rhs):g}")

    for i in range(rows):
        for j in range(cols):
            if margins.inner[i][j] is None:
                var(("cell", i, j))
    if margins.row_totals is not None:
        for i in range(rows):
            add_equation([(("cell", i, j), margins.inner[i][j], 1.0) for j in range(cols)]
                         + [(("row_total", i), margins.row_totals[i], -1.0)])
    if margins.column_totals is not None:
        for j in range(cols):
            add_equation([(("cell", i, j), margins.inner[i][j], 1.0) for i in range(rows)]
                         + [(("column_total", j), margins.column_totals[j], -1.0)])
    if margins.row_totals is not None and (margins.grand_total is not None or margins.column_totals is not None):
        add_equation([(("row_total", i), margins.row_totals[i], 1.0) for i in range(rows)]
                     + [(("grand_total",), margins.grand_total, -1.0)])
    if margins.column_totals is not None and (margins.grand_total is not None or margins.row_totals is not None):
        add_equation([(("column_total", j), margins.column_totals[j], 1.0) for j in range(cols)]
                     + [(("grand_total",), margins.grand_total, -1.0)])

    names = sorted(index, key=index.get)
    bounds = {k: (0.0, math.inf) for k in range(len(names))}
    for group in _components(len(names), equations):
        bounds.update(_solve_group(group, equations))
    return [Interval(names[k], bounds[k][0], bounds[k][1]) for k in range(len(names))]


def attack(margins: Margins) -> dict[tuple, float]:
    """Suppressed values an attacker recovers exactly: the interval holds a single integer."""
    recovered = {}
    for interval in suppressed_intervals(margins):
        low, high = math.ceil(interval.low - _EPS), math.floor(interval.high + _EPS)
        if low == high:
            recovered[interval.where] = float(low)
    return recovered


def _components(count: int, equations) -> list[tuple[list[int], list[int]]]:
    """Groups of unknowns linked by equations: [(variables, equation indices)]."""
    parent = list(range(count))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for coefficients, _ in equations:
        keys = list(coefficients)
        for other in keys[1:]:
            parent[find(other)] = find(keys[0])
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for k in range(count):
        groups.setdefault(find(k), ([], []))[0].append(k)
    for e, (coefficients, _) in enumerate(equations):
        groups[find(next(iter(coefficients)))][1].append(e)
    return list(groups.values())


def _solve_group(group, equations) -> dict[int, tuple[float, float]]:
    variables, rows = group
    if not rows:
        return {k: (0.0, math.inf) for k in variables}
    if len(variables) > MAX_GROUP_UNKNOWNS:
        raise TooManyUnknowns(f"{len(variables)} linked suppressed values (more than {MAX_GROUP_UNKNOWNS}) "
                              "are too many to bound here")
    if len(variables) == 1:
        # One unknown in one or more equations: it is pinned by the first one.
        coefficients, rhs = equations[rows[0]]
        value = rhs / coefficients[variables[0]]
        return {variables[0]: (value, value)}
    position = {k: p for p, k in enumerate(variables)}
    a_eq = np.zeros((len(rows), len(variables)))
    b_eq = np.zeros(len(rows))
    for r, e in enumerate(rows):
        coefficients, rhs = equations[e]
        for k, c in coefficients.items():
            a_eq[r, position[k]] = c
        b_eq[r] = rhs
    result = {}
    for k in variables:
        objective = np.zeros(len(variables))
        objective[position[k]] = 1.0
        low = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        if low.status == 2:
            raise InconsistentRelease("published cells and margins admit no non-negative solution")
        high = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        top = math.inf if high.status == 3 else -high.fun
        result[k] = (max(0.0, low.fun), top)
    return result
