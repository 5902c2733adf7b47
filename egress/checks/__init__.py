"""Automated disclosure checks of egress outputs (issue 4), as pure functions.

Interface for the egress service (everything else in the package is internal):

    from egress.checks import check_table, make_policy, Evidence, CellEvidence, Verdicts
    verdicts = check_table(table, permit.egress, kind="frequency", evidence=ev,
                           released=[...], extract_persons=manifest["persons"])
    verdicts.status            # "pass" | "review" | "fail"
    verdicts.to_dict()         # JSON for storage and the checker page

    from egress.checks.files import load_output   # bytes + name -> LoadedOutput (or FileRefused)
    from egress.checks.suppression import attack, suppressed_intervals

Evidence comes from `egress.provenance` (DuckDB re-execution). This package does no I/O and
must not import DuckDB, the web layer or the database.
"""

from egress.checks.evidence import CellEvidence, Evidence, label_key
from egress.checks.policy import Policy, make_policy
from egress.checks.rules import KINDS, check_model_dof, check_table
from egress.checks.verdicts import CellVerdict, Finding, Verdicts

__all__ = ["CellEvidence", "CellVerdict", "Evidence", "Finding", "KINDS", "Policy", "Verdicts",
           "check_model_dof", "check_table", "label_key", "make_policy"]
