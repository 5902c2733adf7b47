"""Secondary suppression of one checked table: the LP audit of what it leaves empty (linked with
the permit's earlier outputs) and the suppression pattern SPE proposes when it fails.

`rules.check_table` calls `audit_table` and `propose_table` with what it already knows per
cell (`CellFacts`: published value, true value, whether the primary rules failed); the
solving is in `egress.checks.suppression`, the table layout in `egress.checks.grid`.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pyarrow as pa

from egress.checks.grid import Grid, InconsistentRelease, is_additive, is_wide, link, make_grids
from egress.checks.policy import Policy
from egress.checks.suppression import Pattern, audit, propose
from egress.checks.verdicts import FAIL, REVIEW, Finding


@dataclass(frozen=True)
class CellFacts:
    """What the rules know about the cells of the checked table."""

    truth: Callable[[int, str], float | None]        # true value (evidence, else what is shown)
    sensitive: Callable[[int, str], bool | None]     # primary rules failed (None: unknown)
    is_count: Callable[[str], bool]
    additive: Callable[[str], bool | None]           # a sum (True), a mean/median (False), unknown (None)


@dataclass(frozen=True)
class LinkedTable:
    """An earlier output of the permit, laid out for linking (`name` for messages)."""

    table: pa.Table
    labels: tuple[str, ...]
    measures: tuple[str, ...]
    name: str


def _grids(table: pa.Table, labels, measures, facts: CellFacts) -> list[tuple[tuple[str, ...], Grid]]:
    """(columns, grid) for the measures of a table whose margins are sums of their cells."""
    out = []
    summable = [c for c in measures if facts.is_count(c) or facts.additive(c) is not False]
    if len(summable) < len(measures) and is_wide(measures):
        return out  # a crosstab of means: no margin is a sum
    measures = summable  # means, spreads, medians: their margins are not sums, read no equations
    for columns, grid in make_grids(table, labels, measures, truth=facts.truth, sensitive=facts.sensitive,
                                    integer=lambda cs: all(facts.is_count(c) for c in cs)):
        if not grid.integer:
            verdict = [facts.additive(c) for c in columns]
            if False in verdict or (None in verdict and not (grid.equations and is_additive(grid))):
                continue  # means, medians...: their margins are not sums of cells
        out.append((columns, grid))
    return out


def _linked(columns, linked: Sequence[LinkedTable]) -> list[tuple[Grid, str]]:
    out = []
    for item in linked:
        if not all(c in item.measures for c in columns):
            continue
        want = list(columns) if len(columns) == 1 else list(item.measures)
        try:
            for cols, grid in make_grids(item.table, item.labels, want):
                if cols == tuple(columns):
                    out.append((grid, item.name))
        except InconsistentRelease:
            continue
    return out


def audit_table(table: pa.Table, labels, measures, facts: CellFacts, policy: Policy,
                linked: Sequence[LinkedTable], protect_all: bool
                ) -> tuple[list[tuple[int, str, Finding]], list[Finding]]:
    """Cell findings `(row, column, finding)` and table findings of the LP audit."""
    cell_findings: list[tuple[int, str, Finding]] = []
    table_findings: list[Finding] = []
    try:
        grids = _grids(table, labels, measures, facts)
    except InconsistentRelease as err:
        return [], [Finding("secondary_suppression", REVIEW, f"could not bound suppressed cells: {err}",
                            "check by hand")]
    for columns, grid in grids:
        others = _linked(columns, linked)
        names = [name for _, name in others]
        merged, taken = link(grid, [g for g, _ in others]) if others else (grid, [])
        try:
            exposures = audit(merged, policy.threshold, policy.p_percent, protect_all=protect_all)
        except InconsistentRelease as err:
            table_findings.append(Finding("secondary_suppression", REVIEW, f"could not bound suppressed cells: {err}",
                                          "check by hand"))
            continue
        for exposure in exposures:
            action = ("suppress complementary cells (apply the suggested suppression), or drop the margins"
                      if exposure.status == FAIL else "submit the table with its provenance SQL, or check by hand")
            own = [merged.cells[i] for i in exposure.cells if merged.cells[i].table == 0]
            for cell in own:
                cell_findings.append((cell.origin[0], cell.origin[1],
                                      Finding("secondary_suppression", exposure.status, exposure.message, action)))
            if not own:
                where = next(merged.cells[i] for i in exposure.cells)
                table_findings.append(Finding(
                    "secondary_suppression", exposure.status,
                    f"with this table, a suppressed cell of {names[taken[where.table - 1]]} "
                    f"(row {where.origin[0]}, {where.origin[1]}) becomes recoverable: {exposure.message}",
                    "suppress the cells this table shares with it, or drop the margins"))
    return cell_findings, table_findings


def propose_table(table: pa.Table, labels, measures, facts: CellFacts, policy: Policy,
                  linked: Sequence[LinkedTable], protect_all: bool) -> dict | None:
    """The suggested suppression for the table (JSON for the verdicts), or None when nothing
    needs suppressing. Cells are `(row, column)` of the submitted table."""
    try:
        grids = _grids(table, labels, measures, facts)
    except InconsistentRelease:
        grids = []
    covered = {c for columns, _ in grids for c in columns}
    primary: set[tuple[int, str]] = set()
    secondary: set[tuple[int, str]] = set()
    verified = True
    reasons = []
    loss_total = 0.0
    for columns, grid in grids:
        others = _linked(columns, linked)
        merged = link(grid, [g for g, _ in others])[0] if others else grid
        pattern: Pattern = propose(merged, policy.threshold, policy.p_percent, protect_all=protect_all)
        primary |= {merged.cells[i].origin for i in pattern.primary if merged.cells[i].table == 0}
        secondary |= {merged.cells[i].origin for i in pattern.secondary if merged.cells[i].table == 0}
        loss_total += pattern.loss_total
        if not pattern.verified:
            verified = False
            reasons.append(pattern.reason)
    # measures with no additive structure (means, medians): their failing cells alone
    for column in measures:
        if column in covered:
            continue
        for row in range(table.num_rows):
            if facts.sensitive(row, column) or table.column(column)[row].as_py() is None:
                primary.add((row, column))
    already = {(r, c) for r, c in primary | secondary if table.column(c)[r].as_py() is None}
    if not (primary | secondary) - already:
        return None
    cells = ([{"row": r, "column": c, "reason": "primary"} for r, c in sorted(primary)]
             + [{"row": r, "column": c, "reason": "secondary"} for r, c in sorted(secondary - primary)])
    return {"cells": cells, "loss_cells": len(primary | secondary), "loss_total": loss_total,
            "verified": verified, "reason": "; ".join(dict.fromkeys(r for r in reasons if r)),
            "method": "LP-guided complementary suppression, verified by the LP audit"}


def apply_pattern(table: pa.Table, cells: Sequence[dict]) -> pa.Table:
    """`table` with the pattern's cells emptied (NULL): what "apply suggested suppression" sends."""
    columns = {}
    for name in table.column_names:
        rows = {c["row"] for c in cells if c["column"] == name}
        if not rows:
            columns[name] = table.column(name)
            continue
        values = table.column(name).to_pylist()
        columns[name] = pa.array([None if i in rows else v for i, v in enumerate(values)],
                                 type=table.schema.field(name).type)
    return pa.table(columns)
