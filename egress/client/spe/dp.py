"""Differential-privacy queries from the workspace: `spe.dp.count(...)`, `spe.dp.mean(...)`,
`spe.dp.budget()`.

    import spe.dp
    spe.dp.count("condition_occurrence", by=["person.gender_concept_id"], epsilon=0.1)
    spe.dp.mean("measurement", "value_as_number", where=[("unit", "=", "mg")], epsilon=0.5)
    spe.dp.quantiles("person", "year_of_birth", [0.25, 0.5, 0.75], epsilon=0.3)
    spe.dp.budget()

Noise is added by the egress service, after the query's epsilon (and delta) has been charged
to your permit's budget; the answer carries its calibration (scale, sensitivity, cost) and the
budget left. A refusal (unknown column, undeclared category, budget exhausted, ...) raises
`spe.errors.SpeRefused` with the service's message; nothing is charged for a refused query.

Thin by design: the service validates everything. The environment (`SPE_EGRESS_URL`,
`JUPYTERHUB_API_TOKEN`) is read at call time. Must not import `hub` or `egress`.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

try:  # the client's error module (shared with spe.submit & co.)
    from spe import errors as _errors
except ImportError:  # pragma: no cover - only when dp.py is used without the rest of the client
    _errors = None


class _SpeRefused(Exception):
    def __init__(self, message: str, *, status: int = 400, reason: str = "", field: str | None = None):
        self.status, self.reason, self.field = status, reason, field
        super().__init__(message)


SpeRefused = getattr(_errors, "SpeRefused", None) or getattr(_errors, "Refused", None) or _SpeRefused

__all__ = ["count", "sum", "mean", "histogram", "quantile", "quantiles", "budget", "query", "SpeRefused"]

TIMEOUT_SECONDS = 300  # a DP query over a large extract can take a while


def _config() -> tuple[str, str]:
    url = os.environ.get("SPE_EGRESS_URL", "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not url or not token:
        raise SpeRefused("SPE_EGRESS_URL and JUPYTERHUB_API_TOKEN must be set: run this inside an SPE workspace",
                         status=0, reason="not_configured")
    return url.rstrip("/"), token


def _message(response) -> tuple[str, str, str | None]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        msg = body.get("error") or body.get("message") or body.get("detail") or body.get("reason")
        if msg:
            return str(msg), str(body.get("reason") or ""), body.get("field")
    return (response.text or response.reason or "refused").strip()[:500], "", None


def _call(method: str, path: str, body: dict | None = None) -> dict:
    import requests

    base, token = _config()
    try:
        response = requests.request(method, f"{base}/{path}", json=body, timeout=TIMEOUT_SECONDS,
                                    headers={"Authorization": f"token {token}"})
    except requests.RequestException as err:
        raise SpeRefused(f"the egress service at {base} cannot be reached: {err}", status=0,
                         reason="unreachable") from None
    if response.status_code >= 400:
        message, reason, field = _message(response)
        raise SpeRefused(f"DP query refused ({response.status_code}): {message}", status=response.status_code,
                         reason=reason, field=field)
    try:
        return response.json()
    except ValueError:
        raise SpeRefused("the egress service sent a malformed answer", status=response.status_code) from None


def _filters(where: Any) -> list[dict]:
    """Filters as a list of {column, op, value}; (column, op, value) tuples are accepted."""
    if where is None:
        return []
    if isinstance(where, dict):
        where = [where]
    out = []
    for f in where:
        if isinstance(f, (tuple, list)) and len(f) == 3:
            f = {"column": f[0], "op": f[1], "value": list(f[2]) if isinstance(f[2], tuple) else f[2]}
        out.append(f)
    return out


def query(spec: dict) -> dict:
    """Send a raw query spec (see docs/researcher-dp.md) and return the service's answer."""
    return _call("POST", "api/dp/query", spec)


def _spec(kind: str, table: str, column: str | None, by: Iterable[str] | str | None, where: Any, epsilon: float,
          mechanism: str, delta: float | None, **extra) -> dict:
    spec = {"kind": kind, "table": table, "epsilon": epsilon, "mechanism": mechanism}
    if column is not None:
        spec["column"] = column
    if by:
        spec["by"] = [by] if isinstance(by, str) else list(by)
    where = _filters(where)
    if where:
        spec["where"] = where
    if delta is not None:
        spec["delta"] = delta
    spec.update(extra)
    return spec


def count(table: str, by: Iterable[str] | str | None = None, where: Any = None, *, epsilon: float,
          mechanism: str = "laplace", delta: float | None = None) -> dict:
    """Noisy row count (integer, discrete Laplace by default), optionally per declared category of `by`."""
    return query(_spec("count", table, None, by, where, epsilon, mechanism, delta))


def sum(table: str, column: str, by: Iterable[str] | str | None = None, where: Any = None, *,  # noqa: A001
        epsilon: float, mechanism: str = "laplace", delta: float | None = None) -> dict:
    """Noisy sum of `column` clamped to its declared bounds."""
    return query(_spec("sum", table, column, by, where, epsilon, mechanism, delta))


def mean(table: str, column: str, by: Iterable[str] | str | None = None, where: Any = None, *, epsilon: float,
         mechanism: str = "laplace", delta: float | None = None) -> dict:
    """Noisy mean of `column` (clamped): a noisy sum and a noisy count, each with half of epsilon."""
    return query(_spec("mean", table, column, by, where, epsilon, mechanism, delta))


def histogram(table: str, column: str, by: Iterable[str] | str | None = None, where: Any = None, *,
              epsilon: float, mechanism: str = "laplace", delta: float | None = None) -> dict:
    """Noisy counts over the declared categories of `column` (never categories found in the data)."""
    return query(_spec("histogram", table, column, by, where, epsilon, mechanism, delta))


def quantiles(table: str, column: str, alphas: Iterable[float], where: Any = None, *, epsilon: float) -> dict:
    """Noisy quantiles of `column` within its declared bounds; epsilon is split evenly over `alphas`."""
    return query(_spec("quantile", table, column, None, where, epsilon, "laplace", None, alphas=list(alphas)))


def quantile(table: str, column: str, alpha: float = 0.5, where: Any = None, *, epsilon: float) -> float:
    """One noisy quantile (the median by default), as a number."""
    answer = quantiles(table, column, [alpha], where, epsilon=epsilon)
    if "values" not in answer:  # held for review (the permit does not auto-release DP answers)
        raise SpeRefused(f"the DP answer is held for output review as request {answer.get('request_id')}; "
                         f"follow it with spe.requests()", status=202, reason="held_for_review")
    return next(iter(answer["values"].values()))


def budget() -> dict:
    """Your privacy budget on this workspace's permit: total, spent and remaining epsilon/delta."""
    return _call("GET", "api/dp/budget")
