"""Linear programmes of the suppression audit and proposal, on HiGHS (`highspy`).

`Polytope(a_eq, b_eq, lower, upper)` holds one feasible set `{x : a_eq x = b_eq, lower <= x <=
upper}` in one HiGHS instance; `minimise(cost)` solves it for an objective and keeps the final
basis, so the next objective over the same set starts from it (the audit asks for the minimum
and maximum of every suppressed cell over one set: dozens of objectives, one model). That is
several times faster than building a fresh problem per objective (`scipy.optimize.linprog`).

`Solution.status`: `OPTIMAL`, `INFEASIBLE` or `UNBOUNDED`.

Pure computation (numpy, scipy.sparse, highspy); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
from scipy import sparse

OPTIMAL, INFEASIBLE, UNBOUNDED = "optimal", "infeasible", "unbounded"
_DECIDED = (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible,
            highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible)


@dataclass(frozen=True)
class Solution:
    status: str
    value: float | None = None       # the objective at the optimum
    x: np.ndarray | None = None      # the optimal point


class Polytope:
    def __init__(self, a_eq, b_eq, lower, upper=None):
        a = sparse.csc_array(a_eq)
        rows, width = a.shape
        self.width = width
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("threads", 1)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = width, rows
        lp.col_cost_ = np.zeros(width)
        lp.col_lower_ = np.broadcast_to(np.asarray(lower, dtype=float), (width,)).copy()
        top = np.inf if upper is None else upper
        lp.col_upper_ = np.minimum(np.broadcast_to(np.asarray(top, dtype=float), (width,)), highspy.kHighsInf)
        b = np.asarray(b_eq, dtype=float)
        lp.row_lower_, lp.row_upper_ = b.copy(), b.copy()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data.astype(float)
        self.highs.passModel(lp)
        self._columns = np.arange(width, dtype=np.int32)

    def set_bounds(self, lower, upper) -> None:
        """New bounds for every variable (the model and its last basis stay)."""
        self.highs.changeColsBounds(self.width, self._columns, np.asarray(lower, dtype=float),
                                    np.minimum(np.asarray(upper, dtype=float), highspy.kHighsInf))

    def minimise(self, cost) -> Solution:
        self.highs.changeColsCost(self.width, self._columns, np.asarray(cost, dtype=float))
        self.highs.run()
        status = self.highs.getModelStatus()
        if status not in _DECIDED:
            # numerical trouble from the warm start: solve this one from scratch
            self.highs.clearSolver()
            self.highs.run()
            status = self.highs.getModelStatus()
        if status == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            # presolve could not tell which: a zero objective decides feasibility
            self.highs.changeColsCost(self.width, self._columns, np.zeros(self.width))
            self.highs.run()
            feasible = self.highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
            return Solution(UNBOUNDED if feasible else INFEASIBLE)
        if status == highspy.HighsModelStatus.kOptimal:
            return Solution(OPTIMAL, self.highs.getInfo().objective_function_value,
                            np.array(self.highs.getSolution().col_value))
        if status == highspy.HighsModelStatus.kUnbounded:
            return Solution(UNBOUNDED)
        if status == highspy.HighsModelStatus.kInfeasible:
            return Solution(INFEASIBLE)
        raise ArithmeticError(f"HiGHS could not solve the suppression LP: {self.highs.modelStatusToString(status)}")
