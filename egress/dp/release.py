"""Apply a calibrated plan's OpenDP measurements to the exact aggregates: the only place
noise is drawn. Pure apart from OpenDP's randomness; the answer carries its calibration.
"""

from __future__ import annotations

import itertools

from egress.dp.calibrate import Plan
from egress.dp.compute import Exact


def make_answer(plan: Plan, exact: Exact) -> dict:
    q = plan.query
    comps = {c.name: c for c in plan.components}
    unit = 10.0 ** -plan.decimals
    answer: dict = {
        "kind": q.kind, "table": q.table, "column": q.column, "by": list(q.by),
        "mechanism": q.mechanism,
        "epsilon": plan.epsilon, "delta": plan.delta,
        "max_per_person": q.max_per_person,
        "calibration": [
            {"release": c.name, "alpha": c.alpha,
             "sensitivity": c.d_in * (unit if c.name == "sum" else 1),
             "scale": c.scale * (unit if c.name == "sum" else 1),
             ("rho" if q.mechanism == "gaussian" else "epsilon"): c.cost}
            for c in plan.components
        ],
    }
    if plan.rho is not None:
        answer["rho"] = plan.rho
    if q.kind == "quantile":
        values = {}
        for c in plan.components:
            idx = c.measurement(exact.values)
            values[str(c.alpha)] = plan.candidates[idx]
        answer["values"] = values
        return answer

    noisy_counts = comps["count"].measurement(exact.counts) if "count" in comps else None
    noisy_sums = comps["sum"].measurement(exact.sums) if "sum" in comps else None
    name = {"count": "count", "histogram": "count", "sum": "sum", "mean": "mean"}[q.kind]
    outputs = []
    for i in range(len(exact.counts)):
        if q.kind in ("count", "histogram"):
            outputs.append(int(noisy_counts[i]))
        elif q.kind == "sum":
            outputs.append(noisy_sums[i] * unit)
        else:
            lo, hi = q.bounds
            n = noisy_counts[i]
            # post-processing of noisy values only; a noisy count below 1 gives no mean
            mean = None if n < 1 else plan.shift_units * unit + (noisy_sums[i] * unit) / n
            outputs.append(None if mean is None else min(max(mean, lo), hi))
    if q.group_columns:
        cells = itertools.product(*q.categories)
        answer["rows"] = [dict(zip(q.group_columns, cell), **{name: v}) for cell, v in zip(cells, outputs)]
        if q.kind == "mean":
            for row, n in zip(answer["rows"], noisy_counts):
                row["count"] = int(n)
    else:
        answer["value"] = outputs[0]
        if q.kind == "mean":
            answer["count"] = int(noisy_counts[0])
    return answer
