"""ACRO's policy vocabulary for a permit's egress rules (pure; no I/O but reading one YAML file).

ACRO (SACRO, the statistical output checker many TREs run) configures its rules with a small
YAML file (`acro/default.yaml`). An HDAB that already writes those files can hand one to
`spe permit policy PERMIT --acro FILE`, or reference it from the permit YAML
(`egress: {acro_policy: acro.yaml}`, a path relative to the permit file). Either way the values
land in the permit document's `egress` section under SPE's names, so the stored permit is the
single source of truth and its digest changes with the policy.

| ACRO key | SPE egress key | range |
| `safe_threshold` | `threshold` | integer 1..1000 |
| `safe_dof_threshold` | `dof_threshold` | integer 1..1000 |
| `safe_nk_n` | `dominance_n` | integer 1..10 |
| `safe_nk_k` | `dominance_k` | number in (0, 1] |
| `safe_pratio_p` | `p_percent` | number in (0, 1) (ACRO: a fraction, 0.1 = 10 %) |
| `zeros_are_disclosive` | `zeros_are_disclosive` | boolean |
| `check_missing_values` | `check_missing_values` | boolean |
| `survival_safe_threshold` | (none: SPE has no survival-table rule; accepted and ignored) | integer |

Anything else is refused with the key named; a value out of range too. Nothing is stored
until the whole file is valid.
"""

from __future__ import annotations

from pathlib import Path

from hub.exceptions import InvalidInput
from hub.yamlio import load_yaml_file, validate_schema

# ACRO key -> SPE egress key (None: known to ACRO, not used by SPE).
ACRO_KEYS: dict[str, str | None] = {
    "safe_threshold": "threshold",
    "safe_dof_threshold": "dof_threshold",
    "safe_nk_n": "dominance_n",
    "safe_nk_k": "dominance_k",
    "safe_pratio_p": "p_percent",
    "zeros_are_disclosive": "zeros_are_disclosive",
    "check_missing_values": "check_missing_values",
    "survival_safe_threshold": None,
}

_int = {"type": "integer", "minimum": 1, "maximum": 1000}
ACRO_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "safe_threshold": _int,
        "safe_dof_threshold": _int,
        "safe_nk_n": {"type": "integer", "minimum": 1, "maximum": 10},
        "safe_nk_k": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "safe_pratio_p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "zeros_are_disclosive": {"type": "boolean"},
        "check_missing_values": {"type": "boolean"},
        "survival_safe_threshold": _int,
    },
}


def egress_from_acro(doc: dict) -> dict:
    """SPE egress keys from an ACRO policy mapping; InvalidInput naming the bad key or value."""
    if not isinstance(doc, dict):
        raise InvalidInput("an ACRO policy is a YAML mapping", field="acro")
    unknown = sorted(str(k) for k in doc if k not in ACRO_KEYS)
    if unknown:
        raise InvalidInput(f"unknown ACRO policy key(s) {unknown}; known: {sorted(ACRO_KEYS)}", field=unknown[0])
    validate_schema(doc, ACRO_SCHEMA, "ACRO policy")
    return {ACRO_KEYS[k]: v for k, v in doc.items() if ACRO_KEYS[k] is not None}


def load_acro_policy(path: str | Path) -> dict:
    """Read and map an ACRO policy YAML file (size-bounded, safe loader)."""
    return egress_from_acro(load_yaml_file(path, "ACRO policy"))


def merge_acro(document: dict, egress: dict, source: str, *, override: bool) -> dict:
    """A copy of a permit `document` whose `egress` section takes the ACRO values `egress`.

    override=True (the `spe permit policy` command): the file's values replace the permit's.
    override=False (a permit YAML referencing the file): a key set in both places to
    different values is refused (which one would the HDAB mean?). `source` names the file.
    """
    out = dict(document)
    own = {k: v for k, v in (document.get("egress") or {}).items() if k != "acro_policy"}
    for key, value in egress.items():
        if not override and key in own and own[key] != value:
            raise InvalidInput(f"egress.{key} is {own[key]!r} in the permit but {value!r} in the ACRO policy "
                               f"{source}: set it in one place", field=f"egress.{key}")
    merged = dict(own, **egress)
    merged["acro_policy"] = source
    out["egress"] = merged
    return out


def resolve_acro_reference(document: dict, base_dir: Path) -> dict:
    """Inline the ACRO file a permit YAML references (`egress.acro_policy`, relative to the
    permit file); a document without a reference is returned unchanged."""
    egress = document.get("egress")
    if not isinstance(egress, dict) or not egress.get("acro_policy"):
        return document
    reference = egress["acro_policy"]
    if not isinstance(reference, str):
        raise InvalidInput("egress.acro_policy is the path of an ACRO policy YAML file", field="egress.acro_policy")
    path = Path(reference)
    if not path.is_absolute():
        path = base_dir / path
    return merge_acro(document, load_acro_policy(path), path.name, override=False)
