"""Automated disclosure checks of egress outputs (issue 4), as pure functions.

Interface for the egress service (the rest of the package is internal):

    from egress.checks.files import load_output, check_file_set
    out = load_output(name, data, permit.egress)          # bytes -> LoadedOutput | FileRefused

    from egress.provenance import check_with_provenance  # the I/O step (DuckDB on the extract)
    verdicts, provenance = check_with_provenance(
        out.table, permit.egress, kind="frequency" | "magnitude" | "model",
        sql=provenance_sql_or_None, extract_dir=current_extract_dir(settings, permit.id),
        released=[tables already released under the permit])
    # raises TableMismatch (tampered/stale), ProvenanceRefused (SQL outside the extract),
    # ProvenanceLimit (time/memory), ExtractUnavailable (no extract): all in egress.exceptions

    verdicts.status            # "pass" | "review" | "fail"
    verdicts.verified          # True when every cell had evidence from the provenance
    verdicts.to_dict()         # JSON for storage and the checker page (cells, rules, actions)

or, without the extract, `check_table(table, policy, kind=..., evidence=None, released=...)`;
figures and text: `check_other_output("figure" | "text")` (a review finding, nothing computed).
`suppression.audit` bounds suppressed cells of a table with margins (n-way, linked with earlier
outputs); `verdicts.suppression` is the pattern SPE proposes, `secondary.apply_pattern` applies it.

This package does no I/O and must not import DuckDB, the web layer or the database.
"""

from egress.checks.evidence import CellEvidence, Evidence, label_key
from egress.checks.policy import Policy, make_policy
from egress.checks.rules import KINDS, check_model_dof, check_other_output, check_table
from egress.checks.verdicts import CellVerdict, Finding, Verdicts

__all__ = ["CellEvidence", "CellVerdict", "Evidence", "Finding", "KINDS", "Policy", "Verdicts",
           "check_model_dof", "check_other_output", "check_table", "label_key", "make_policy"]
