"""`check_table(table, policy, *, kind, ...) -> Verdicts`: the automated disclosure checks.

Pure function of its arguments (a pyarrow Table, the policy, optional per-cell evidence from
the provenance re-execution, earlier releases of the permit); no I/O, no clock, no database.
The web service calls it and stores `Verdicts.to_dict()`; the rules and their exact
boundaries are documented in docs/checker-rules.md and mirror ACRO 1.0.2 where ACRO has
the rule:

| rule | fails when | ACRO |
| threshold | distinct persons < threshold (shown count when no evidence) | MinimumThresholdCheck, `count < t` |
| zero | a count cell is 0 | PresenceOfZeroCheck (zeros_are_disclosive) |
| dominance | sum of the n largest per-person contributions / total >= k | NKCheck `>= k` |
| p_percent | (total - largest - second) / largest < p (all-zero cell: fails) | PPercentCheck `< p` |
| negative | a magnitude cell has negative contributions: review, dominance skipped | NKCheck/PPercentCheck review |
| missing | NULL measure values were ignored by the aggregate: review | MissingCheck (review) |
| dof | residual degrees of freedom < threshold | MinimumDoFCheck `dof < t` |

Ratios are compared exactly on the shortest decimal form of each number (`Fraction(repr(x))`),
so 90/100 against k=0.9 is exactly on the boundary, as a checker reading the table expects.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import pyarrow as pa

from egress.checks.content import formula_cells, person_key_columns
from egress.checks.differencing import find_differences
from egress.checks.evidence import COUNT_AGGREGATES, CellEvidence, Evidence, label_key
from egress.checks.policy import Policy, make_policy
from egress.checks.suppression import InconsistentRelease, suppressed_intervals
from egress.checks.tables import Shape, as_float, find_margins, is_count_name, split_columns
from egress.checks.verdicts import FAIL, REVIEW, CellVerdict, Finding, Verdicts
from egress.exceptions import InvalidInput

KINDS = ("frequency", "magnitude", "model")
LINEAR_AGGREGATES = frozenset({"sum", "avg", "mean"})
DOF_COLUMNS = ("df_resid", "dof", "residual_dof", "df_residual", "df_residuals")


def check_table(table: pa.Table, policy: Any = None, *, kind: str, evidence: Evidence | None = None,
                released: Sequence[pa.Table] = (), label_columns: Sequence[str] | None = None,
                extract_persons: int | None = None) -> Verdicts:
    """Check one output table; see the module docstring and docs/checker-rules.md.

    kind:            `frequency` (every measure is a count), `magnitude` (sums, means...: count
                     columns are still checked as counts), or `model` (needs a dof column).
    evidence:        per-cell evidence from `egress.provenance`; None → checked on what the
                     table shows and `verified=False`.
    released:        tables already released under the same permit (differencing).
    label_columns:   override the label/measure split (default: evidence labels, else every
                     non-numeric column).
    extract_persons: distinct persons in the permit's extract (manifest `persons`).
    """
    if kind not in KINDS:
        raise InvalidInput(f"unknown table kind {kind!r}; expected one of {', '.join(KINDS)}", field="kind")
    if not isinstance(table, pa.Table):
        raise InvalidInput("expected a pyarrow Table", field="table")
    policy = make_policy(policy)
    shape = split_columns(table, label_columns, evidence)
    table_findings = _content_findings(table, policy, extract_persons)

    if kind == "model":
        return _check_model(table, policy, table_findings)
    if not shape.measures:
        table_findings.append(Finding("unsupported_shape", REVIEW, "the table has no numeric column to check",
                                      "check by hand"))
        return Verdicts(kind=kind, table=tuple(table_findings), verified=False)

    count_columns = [c for c in shape.measures if _is_count_column(c, kind, evidence)]
    label_rows = _label_rows(table, shape)
    values = {c: table.column(c).to_pylist() for c in shape.measures}
    shown_counts = values.get(count_columns[0]) if count_columns else None

    cells: list[CellVerdict] = []
    checked = 0
    all_verified = evidence is not None
    suppressed = 0
    off_base = 0
    for column in shape.measures:
        is_count = column in count_columns
        for row, raw in enumerate(values[column]):
            value = as_float(raw)
            if value is None:
                suppressed += 1
                continue
            checked += 1
            if not math.isfinite(value):
                cells.append(CellVerdict(row, column, tuple(label_rows[row]), raw, (Finding(
                    "invalid_value", FAIL, f"{value} is not a finite number", "fix the table"),), False))
                all_verified = False
                continue
            cell_evidence = evidence.get(label_rows[row], column) if evidence is not None else None
            if cell_evidence is None:
                all_verified = False
            if is_count:
                findings = _count_findings(value, cell_evidence, policy)
                if value != math.floor(value) or int(value) % policy.rounding_base:
                    off_base += 1
            else:
                shown = as_float(shown_counts[row]) if shown_counts is not None else None
                findings = _magnitude_findings(cell_evidence, shown, policy)
            if findings:
                cells.append(CellVerdict(row, column, tuple(label_rows[row]), raw, tuple(findings),
                                         cell_evidence is not None))

    if evidence is None and any(c not in count_columns for c in shape.measures):
        table_findings.append(Finding(
            "no_evidence", REVIEW,
            "no provenance: dominance and p% could not be checked on per-person contributions, "
            "and the threshold only on a count column shown in the table",
            "submit the table with its provenance SQL"))

    margins = find_margins(table, shape)
    # Margins are sums of cells only for counts (a mean's margin is not the sum of the means).
    if margins is not None and suppressed and set(shape.measures) <= set(count_columns):
        cells.extend(_secondary_findings(margins, shape, label_rows, values, policy, table_findings))

    differences = find_differences(table, shape, count_columns, released, policy.threshold)
    extra: dict[tuple[int, str], list[Finding]] = {}
    for d in differences:
        extra.setdefault((d.row, d.column), []).append(Finding(
            "differencing", FAIL,
            f"differs by {d.size:g} (< {policy.threshold}) from the same cell of release #{d.released_index + 1} "
            f"({d.old:g} → {d.new:g}): the difference reveals a small group",
            "suppress or merge, or align with the earlier release"))
    cells = _merge_cells(cells, extra, label_rows, values)

    suggestions = []
    if off_base:
        suggestions.append(f"{off_base} count cell(s) are not multiples of {policy.rounding_base}: "
                           f"consider rounding counts to base {policy.rounding_base}")
    return Verdicts(kind=kind, cells=tuple(cells), table=tuple(table_findings),
                    verified=all_verified and checked > 0, cells_checked=checked,
                    suggestions=tuple(suggestions))


def check_model_dof(residual_dof: float, policy: Any = None) -> Verdicts:
    """Check one model from its residual degrees of freedom (ACRO MinimumDoFCheck: `dof < t` fails)."""
    table = pa.table({"df_resid": [residual_dof]})
    return check_table(table, policy, kind="model")


def check_other_output(kind: str) -> Verdicts:
    """Verdicts for a figure or a text file: nothing to compute, a checker reads it. A figure's
    numbers are checked through its underlying table (`check_file_set` requires one)."""
    if kind not in ("figure", "text"):
        raise InvalidInput(f"unknown output kind {kind!r}; expected figure or text", field="kind")
    message = ("a figure is reviewed by hand; its numbers are checked in its underlying table"
               if kind == "figure" else "free text is reviewed by hand (no small numbers, no identifiers)")
    return Verdicts(kind=kind, table=(Finding("manual_review", REVIEW, message, "checker reads it"),))


# --- rules -----------------------------------------------------------------------------------

def _count_findings(value: float, evidence: CellEvidence | None, policy: Policy) -> list[Finding]:
    if value < 0:
        return [Finding("invalid_value", FAIL, f"a count cannot be negative ({value:g})", "fix the table")]
    findings = []
    if value != math.floor(value):
        findings.append(Finding("invalid_value", REVIEW, f"count {value:g} is not a whole number",
                                "explain (rounded? weighted?) in the request context"))
    persons = evidence.persons if evidence is not None else value
    source = "distinct persons" if evidence is not None else "shown count (unverified)"
    if value == 0 or persons == 0:
        findings.append(Finding("zero", FAIL,
                                "zero cell: reveals that nobody in the group has the attribute "
                                "(class disclosure) unless it is a structural zero",
                                "suppress, or explain in the request context that it is a structural zero"))
    # A zero cell is also below the threshold, and ACRO reports both (MinimumThresholdCheck and
    # PresenceOfZeroCheck); so do we, so that verdicts compare cell by cell.
    if persons < policy.threshold:
        findings.append(Finding("threshold", FAIL, f"{source} {persons:g} < threshold {policy.threshold}",
                                f"suppress, merge categories, or round to base {policy.rounding_base}"))
    return findings


def _magnitude_findings(evidence: CellEvidence | None, shown_count: float | None,
                        policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    if evidence is None:
        if shown_count is not None and shown_count < policy.threshold:
            findings.append(Finding("threshold", FAIL, f"shown count (unverified) {shown_count:g} < threshold "
                                                       f"{policy.threshold}", "suppress or merge categories"))
        return findings
    if evidence.persons < policy.threshold:
        findings.append(Finding("threshold", FAIL, f"distinct persons {evidence.persons} < threshold "
                                                   f"{policy.threshold}", "suppress or merge categories"))
    if evidence.missing:
        findings.append(Finding("missing", REVIEW, f"{evidence.missing} missing value(s) were ignored when "
                                                   f"computing {evidence.aggregate}; check this is expected",
                                "explain in the request context"))
    if evidence.aggregate not in LINEAR_AGGREGATES:
        # ACRO applies dominance only to linear aggregations; medians, spreads and extremes get
        # the threshold. An extreme is one person's value, so a checker looks at it.
        if evidence.aggregate in ("min", "max"):
            findings.append(Finding("extreme_value", REVIEW, f"a {evidence.aggregate} is one person's value",
                                    "check the value is not identifying (or top/bottom-code it)"))
        return findings
    if evidence.negative:
        # ACRO: dominance is not defined when negative values are present → review, not checked.
        findings.append(Finding("negative", REVIEW, f"{evidence.negative} negative value(s): dominance and p% "
                                                    "are not defined, checked by hand",
                                "review by hand (or shift values to be non-negative)"))
        return findings
    if evidence.total is None or not evidence.top:
        return findings
    total = _exact(evidence.total)
    top = [_exact(v) for v in evidence.top]
    top_n = sum(top[:policy.dominance_n], Fraction(0))
    if total > 0 and top_n / total >= _exact(policy.dominance_k):
        findings.append(Finding("dominance", FAIL,
                                f"the {policy.dominance_n} largest contributor(s) make "
                                f"{float(top_n / total):.1%} of the cell total (>= {policy.dominance_k:.0%})",
                                "suppress the cell, or remove/top-code the dominant contributions"))
    largest = top[0]
    second = top[1] if len(top) > 1 else Fraction(0)
    rest = total - largest - second
    # ACRO's PPercentCheck: with a largest contribution of 0 the ratio is taken as the rest
    # itself, so an all-zero cell fails (everyone's value is revealed as 0).
    ratio = rest if largest == 0 else rest / largest
    if ratio < _exact(policy.p_percent):
        findings.append(Finding("p_percent", FAIL,
                                f"the others' contributions are {float(ratio):.1%} of the largest "
                                f"(< {policy.p_percent:.0%}): the second largest contributor can estimate "
                                "the largest", "suppress the cell or merge categories"))
    return findings


def _check_model(table: pa.Table, policy: Policy, table_findings: list[Finding]) -> Verdicts:
    column = next((c for c in table.column_names if c.lower() in DOF_COLUMNS), None)
    if column is None:
        table_findings.append(Finding("dof", FAIL, "a model output must report its residual degrees of freedom "
                                                   f"(a column named one of {', '.join(DOF_COLUMNS)})",
                                      "add the residual degrees of freedom"))
        return Verdicts(kind="model", table=tuple(table_findings), verified=False)
    cells = []
    checked = 0
    for row, raw in enumerate(table.column(column).to_pylist()):
        value = as_float(raw)
        checked += 1
        if value is None or value < policy.threshold:
            shown = "missing" if value is None else f"{value:g}"
            cells.append(CellVerdict(row, column, (), raw, (Finding(
                "dof", FAIL, f"residual degrees of freedom {shown} < threshold {policy.threshold}: "
                             "the model is close to a lookup table of individuals",
                "fit on more data or fewer parameters"),), False))
    return Verdicts(kind="model", cells=tuple(cells), table=tuple(table_findings), verified=False,
                    cells_checked=checked)


def _secondary_findings(margins, shape: Shape, label_rows, values, policy: Policy,
                        table_findings: list[Finding]) -> list[CellVerdict]:
    try:
        intervals = suppressed_intervals(margins)
    except InconsistentRelease as err:
        table_findings.append(Finding("secondary_suppression", REVIEW, f"could not bound suppressed cells: {err}",
                                      "check by hand"))
        return []
    cells = []
    margin_row = next((r for r in range(len(label_rows)) if r not in margins.inner_row_index), None)
    margin_col = next((c for c in shape.measures if c not in margins.column_names), None)
    for interval in intervals:
        if interval.width >= policy.threshold:
            continue
        kind = interval.where[0]
        if kind == "cell":
            row, column = margins.inner_row_index[interval.where[1]], margins.column_names[interval.where[2]]
        elif kind == "row_total":
            row, column = margins.inner_row_index[interval.where[1]], margin_col
        elif kind == "column_total":
            row, column = margin_row, margins.column_names[interval.where[1]]
        else:
            row, column = margin_row, margin_col
        bounds = f"[{interval.low:g}, {interval.high:g}]"
        cells.append(CellVerdict(row, column, tuple(label_rows[row]), values[column][row], (Finding(
            "secondary_suppression", FAIL,
            f"suppressed value can be recomputed from the published cells and margins to within {bounds} "
            f"(width {interval.width:g} < {policy.threshold})",
            "suppress complementary cells in the same row and column, or drop the margins"),), False))
    return cells


def _content_findings(table: pa.Table, policy: Policy, extract_persons: int | None) -> list[Finding]:
    findings = []
    for key in person_key_columns(table):
        findings.append(Finding("person_key_column", FAIL, key.reason,
                                f"remove column {key.column!r}: person-level keys never leave the enclave"))
    formulas = formula_cells(table)
    if formulas:
        row, column, text = formulas[0]
        where = "column name" if row is None else f"row {row}, column {column!r}"
        findings.append(Finding("formula_injection", FAIL,
                                f"{len(formulas)} text cell(s) start like a spreadsheet formula "
                                f"(first: {where}: {text[:40]!r})",
                                "remove the leading =, +, -, @ or prefix the text with a quote"))
    if extract_persons is not None and extract_persons > 0:
        limit = policy.max_rows_share_of_persons * extract_persons
        if table.num_rows > limit:
            findings.append(Finding("too_many_rows", FAIL,
                                    f"{table.num_rows} rows for {extract_persons} persons in the extract "
                                    f"(> {policy.max_rows_share_of_persons:.0%}): close to a person-level listing",
                                    "aggregate further"))
    return findings


# --- helpers ---------------------------------------------------------------------------------

def _is_count_column(column: str, kind: str, evidence: Evidence | None) -> bool:
    # The aggregate that produced the column (from provenance) wins over the declared kind.
    aggregate = evidence.aggregate_of(column) if evidence is not None else None
    if aggregate is not None:
        return aggregate in COUNT_AGGREGATES
    return kind == "frequency" or is_count_name(column)


def _label_rows(table: pa.Table, shape: Shape) -> list[tuple]:
    if not shape.labels:
        return [() for _ in range(table.num_rows)]
    columns = [table.column(c).to_pylist() for c in shape.labels]
    return [tuple(values) for values in zip(*columns)]


def _merge_cells(cells: list[CellVerdict], extra: dict, label_rows, values) -> list[CellVerdict]:
    merged: dict[tuple[int, str], CellVerdict] = {}
    for cell in cells:
        key = (cell.row, cell.column)
        if key in merged:
            old = merged[key]
            merged[key] = CellVerdict(old.row, old.column, old.labels, old.value, old.findings + cell.findings,
                                      old.verified)
        else:
            merged[key] = cell
    for (row, column), findings in extra.items():
        old = merged.get((row, column))
        if old is None:
            merged[(row, column)] = CellVerdict(row, column, tuple(label_rows[row]), values[column][row],
                                                tuple(findings), False)
        else:
            merged[(row, column)] = CellVerdict(row, column, old.labels, old.value, old.findings + tuple(findings),
                                                old.verified)
    return sorted(merged.values(), key=lambda c: (c.row, c.column))


def _exact(number: float | int) -> Fraction:
    if isinstance(number, int):
        return Fraction(number)
    return Fraction(repr(float(number)))


__all__ = ["check_table", "check_model_dof", "KINDS", "label_key"]
