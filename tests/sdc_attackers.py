"""The attackers of the disclosure-check property tests, written independently of `egress.checks`
(they import nothing from it): an LP attacker that bounds every suppressed cell of a published
table from its margins, and a person-level differencing attacker.

Shared by tests/unit/test_checks_properties.py (hand-built evidence) and
tests/integration/test_evidence_properties.py (evidence from real DuckDB extracts)."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linprog


def lp_attack(values: list, keys: list[tuple], margin=None) -> dict[int, tuple[float, float]]:
    """Interval of every suppressed cell (`values[i] is None`) given the published cells and every
    margin equation the table shows: a cell labelled `margin` in dimension d is the sum of the
    cells that agree with it elsewhere and hold a category in d."""
    where = {k: i for i, k in enumerate(keys)}
    unknown = [i for i, v in enumerate(values) if v is None]
    column = {i: n for n, i in enumerate(unknown)}
    rows, rhs = [], []
    for i, key in enumerate(keys):
        for d in range(len(key)):
            if key[d] != margin:
                continue
            parts = [j for k, j in where.items() if k[d] != margin
                     and all(k[e] == key[e] for e in range(len(key)) if e != d)]
            if not parts:
                continue
            coefficients = np.zeros(len(unknown))
            constant = 0.0
            for j, sign in [(i, -1.0)] + [(p, 1.0) for p in parts]:
                if j in column:
                    coefficients[column[j]] += sign
                else:
                    constant += sign * values[j]
            if coefficients.any():
                rows.append(coefficients)
                rhs.append(-constant)
    out = {}
    for i in unknown:
        if not rows:
            out[i] = (0.0, math.inf)
            continue
        objective = np.zeros(len(unknown))
        objective[column[i]] = 1.0
        low = linprog(objective, A_eq=np.array(rows), b_eq=np.array(rhs), bounds=(0, None), method="highs")
        high = linprog(-objective, A_eq=np.array(rows), b_eq=np.array(rhs), bounds=(0, None), method="highs")
        assert low.status == 0 and high.status in (0, 3), (low.message, high.message)  # the margins add up
        out[i] = (low.fun, math.inf if high.status == 3 else -high.fun)
    return out


def exposed(interval: tuple[float, float], truth: float, sensitive: bool, *, count: bool, threshold: int,
            p: float = 0.1) -> bool:
    """Does the attacker's interval disclose a sensitive cell? A count: fewer than `threshold`
    whole numbers in it; a sum: it does not reach p % of the true value on each side."""
    low, high = interval
    if not sensitive or math.isinf(high):
        return False
    if count:
        return math.floor(high + 1e-7) - math.ceil(low - 1e-7) < threshold
    return not (low <= truth * (1 - p) + 1e-6 and high >= truth * (1 + p) - 1e-6)


def differencing_attack(new_sets, old_sets, threshold: int) -> set[int]:
    """Rows of the new table whose persons differ from an earlier cell's by 1 .. threshold - 1
    persons while one contains the other."""
    out = set()
    for row, a in enumerate(new_sets):
        for b in old_sets:
            small, big = sorted((a, b), key=len)
            if 0 < len(big) - len(small) < threshold and small <= big:
                out.add(row)
    return out
