"""Provenance re-execution: re-run a table's SQL against the permit's extract, inside the enclave.

One job per module:

- `gate`: which SQL is accepted (exactly one SELECT, on DuckDB's own parser) and DuckDB's
  parse tree of it (`json_serialize_sql`); pure, no extract;
- `runner`: runs accepted SQL in the egress DuckDB sandbox (`egress.sandbox`: read-only
  extract, no other file, no extensions, locked settings, memory limit with spill, time
  budget) with a row limit, and words the sandbox's refusals for provenance;
- `evidence`: the evidence rewrite (distinct persons and per-person contributions per cell)
  for queries in the supported form;
- `verify`: the one call the review workflow makes (re-execute, compare with the submitted
  table, derive evidence, check).

Everything the rest of egress uses is importable from here.
"""

from egress.checks.compare import Match, Mismatch, check_match, compare
from egress.provenance.evidence import PERSON_KEY, Unsupported, plan_evidence, run_evidence
from egress.provenance.gate import MAX_SQL_CHARS, check_sql
from egress.provenance.runner import MAX_RESULT_ROWS, Sandbox, clear_caches, reexecute
from egress.provenance.verify import Provenance, check_with_provenance, derive_evidence, verify_provenance

__all__ = ["MAX_RESULT_ROWS", "MAX_SQL_CHARS", "PERSON_KEY", "Match", "Mismatch", "Provenance", "Sandbox",
           "Unsupported", "check_match", "check_sql", "check_with_provenance", "clear_caches", "compare",
           "derive_evidence", "plan_evidence", "reexecute", "run_evidence", "verify_provenance"]
