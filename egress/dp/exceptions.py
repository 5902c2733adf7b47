"""Errors of the DP gateway (refusals the researcher can act on); built on `hub.exceptions`."""

from __future__ import annotations

from hub.exceptions import Refused


class BudgetExhausted(Refused):
    """The query's cost would exceed the remaining budget; nothing was computed or charged."""

    http_status = 409

    def __init__(self, *, remaining_epsilon: float, remaining_delta: float, epsilon: float, delta: float,
                 scope: str):
        self.remaining_epsilon = remaining_epsilon
        self.remaining_delta = remaining_delta
        self.remaining = {"epsilon": remaining_epsilon, "delta": remaining_delta}
        what = f"epsilon={epsilon:g}" + (f", delta={delta:g}" if delta else "")
        super().__init__(
            f"privacy budget exhausted for {scope}: the query asks {what} but only "
            f"epsilon={remaining_epsilon:g}, delta={remaining_delta:g} remain; no value was computed"
        )
