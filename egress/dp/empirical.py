"""Empirical privacy audit: a statistical lower bound on epsilon from samples of a mechanism
on two neighbouring datasets (pure; scipy only).

For an event S fixed in advance, pure epsilon-DP implies P[M(D) in S] <= e^epsilon P[M(D') in S].
With k1 of n1 runs on D and k2 of n2 runs on D' in S, Clopper-Pearson bounds (Bonferroni: each
one-sided at alpha / 2) give, with confidence 1 - alpha,
    epsilon >= ln(lower(k1, n1) / upper(k2, n2)).
A correct mechanism's bound stays below its claimed epsilon; a mis-calibrated one exceeds it.
"""

from __future__ import annotations

import math

from scipy.stats import beta


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - alpha) interval for a binomial proportion (each tail alpha / 2)."""
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def epsilon_lower_bound(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> float:
    """Lower confidence bound on epsilon from event counts on D (k1/n1) and D' (k2/n2)."""
    p_lo, _ = clopper_pearson(k1, n1, alpha)
    _, q_hi = clopper_pearson(k2, n2, alpha)
    if p_lo <= 0:
        return 0.0
    return max(0.0, math.log(p_lo / q_hi))
