"""OpenDP measurements for a validated query: noise scales and privacy cost (pure; no data).

Privacy unit: one person. Every query is first truncated to the declared `max_per_person`
rows per person (see `compute`), so adding or removing one person changes
- a count, or the vector of counts over any grouping, by at most m in L1 (and in L2: all m
  rows may fall in one cell): d_in = m;
- a sum of values clamped to [L, U] by at most m * max(|L|, |U|) (L1 over groups, and L2);
- a mean's shifted sum sum(x - c), c = (L + U) / 2, by at most m * (U - L) / 2;
- a quantile's score vector: OpenDP's quantile score transformation with symmetric
  distance d_in = m (a person's m rows are removed or added).
The measurement is always built for that d_in, and its `map(d_in)` is the cost.

Sums run on an integer grid (values rounded to 10^-decimals) so the exact aggregate is an
exact integer and OpenDP's integer (discrete) Laplace / Gaussian applies without any
floating-point sensitivity error.

Budget split inside one query: a mean releases a sum and a count, each gets half the budget
(epsilon / 2, or rho / 2 under zCDP); k quantiles get epsilon / k each. Gaussian queries are
calibrated in zCDP: the total rho is the largest that OpenDP's `make_zCDP_to_approxDP` +
`make_fix_delta` turns into (epsilon, delta) within the request, and the components share it.

Amounts are accounted in exact integer units (see `epsilon_units`), and each measurement is
calibrated for a float no larger than the charged amount, so the ledger never under-charges.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import opendp.prelude as dp

from hub.exceptions import InvalidInput

from egress.dp.spec import DpQuery
from egress.dp.units import (DELTA_UNITS_PER_1, EPSILON_UNITS_PER_1, delta_units, epsilon_units,  # noqa: F401
                             float_at_most, units_to_float)

dp.enable_features("contrib")

QUANTILE_CANDIDATES = 512  # evenly spaced over the declared bounds
MAX_SUM_DECIMALS = 6
ROW_CAP = 10**9  # rows a query may aggregate; with the bounds it fixes the integer grid
I64_SAFE = 2**62


@dataclass(frozen=True)
class Component:
    """One noisy release inside a query."""

    name: str  # "count", "sum", "quantile"
    measurement: object  # the OpenDP Measurement applied to the exact value
    d_in: int  # sensitivity in the measurement's input units (the contribution bound's effect)
    scale: float  # noise scale in the measurement's input units
    cost: object  # measurement.map(d_in): epsilon (pure) or rho (zCDP)
    alpha: float | None = None


@dataclass(frozen=True)
class Plan:
    query: DpQuery
    components: tuple[Component, ...]
    epsilon_units: int  # charged
    delta_units: int  # charged
    decimals: int  # integer grid of sums: values are multiples of 10^-decimals
    shift_units: int  # c in integer units (mean only)
    candidates: tuple[float, ...] = ()
    rho: float | None = None  # total zCDP budget of a gaussian query

    @property
    def epsilon(self) -> float:
        return units_to_float(self.epsilon_units, EPSILON_UNITS_PER_1)

    @property
    def delta(self) -> float:
        return units_to_float(self.delta_units, DELTA_UNITS_PER_1)


def int_vector_laplace(scale: float):
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)


def int_vector_gaussian(scale: float):
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=scale)


def quantile_chain(candidates: tuple[float, ...], alpha: float, scale: float):
    score = dp.t.make_quantile_score_candidates(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                                                dp.symmetric_distance(), list(candidates), alpha)
    return score >> dp.m.then_noisy_max(dp.max_divergence(), scale=scale, negate=True)


def gaussian_to_approx(measurement, delta: float):
    """(epsilon, delta) view of a zCDP measurement (OpenDP's conversion, delta fixed)."""
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(measurement), delta)


def _calibrated(make, d_in: int, budget: float, start: float | None = None):
    """Smallest scale (from the analytic start, nudged up) with make(scale).map(d_in) <= budget."""
    scale = float(d_in) / budget if start is None else start
    for i in range(200):
        meas = make(scale)
        if meas.map(d_in) <= budget:
            return meas, scale
        # a few ulps first (OpenDP rounds its map upward), then geometric steps
        scale = math.nextafter(scale, math.inf) if i < 32 else scale * (1 + 1e-12)
    raise RuntimeError("calibration did not converge")  # pragma: no cover


def _gaussian_scale_for_rho(rho: float, d_in: int):
    """Gaussian scale with map(d_in) = d_in^2 / (2 scale^2) <= rho."""
    return _calibrated(int_vector_gaussian, d_in, rho, start=d_in / math.sqrt(2 * rho))


def total_rho(epsilon: float, delta: float) -> float:
    """Largest rho whose (epsilon, delta) conversion stays within the request (OpenDP does the math)."""
    def make(scale):
        return gaussian_to_approx(dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"),
                                                     scale=scale), delta)
    scale = dp.binary_search_param(make, d_in=1, d_out=(epsilon, delta), T=float)
    ref = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale)
    return ref.map(1)


def sum_decimals(bounds: tuple[float, float]) -> int:
    """Decimals of the integer grid: as fine as possible while ROW_CAP clamped values fit in 2^62."""
    b = max(abs(bounds[0]), abs(bounds[1]))
    if b == 0:
        return MAX_SUM_DECIMALS
    k = math.floor(math.log10(I64_SAFE / (b * ROW_CAP)))
    if k < 0:
        raise InvalidInput(f"bounds {list(bounds)} are too wide for an exact sum; narrow them in the descriptor",
                           field="column")
    return min(MAX_SUM_DECIMALS, k)


def grid_bounds(bounds: tuple[float, float], decimals: int) -> tuple[int, int]:
    """Integer-grid bounds inside the declared bounds (never wider, so sensitivity holds)."""
    scale = 10**decimals
    lo = math.ceil(Fraction(Decimal(repr(bounds[0]))) * scale)
    hi = math.floor(Fraction(Decimal(repr(bounds[1]))) * scale)
    if lo > hi:  # bounds narrower than the grid step
        lo = hi = round(Fraction(Decimal(repr(bounds[0]))) * scale)
    return lo, hi


def make_plan(q: DpQuery) -> Plan:
    """Build and calibrate every OpenDP measurement the query needs. Refuses (InvalidInput)
    an epsilon below the ledger's resolution. Calibration depends only on the query's
    parameters, never on data, so identical parameters reuse the same measurements."""
    e_units = epsilon_units(q.epsilon)
    if e_units < 1:
        raise InvalidInput("epsilon below the ledger resolution 1e-12", field="epsilon")
    d_units = delta_units(q.delta) if q.mechanism == "gaussian" else 0
    if q.mechanism == "gaussian" and d_units < 1:
        raise InvalidInput("delta below the ledger resolution 1e-18", field="delta")
    components, decimals, shift, candidates, rho = _calibrate(q.kind, q.mechanism, e_units, d_units,
                                                              q.max_per_person, q.bounds, q.alphas)
    return Plan(q, components, e_units, d_units, decimals, shift, candidates, rho)


@functools.lru_cache(maxsize=256)
def _calibrate(kind: str, mechanism: str, e_units: int, d_units: int, m: int, bounds, alphas):
    eps = float_at_most(Fraction(e_units, EPSILON_UNITS_PER_1))
    delta = float_at_most(Fraction(d_units, DELTA_UNITS_PER_1))

    decimals, shift, sum_d_in = 0, 0, 0
    if kind in ("sum", "mean"):
        decimals = sum_decimals(bounds)
        lo, hi = grid_bounds(bounds, decimals)
        if kind == "sum":
            sum_d_in = m * max(abs(lo), abs(hi))
        else:
            shift = (lo + hi) // 2
            sum_d_in = m * max(hi - shift, shift - lo)
        sum_d_in = max(sum_d_in, 1)  # a degenerate [c, c] range still gets noise

    if kind in ("count", "histogram"):
        parts = [("count", m)]
    elif kind == "sum":
        parts = [("sum", sum_d_in)]
    elif kind == "mean":
        parts = [("sum", sum_d_in), ("count", m)]
    else:
        parts = [("quantile", m)] * len(alphas)
    k = len(parts)

    components = []
    rho = None
    candidates: tuple[float, ...] = ()
    if kind == "quantile":
        lo_b, hi_b = bounds
        n = QUANTILE_CANDIDATES if hi_b > lo_b else 1
        candidates = tuple(sorted({lo_b + (hi_b - lo_b) * i / max(n - 1, 1) for i in range(n)}))
    if mechanism == "laplace":
        share = float_at_most(Fraction(eps) / k)
        for (name, d_in), alpha in zip(parts, alphas or [None] * k):
            if name == "quantile":
                scale = dp.binary_search_param(lambda s, a=alpha: quantile_chain(candidates, a, s),
                                               d_in=d_in, d_out=share, T=float)
                meas = quantile_chain(candidates, alpha, scale)
            else:
                meas, scale = _calibrated(int_vector_laplace, d_in, share)
            components.append(Component(name, meas, d_in, scale, meas.map(d_in), alpha))
    else:
        rho = total_rho(eps, delta)
        share = float_at_most(Fraction(rho) / k)
        for name, d_in in parts:
            meas, scale = _gaussian_scale_for_rho(share, d_in)
            components.append(Component(name, meas, d_in, scale, meas.map(d_in)))
    return tuple(components), decimals, shift, candidates, rho
