"""The disclosure-control parameters a check runs with, mirroring the permit's egress policy.

`make_policy(obj_or_dict)` accepts the hub's `EgressPolicy` (any object with the attributes
below), a plain dict (e.g. from JSON), or `None` for the defaults. Values are validated so a
broken permit cannot silently weaken the checks (fail closed).

Pure: imports nothing from the service, DuckDB or the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from egress.exceptions import InvalidInput

MIB = 1024 * 1024


@dataclass(frozen=True)
class Policy:
    """Disclosure-control parameters (defaults = ACRO's defaults = the permit defaults).

    threshold:      minimum distinct persons per cell; also the minimum residual degrees of
                    freedom of a model and the minimum interval width of a suppressed cell.
    dominance_n/k:  (n, k) rule: the n largest per-person contributions must stay below
                    share k of the cell total (`ratio >= k` fails, as ACRO's NKCheck).
    p_percent:      p% rule as a fraction: (total - largest - second) / largest < p fails.
    rounding_base:  suggested rounding base for counts.
    max_file_bytes: largest output file accepted.
    max_rows_share_of_persons: a table with more rows than this share of the extract's
                    persons is refused (it is close to a person-level listing).
    dof_threshold:  minimum residual degrees of freedom of a model, and of a standard
                    deviation or variance cell (persons - 1).
    zeros_are_disclosive: a zero count cell fails (ACRO's PresenceOfZeroCheck).
    check_missing_values: NULL measure values ignored by an aggregate send the cell to review.
    require_provenance: a table without verified evidence cannot be approved (workflow).
    check_*:        switch a rule off for this permit (on by default; documented per rule in
                    docs/checker-rules.md).

    The ACRO names (`safe_threshold`, `safe_dof_threshold`, `safe_nk_n`, `safe_nk_k`,
    `safe_pratio_p`) are accepted by `make_policy` for the same parameters.
    """

    threshold: int = 10
    dominance_n: int = 2
    dominance_k: float = 0.9
    p_percent: float = 0.1
    rounding_base: int = 5
    max_file_bytes: int = 16 * MIB
    max_rows_share_of_persons: float = 0.5
    dof_threshold: int = 10
    zeros_are_disclosive: bool = True
    check_missing_values: bool = True
    require_provenance: bool = True
    check_dominance: bool = True
    check_p_percent: bool = True
    check_dof: bool = True
    check_secondary_suppression: bool = True
    check_differencing: bool = True

    def __post_init__(self) -> None:
        _require(isinstance(self.threshold, int) and self.threshold >= 1, "threshold", self.threshold,
                 "an integer >= 1")
        _require(isinstance(self.dominance_n, int) and self.dominance_n >= 1, "dominance_n",
                 self.dominance_n, "an integer >= 1")
        _require(_is_number(self.dominance_k) and 0 < self.dominance_k <= 1, "dominance_k", self.dominance_k, "a share in (0, 1]")
        _require(_is_number(self.p_percent) and 0 <= self.p_percent < 1, "p_percent", self.p_percent, "a fraction in [0, 1)")
        _require(isinstance(self.rounding_base, int) and self.rounding_base >= 1, "rounding_base",
                 self.rounding_base, "an integer >= 1")
        _require(isinstance(self.max_file_bytes, int) and self.max_file_bytes >= 1, "max_file_bytes",
                 self.max_file_bytes, "a positive number of bytes")
        _require(_is_number(self.max_rows_share_of_persons) and 0 < self.max_rows_share_of_persons <= 1, "max_rows_share_of_persons",
                 self.max_rows_share_of_persons, "a share in (0, 1]")
        _require(isinstance(self.dof_threshold, int) and self.dof_threshold >= 1, "dof_threshold",
                 self.dof_threshold, "an integer >= 1")
        for name in _SWITCHES:
            _require(isinstance(getattr(self, name), bool), name, getattr(self, name), "true or false")


_SWITCHES = ("zeros_are_disclosive", "check_missing_values", "require_provenance", "check_dominance",
             "check_p_percent", "check_dof", "check_secondary_suppression", "check_differencing")
# ACRO's names for the same parameters (hub.permits.acro maps ACRO policy files).
ACRO_NAMES = {"safe_threshold": "threshold", "safe_dof_threshold": "dof_threshold", "safe_nk_n": "dominance_n",
              "safe_nk_k": "dominance_k", "safe_pratio_p": "p_percent"}


_FIELDS = tuple(f.name for f in fields(Policy))


def make_policy(source: Any = None) -> Policy:
    """Build a `Policy` from the permit's `EgressPolicy`, a dict, a `Policy` or `None` (defaults).

    Unknown dict keys (e.g. `reviewers_required`) are ignored: they belong to the workflow.
    """
    if source is None:
        return Policy()
    if isinstance(source, Policy):
        return source
    if isinstance(source, dict):
        source = {ACRO_NAMES.get(k, k): v for k, v in source.items()}
        values = {k: source[k] for k in _FIELDS if k in source}
    else:
        values = {k: getattr(source, k) for k in _FIELDS if hasattr(source, k)}
    for name in ("threshold", "dominance_n", "rounding_base", "max_file_bytes", "dof_threshold"):
        if name in values and isinstance(values[name], float) and values[name].is_integer():
            values[name] = int(values[name])
    return Policy(**values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise InvalidInput(f"{value!r} is not {expected}", field=f"egress.{name}")
