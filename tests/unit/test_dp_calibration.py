"""Calibration: rebuild every mechanism in OpenDP from the plan's parameters and check its
privacy map at the declared contribution bound is within the charged epsilon (and that the
same measurement would NOT be within budget for a larger contribution, so the check bites)."""

from fractions import Fraction

import opendp.prelude as dp
import pytest

from egress.dp.calibrate import (gaussian_to_approx, grid_bounds, int_vector_gaussian, int_vector_laplace, make_plan,
                                 quantile_chain, sum_decimals, total_rho)
from egress.dp.spec import parse_query
from egress.dp.units import EPSILON_UNITS_PER_1, delta_units, epsilon_units, float_at_most
from tests.integration.dp_fixtures import SCHEMA

dp.enable_features("contrib")

LAPLACE_SPECS = [
    {"kind": "count", "table": "person", "epsilon": 0.1},
    {"kind": "count", "table": "measurement", "by": ["unit"], "epsilon": 0.3},
    {"kind": "histogram", "table": "person", "column": "race", "by": ["gender_concept_id"], "epsilon": 1.0},
    {"kind": "sum", "table": "measurement", "column": "value_as_number", "epsilon": 0.7},
    {"kind": "mean", "table": "measurement", "column": "value_as_number", "by": ["unit"], "epsilon": 0.25},
    {"kind": "quantile", "table": "person", "column": "year_of_birth", "alphas": [0.1, 0.5, 0.9], "epsilon": 0.9},
]


def rebuild(component, plan):
    """A fresh OpenDP measurement from the published parameters only (scale, candidates, alpha)."""
    if component.name == "quantile":
        return quantile_chain(plan.candidates, component.alpha, component.scale)
    if plan.query.mechanism == "gaussian":
        return int_vector_gaussian(component.scale)
    return int_vector_laplace(component.scale)


def expected_d_in(q, name):
    m = q.max_per_person
    if name in ("count", "quantile"):
        return m
    lo, hi = grid_bounds(q.bounds, sum_decimals(q.bounds))
    if q.kind == "sum":
        return m * max(abs(lo), abs(hi))
    c = (lo + hi) // 2
    return m * max(hi - c, c - lo)


@pytest.mark.parametrize("spec", LAPLACE_SPECS, ids=lambda s: s["kind"])
def test_laplace_and_noisy_max_are_within_epsilon_at_the_contribution_bound(spec):
    q = parse_query(spec, SCHEMA)
    plan = make_plan(q)
    assert plan.epsilon_units == epsilon_units(spec["epsilon"]) and plan.delta_units == 0
    total = Fraction(0)
    for c in plan.components:
        assert c.d_in == expected_d_in(q, c.name)
        meas = rebuild(c, plan)
        cost = meas.map(c.d_in)
        total += Fraction(cost)
        # a person contributing more rows than declared would break the guarantee
        assert meas.map(c.d_in * 2) > cost
    assert total <= Fraction(plan.epsilon_units, EPSILON_UNITS_PER_1)
    # the split is tight: not wasting budget (at least 99.99 % used)
    assert total >= Fraction(plan.epsilon_units, EPSILON_UNITS_PER_1) * Fraction(9999, 10000)


def test_count_noise_is_integer_discrete_laplace():
    plan = make_plan(parse_query({"kind": "count", "table": "person", "epsilon": 1.0}, SCHEMA))
    meas = plan.components[0].measurement
    assert str(meas.input_domain) .startswith("VectorDomain(AtomDomain(T=i64)")
    out = meas([10, 20])
    assert all(isinstance(v, int) for v in out)
    assert plan.components[0].scale == pytest.approx(1.0)


def test_mean_splits_epsilon_evenly_between_sum_and_count():
    plan = make_plan(parse_query(LAPLACE_SPECS[4], SCHEMA))
    costs = {c.name: c.cost for c in plan.components}
    assert costs["sum"] == pytest.approx(0.125) and costs["count"] == pytest.approx(0.125)
    # shifted sum: |x - c| <= (U - L) / 2 = 100 per row, 5 rows per person, on a 10^-6 grid
    assert plan.components[0].d_in == 5 * 100 * 10**6


@pytest.mark.parametrize("spec", [
    {"kind": "count", "table": "measurement", "by": ["unit"], "epsilon": 0.5, "mechanism": "gaussian", "delta": 1e-6},
    {"kind": "mean", "table": "measurement", "column": "value_as_number", "epsilon": 1.0, "mechanism": "gaussian",
     "delta": 1e-7},
    {"kind": "sum", "table": "measurement", "column": "value_as_number", "by": ["unit"], "epsilon": 0.7,
     "mechanism": "gaussian", "delta": 1e-6},
    {"kind": "histogram", "table": "measurement", "column": "unit", "epsilon": 0.3, "mechanism": "gaussian",
     "delta": 1e-8},
], ids=["count", "mean", "sum", "histogram"])
def test_gaussian_zcdp_converts_within_epsilon_delta(spec):
    q = parse_query(spec, SCHEMA)
    plan = make_plan(q)
    assert plan.delta_units == delta_units(spec["delta"])
    rho = Fraction(0)
    for c in plan.components:
        meas = rebuild(c, plan)
        assert meas.output_measure == dp.zero_concentrated_divergence()
        rho += Fraction(meas.map(c.d_in))
        assert meas.map(c.d_in * 2) > meas.map(c.d_in)
    assert rho <= Fraction(plan.rho)
    # OpenDP's own conversion of the total rho: a gaussian with exactly that rho at d_in = 1
    scale = (1 / (2 * float(rho))) ** 0.5
    ref = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale)
    while ref.map(1) < float(rho):  # make the reference at least as lossy as the query
        scale *= 1 - 1e-12
        ref = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale)
    eps, delta = gaussian_to_approx(ref, plan.delta).map(1)
    assert eps <= spec["epsilon"] * (1 + 1e-9) and delta <= spec["delta"]
    # and more budget than granted would convert above epsilon
    bigger = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=scale / 1.5)
    assert gaussian_to_approx(bigger, plan.delta).map(1)[0] > spec["epsilon"]


def test_total_rho_is_the_opendp_conversion():
    rho = total_rho(1.0, 1e-6)
    assert 0.01 < rho < 0.1


@pytest.mark.parametrize("value, units", [(0.1, 10**11), (1, 10**12), (2.5, 25 * 10**11), (1e-12, 1), (1 / 3, 333333333333)])
def test_epsilon_units_read_the_decimal_written(value, units):
    assert epsilon_units(value) == units


def test_calibration_float_never_exceeds_the_charged_units():
    for units in (1, 3, 10**11, 333333333333, 10**12 + 7):
        f = float_at_most(Fraction(units, EPSILON_UNITS_PER_1))
        assert Fraction(f) <= Fraction(units, EPSILON_UNITS_PER_1)


def test_ten_queries_of_a_tenth_spend_exactly_one():
    assert 10 * epsilon_units(0.1) == epsilon_units(1.0)


def test_sum_grid_never_widens_the_bounds():
    assert grid_bounds((0.1234567, 1.0), 6) == (123457, 1000000)
    assert grid_bounds((-0.5, 0.5), 0) == (0, 0)
    assert sum_decimals((0, 1000)) == 6
