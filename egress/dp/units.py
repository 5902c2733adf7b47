"""Exact accounting units for epsilon and delta (pure; no OpenDP, cheap to import).

The ledger stores integers: 1 unit = 1e-12 epsilon, 1e-18 delta. A float from the user is
read as the decimal they wrote (its repr), so ten queries of 0.1 spend exactly 1.0, and the
mechanism is calibrated for the largest float not above the charged amount
(`float_at_most`), so what is charged always covers the privacy loss.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

EPSILON_UNITS_PER_1 = 10**12
DELTA_UNITS_PER_1 = 10**18


def _to_units(value: float, per_one: int) -> int:
    return round(Fraction(Decimal(repr(float(value)))) * per_one)


def epsilon_units(epsilon: float) -> int:
    return _to_units(epsilon, EPSILON_UNITS_PER_1)


def delta_units(delta: float) -> int:
    return _to_units(delta, DELTA_UNITS_PER_1)


def units_to_float(units: int, per_one: int) -> float:
    return float(Fraction(units, per_one))


def float_at_most(exact: Fraction) -> float:
    """The largest float <= `exact`."""
    f = float(exact)
    if Fraction(f) > exact:
        f = math.nextafter(f, -math.inf)
    return f
