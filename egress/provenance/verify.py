"""The provenance check the review workflow calls: re-execute, compare, derive evidence.

`verify_provenance(table, sql, extract_dir, policy=...)` accepts the SQL (`gate`), re-runs it
on the extract in one sandbox session (`runner`), decides whether the submitted table is its
result (`egress.checks.compare`: same columns, rows in any order, numbers to the precision
shown, suppressed and rounded cells allowed) and, when it is, derives per-cell evidence
(`evidence`). A mismatch is returned, not raised (`check_match(result.match)` raises
`TableMismatch`). `check_with_provenance` adds the disclosure rules (`check_table`).

Must not import the web layer or the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from egress.checks import check_table
from egress.checks.compare import Match, check_match, compare
from egress.checks.evidence import Evidence
from egress.checks.policy import make_policy
from egress.exceptions import ExtractUnavailable
from egress.provenance.evidence import Unsupported, plan_evidence, run_evidence
from egress.provenance.gate import check_sql
from egress.provenance.runner import Sandbox
from egress.sandbox import read_extract

log = logging.getLogger("spe.egress.provenance")


@dataclass(frozen=True)
class Provenance:
    """Everything the service needs from one re-execution."""

    recomputed: pa.Table
    match: Match
    evidence: Evidence | None
    evidence_reason: str = ""           # why evidence is unavailable ("" when available)
    extract_persons: int | None = None
    label_columns: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.match.equal and self.evidence is not None


def verify_provenance(table: pa.Table, sql: str, extract_dir: Path | str, *, policy: Any = None,
                      memory_limit: str | None = None, timeout_seconds: float | None = None,
                      threads: int | None = None, shared: bool = True) -> Provenance:
    """Re-execute, compare and derive evidence in one sandbox session (by default on the
    pooled database of the extract version). Does not raise on a mismatch (the service
    stores and flags it; `check_match(result.match)` raises)."""
    policy = make_policy(policy)
    query = check_sql(sql)
    with Sandbox(extract_dir, memory_limit=memory_limit, threads=threads,
                 timeout_seconds=timeout_seconds, shared=shared) as sandbox:
        recomputed = sandbox.run(query)
        plan = None
        reason = ""
        try:
            plan = plan_evidence(query, recomputed, sandbox.tables)
        except Unsupported as err:
            reason = str(err)
            log.info("provenance outside the supported form, no evidence: %s", reason)
        labels = plan.label_names if plan else None
        match = compare(table, recomputed, label_columns=labels, rounding_base=policy.rounding_base)
        evidence = None
        if plan is not None and match.equal:
            try:
                evidence = run_evidence(sandbox, plan, max(policy.dominance_n, 2), recomputed)
            except Unsupported as err:
                reason = str(err)
        elif plan is not None:
            reason = "the table does not match its query"
        return Provenance(recomputed, match, evidence, reason, sandbox.persons, tuple(labels or ()))


def derive_evidence(sql: str, extract_dir: Path | str, *, top_n: int = 2, memory_limit: str | None = None,
                    timeout_seconds: float | None = None) -> Evidence:
    """Evidence for the result of `sql`; raises `Unsupported` outside the supported form."""
    query = check_sql(sql)
    with Sandbox(extract_dir, memory_limit=memory_limit, timeout_seconds=timeout_seconds) as sandbox:
        recomputed = sandbox.run(query)
        return run_evidence(sandbox, plan_evidence(query, recomputed, sandbox.tables), max(top_n, 2))


def check_with_provenance(table: pa.Table, policy: Any = None, *, kind: str, sql: str | None = None,
                          extract_dir: Path | str | None = None, released: Sequence[pa.Table] = (),
                          memory_limit: str | None = None, timeout_seconds: float | None = None):
    """`(Verdicts, Provenance | None)` for one submitted table: with `sql`, re-execute it on the
    extract, refuse a table that is not its result (`TableMismatch`), and check with the
    derived evidence; without `sql`, check what the table shows (unverified), still using the
    extract's person count for the `too_many_rows` rule when `extract_dir` is given."""
    if sql is None:
        persons = read_extract(extract_dir).persons if extract_dir is not None else None
        return check_table(table, policy, kind=kind, released=released, extract_persons=persons), None
    if extract_dir is None:
        raise ExtractUnavailable("the permit has no current extract to re-execute the provenance SQL on")
    result = verify_provenance(table, sql, extract_dir, policy=policy, memory_limit=memory_limit,
                               timeout_seconds=timeout_seconds)
    check_match(result.match)
    verdicts = check_table(table, policy, kind=kind, evidence=result.evidence, released=released,
                           label_columns=result.label_columns or None, extract_persons=result.extract_persons)
    return verdicts, result
