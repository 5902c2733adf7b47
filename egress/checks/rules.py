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
| dof | residual degrees of freedom < dof threshold (models; stddev/variance cells: persons - 1) | MinimumDoFCheck `dof < t` |
| secondary_suppression | a suppressed cell is not protected under the LP attack (egress.checks.secondary) | — |
| differencing | a difference with an earlier output isolates < threshold persons | — |

Ratios are compared exactly on the shortest decimal form of each number (`Fraction(repr(x))`),
so 90/100 against k=0.9 is exactly on the boundary, as a checker reading the table expects.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import pyarrow as pa

from egress.checks.content import formula_cells, person_key_columns
from egress.checks.differencing import Related, Side, find_differences
from egress.checks.evidence import COUNT_AGGREGATES, CellEvidence, Evidence, label_key
from egress.checks.policy import Policy, make_policy
from egress.checks.secondary import CellFacts, LinkedTable, audit_table, propose_table
from egress.checks.tables import Shape, as_float, is_count_name, split_columns
from egress.checks.verdicts import FAIL, REVIEW, CellVerdict, Finding, Verdicts
from egress.exceptions import InvalidInput

KINDS = ("frequency", "magnitude", "model")
LINEAR_AGGREGATES = frozenset({"sum", "avg", "mean"})
SPREAD_AGGREGATES = frozenset({"stddev", "stddev_samp", "stddev_pop", "var_samp", "var_pop", "variance"})
DOF_COLUMNS = ("df_resid", "dof", "residual_dof", "df_residual", "df_residuals")


def check_table(table: pa.Table, policy: Any = None, *, kind: str, evidence: Evidence | None = None,
                released: Sequence[pa.Table | Related] = (), label_columns: Sequence[str] | None = None,
                extract_persons: int | None = None) -> Verdicts:
    """Check one output table; see the module docstring and docs/checker-rules.md.

    kind:            `frequency` (every measure is a count), `magnitude` (sums, means...: count
                     columns are still checked as counts), or `model` (needs a dof column).
    evidence:        per-cell evidence from `egress.provenance` (with the true values of the
                     cells, `CellEvidence.value`); None → checked on what the table shows
                     and `verified=False`.
    released:        the permit's earlier outputs, released or pending (`Related`, or bare
                     tables): differencing and linked-table suppression audit.
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

    related = [r if isinstance(r, Related) else Related(r, f"earlier output #{i + 1}") for i, r in enumerate(released)]
    count_columns = [c for c in shape.measures if _is_count_column(c, kind, evidence)]
    label_rows = _label_rows(table, shape)
    values = {c: table.column(c).to_pylist() for c in shape.measures}
    shown_counts = values.get(count_columns[0]) if count_columns else None

    # each row's normalised label key, once (every rule looks its cells' evidence up)
    row_keys = [label_key(labels) for labels in label_rows] if evidence is not None else []

    def cell_evidence(row: int, column: str) -> CellEvidence | None:
        return evidence.cells.get((row_keys[row], column)) if evidence is not None else None

    def truth(row: int, column: str) -> float | None:
        ev = cell_evidence(row, column)
        if ev is not None and ev.value_known:
            return ev.value
        return as_float(values[column][row])

    def primary(row: int, column: str, value: float | None) -> list[Finding]:
        ev = cell_evidence(row, column)
        if column in count_columns:
            return _count_findings(value, ev, policy)
        shown = as_float(shown_counts[row]) if shown_counts is not None else None
        return _magnitude_findings(ev, shown, policy)

    found: dict[tuple[int, str], list[Finding]] = {}
    verified_cells: set[tuple[int, str]] = set()
    sensitive: dict[tuple[int, str], bool | None] = {}
    checked = 0
    all_verified = evidence is not None
    suppressed = 0
    off_base = 0
    for column in shape.measures:
        for row, raw in enumerate(values[column]):
            value = as_float(raw)
            ev = cell_evidence(row, column)
            if value is None and not (ev is not None and ev.value_known and ev.value is None):
                # Left empty by the author: a suppressed cell. Whether it needs protection is
                # decided on its evidence (None: unknown, it must be protected).
                suppressed += 1
                if ev is not None and ev.value_known:
                    sensitive[(row, column)] = any(f.status == FAIL for f in primary(row, column, ev.value))
                else:
                    sensitive[(row, column)] = None
                continue
            checked += 1
            if value is not None and not math.isfinite(value):
                found[(row, column)] = [Finding("invalid_value", FAIL, f"{value} is not a finite number", "fix the table")]
                all_verified = False
                continue
            if ev is None:
                all_verified = False
            else:
                verified_cells.add((row, column))
            if value is None:
                # A genuinely empty cell (the mean of no values): it still describes its persons.
                findings = _empty_findings(ev, policy)
            else:
                findings = primary(row, column, value)
                if column in count_columns and (value != math.floor(value) or int(value) % policy.rounding_base):
                    off_base += 1
            sensitive[(row, column)] = any(f.status == FAIL for f in findings)
            if findings:
                found[(row, column)] = findings

    if evidence is None and any(c not in count_columns for c in shape.measures):
        table_findings.append(Finding(
            "no_evidence", REVIEW,
            "no provenance: dominance and p% could not be checked on per-person contributions, "
            "and the threshold only on a count column shown in the table",
            "submit the table with its provenance SQL"))

    # Differencing against every earlier output (true values of this table where known).
    if policy.check_differencing and related:
        new_side = _side(table, shape, count_columns, truth, evidence, label_rows)
        sides = [_related_side(r, kind, shape) for r in related]
        usable = [(i, s) for i, s in enumerate(sides) if s is not None]
        for d in find_differences(new_side, [s for _, s in usable], policy.threshold):
            item = related[usable[d.related][0]]
            key = (d.row, d.column)
            if values[d.column][d.row] is None and key not in found:
                sensitive[key] = True  # would disclose if recovered: the audit must protect it
                continue
            found.setdefault(key, []).append(Finding(
                "differencing", FAIL,
                f"{d.detail} in {item.status} output {item.name}: the difference reveals a small group "
                f"(< {policy.threshold})", "suppress or merge, or align with the earlier output"))
            sensitive[key] = True

    facts = CellFacts(truth=truth, sensitive=lambda r, c: sensitive.get((r, c)),
                      is_count=lambda c: c in count_columns,
                      additive=lambda c: _additive(c, evidence))
    linked = [LinkedTable(r.table, *_layout(r, kind, shape), r.name) for r in related]
    protect_all = evidence is None
    if policy.check_secondary_suppression and suppressed:
        cell_findings, extra = audit_table(table, shape.labels, shape.measures, facts, policy, linked, protect_all)
        table_findings.extend(extra)
        for row, column, finding in cell_findings:
            found.setdefault((row, column), []).append(finding)

    cells = tuple(CellVerdict(row, column, tuple(label_rows[row]), values[column][row], tuple(findings),
                              (row, column) in verified_cells)
                  for (row, column), findings in sorted(found.items()))
    suggestions = []
    if off_base:
        suggestions.append(f"{off_base} count cell(s) are not multiples of {policy.rounding_base}: "
                           f"consider rounding counts to base {policy.rounding_base}")
    verdicts = Verdicts(kind=kind, cells=cells, table=tuple(table_findings),
                        verified=all_verified and checked > 0, cells_checked=checked,
                        suggestions=tuple(suggestions))
    if any(f.rule in _SUPPRESSIBLE and f.status == FAIL for c in cells for f in c.findings) \
            or any(f.rule == "secondary_suppression" and f.status == FAIL for f in table_findings):
        pattern = propose_table(table, shape.labels, shape.measures, facts, policy, linked, protect_all)
        if pattern is not None:
            verdicts = Verdicts(kind=verdicts.kind, cells=verdicts.cells, table=verdicts.table,
                                verified=verdicts.verified, cells_checked=verdicts.cells_checked,
                                suggestions=verdicts.suggestions, suppression=pattern)
    return verdicts


# Cell rules that suppressing the cell resolves (the proposal covers them).
_SUPPRESSIBLE = frozenset({"threshold", "zero", "dominance", "p_percent", "dof", "secondary_suppression",
                           "differencing"})


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
    findings += _person_findings(persons, value == 0, source, policy,
                                 f"suppress, merge categories, or round to base {policy.rounding_base}")
    return findings


def _person_findings(persons: float, zero: bool, source: str, policy: Policy, action: str) -> list[Finding]:
    """Threshold and zero rules on a cell's persons. A zero cell is also below the threshold,
    and ACRO reports both (MinimumThresholdCheck and PresenceOfZeroCheck); so do we, so that
    verdicts compare cell by cell."""
    findings = []
    if policy.zeros_are_disclosive and (zero or persons == 0):
        findings.append(Finding("zero", FAIL,
                                "zero cell: reveals that nobody in the group has the attribute "
                                "(class disclosure) unless it is a structural zero",
                                "suppress, or explain in the request context that it is a structural zero"))
    if persons < policy.threshold:
        findings.append(Finding("threshold", FAIL, f"{source} {persons:g} < threshold {policy.threshold}", action))
    return findings


def _empty_findings(evidence: CellEvidence, policy: Policy) -> list[Finding]:
    """An empty (NULL) result cell, e.g. the mean of a group without values: its group of
    persons is described all the same ("these persons have no value"), so it has a person
    count of its own and the threshold and zero rules apply to it."""
    return _person_findings(evidence.persons, False, "distinct persons (empty cell)", policy,
                            "suppress or merge categories")


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
    if evidence.missing and policy.check_missing_values:
        findings.append(Finding("missing", REVIEW, f"{evidence.missing} missing value(s) were ignored when "
                                                   f"computing {evidence.aggregate}; check this is expected",
                                "explain in the request context"))
    if evidence.aggregate in SPREAD_AGGREGATES and policy.check_dof:
        # A standard deviation or variance of n values has n - 1 degrees of freedom (ACRO's
        # MinimumDoFCheck applies to these statistics as to models).
        dof = evidence.persons - 1
        if dof < policy.dof_threshold:
            findings.append(Finding("dof", FAIL, f"{evidence.aggregate} of {evidence.persons} person(s) has "
                                                 f"{dof} degrees of freedom < {policy.dof_threshold}",
                                    "suppress the cell or merge categories"))
    if evidence.aggregate not in LINEAR_AGGREGATES:
        # ACRO applies dominance only to linear aggregations; medians, spreads and extremes get
        # the threshold. An extreme is one person's value, so a checker looks at it.
        if evidence.aggregate in ("min", "max"):
            findings.append(Finding("extreme_value", REVIEW, f"a {evidence.aggregate} is one person's value",
                                    "check the value is not identifying (or top/bottom-code it)"))
        return findings
    if evidence.negative and (policy.check_dominance or policy.check_p_percent):
        # ACRO: dominance is not defined when negative values are present → review, not checked.
        findings.append(Finding("negative", REVIEW, f"{evidence.negative} negative value(s): dominance and p% "
                                                    "are not defined, checked by hand",
                                "review by hand (or shift values to be non-negative)"))
        return findings
    if evidence.total is None or not evidence.top:
        return findings
    total, top = evidence.total, evidence.top
    top_n = sum(top[:policy.dominance_n])
    if policy.check_dominance and total > 0 and _decide(
            top_n / total - policy.dominance_k,
            lambda: sum(map(_exact, top[:policy.dominance_n]), Fraction(0)) / _exact(total)
            >= _exact(policy.dominance_k)):
        findings.append(Finding("dominance", FAIL,
                                f"the {policy.dominance_n} largest contributor(s) make "
                                f"{top_n / total:.1%} of the cell total (>= {policy.dominance_k:.0%})",
                                "suppress the cell, or remove/top-code the dominant contributions"))
    # ACRO's PPercentCheck: with a largest contribution of 0 the ratio is taken as the rest
    # itself, so an all-zero cell fails (everyone's value is revealed as 0).

    def ratio(number=float) -> float | Fraction:
        largest, second = number(top[0]), number(top[1]) if len(top) > 1 else number(0)
        rest = number(total) - largest - second
        return rest if largest == 0 else rest / largest

    if policy.check_p_percent and not _decide(ratio() - policy.p_percent,
                                              lambda: ratio(_exact) >= _exact(policy.p_percent)):
        findings.append(Finding("p_percent", FAIL,
                                f"the others' contributions are {ratio():.1%} of the largest "
                                f"(< {policy.p_percent:.0%}): the second largest contributor can estimate "
                                "the largest", "suppress the cell or merge categories"))
    return findings


def _decide(difference: float, exact) -> bool:
    """`difference >= 0`, in floating point when it is clearly away from 0, else exactly
    (`exact()`, on the shortest decimal form of each number: 90/100 against k=0.9 is on the
    boundary, as a checker reading the table expects)."""
    if abs(difference) > 1e-9:
        return difference > 0
    return exact()


def _check_model(table: pa.Table, policy: Policy, table_findings: list[Finding]) -> Verdicts:
    column = next((c for c in table.column_names if c.lower() in DOF_COLUMNS), None)
    if not policy.check_dof:
        table_findings.append(Finding("manual_review", REVIEW, "the dof rule is switched off for this permit",
                                      "checker reads the model output"))
        return Verdicts(kind="model", table=tuple(table_findings), verified=False)
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
        if value is None or value < policy.dof_threshold:
            shown = "missing" if value is None else f"{value:g}"
            cells.append(CellVerdict(row, column, (), raw, (Finding(
                "dof", FAIL, f"residual degrees of freedom {shown} < threshold {policy.dof_threshold}: "
                             "the model is close to a lookup table of individuals",
                "fit on more data or fewer parameters"),), False))
    return Verdicts(kind="model", cells=tuple(cells), table=tuple(table_findings), verified=False,
                    cells_checked=checked)


# --- differencing and linked tables: how the earlier outputs are read -------------------------

def _side(table: pa.Table, shape: Shape, count_columns, value, evidence: Evidence | None, label_rows) -> Side:
    keys = [label_key(labels) for labels in label_rows] if evidence is not None else []

    def persons(row: int, column: str):
        ev = evidence.cells.get((keys[row], column)) if evidence is not None else None
        return ev.person_set if ev is not None else None

    return Side(table, shape.labels, tuple(count_columns),
                tuple(c for c in shape.measures if c not in count_columns), value, persons)


def _layout(item: Related, kind: str, own: Shape) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Label and measure columns of an earlier output (its own evidence, else the new table's
    label columns where it has them, else its non-numeric columns)."""
    labels = item.label_columns or (item.evidence.label_columns if item.evidence is not None else None)
    if labels is None and all(c in item.table.column_names for c in own.labels):
        labels = [c for c in own.labels] + [c for c in split_columns(item.table).labels if c not in own.labels]
    shape = split_columns(item.table, labels)
    return shape.labels, shape.measures


def _related_side(item: Related, kind: str, own: Shape) -> Side | None:
    labels, measures = _layout(item, kind, own)
    if not measures:
        return None
    table = item.table
    label_rows = _label_rows(table, Shape(labels, measures))
    counts = tuple(c for c in measures if _is_count_column(c, kind, item.evidence))
    columns = {c: table.column(c).to_pylist() for c in measures}
    return _side(table, Shape(labels, measures), counts, lambda r, c: as_float(columns[c][r]), item.evidence,
                 label_rows)


def _additive(column: str, evidence: Evidence | None) -> bool | None:
    aggregate = evidence.aggregate_of(column) if evidence is not None else None
    if aggregate is None:
        return None
    return aggregate in COUNT_AGGREGATES or aggregate == "sum"


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


def _exact(number: float | int) -> Fraction:
    if isinstance(number, int):
        return Fraction(number)
    return Fraction(repr(float(number)))


__all__ = ["check_table", "check_model_dof", "KINDS"]
