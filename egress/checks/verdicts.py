"""Result objects of the disclosure checks: one `Finding` per broken rule, grouped per cell
and per table, with the rule named and a suggested action for the author and the checker.

`Verdicts.to_dict()` is the JSON shape the service stores and the checker page renders.

Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Rule names (stable identifiers: stored with each request, shown on pages, documented in
# docs/checker-rules.md).
RULES = (
    "threshold", "zero", "dominance", "p_percent", "negative", "missing", "dof",
    "secondary_suppression", "differencing", "person_key_column", "too_many_rows",
    "formula_injection", "no_evidence", "invalid_value", "unsupported_shape", "extreme_value", "manual_review",
)

FAIL = "fail"
REVIEW = "review"
PASS = "pass"

_RANK = {PASS: 0, REVIEW: 1, FAIL: 2}


@dataclass(frozen=True)
class Finding:
    """One rule a cell or table breaks. `status` is `fail` (must change) or `review` (a checker
    must look); `action` is what the author should do (`suppress`, `round to base 5`, ...)."""

    rule: str
    status: str
    message: str
    action: str = ""

    def to_dict(self) -> dict:
        return {"rule": self.rule, "status": self.status, "message": self.message, "action": self.action}


@dataclass(frozen=True)
class CellVerdict:
    """Findings for one cell: `row` is the 0-based row in the submitted table, `column` the
    measure column, `labels` the row's label values, `verified` whether evidence backed it."""

    row: int
    column: str
    labels: tuple
    value: Any
    findings: tuple[Finding, ...]
    verified: bool

    @property
    def status(self) -> str:
        return worst(f.status for f in self.findings)

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(f.rule for f in self.findings)

    def to_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "labels": [_json_value(v) for v in self.labels],
                "value": _json_value(self.value), "status": self.status, "verified": self.verified,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class Verdicts:
    """All findings for one table. `cells` lists only cells with at least one finding.

    verified: True when every checked cell had evidence from the provenance re-execution.
    suggestions: advice that is not a rule breach (e.g. rounding counts to the policy base).
    """

    kind: str
    cells: tuple[CellVerdict, ...] = ()
    table: tuple[Finding, ...] = ()
    verified: bool = False
    cells_checked: int = 0
    suggestions: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return worst([c.status for c in self.cells] + [f.status for f in self.table])

    def cells_with(self, rule: str) -> set[tuple[int, str]]:
        """`{(row, column)}` of the cells that break `rule` (handy for tests and pages)."""
        return {(c.row, c.column) for c in self.cells if rule in c.rules}

    def table_rules(self) -> set[str]:
        return {f.rule for f in self.table}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "status": self.status, "verified": self.verified,
                "cells_checked": self.cells_checked,
                "cells": [c.to_dict() for c in self.cells],
                "table": [f.to_dict() for f in self.table],
                "suggestions": list(self.suggestions)}


def worst(statuses) -> str:
    result = PASS
    for status in statuses:
        if _RANK[status] > _RANK[result]:
            result = status
    return result


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if value != value else str(value)  # strict JSON has no NaN/Infinity
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
