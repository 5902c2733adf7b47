"""The one door from the workflow to the disclosure checks (`egress.checks`, `egress.provenance`).

`check_submission(files, kind=..., provenance=..., policy=..., extract_dir=..., released=...)`
parses every submitted file under the file policy, re-executes each table's provenance SQL
against the permit's extract (a tampered table raises `TableMismatch`), derives per-cell
evidence, and runs `check_table` with the earlier releases of the permit (differencing).
It returns one `FileCheck` per file or raises a refusal naming the file and the reason;
nothing is stored here. Keeping every call to the checks in this module makes a change of
their interface a one-place change.

Must not import the database or the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from egress.checks import check_other_output, check_table, make_policy
from egress.checks.files import TABLE_TYPES, LoadedOutput, check_file_set, load_output
from egress.checks.verdicts import FAIL, PASS, REVIEW, worst
from egress.exceptions import FileRefused, ProvenanceRefused
from egress.provenance import check_match, verify_provenance
from hub.exceptions import InvalidInput, Refused

# What the author says the output is; tables in figure/text requests are checked as counts.
KINDS = ("frequency", "magnitude", "model", "figure", "text")
_TABLE_KIND = {"frequency": "frequency", "magnitude": "magnitude", "model": "model",
               "figure": "frequency", "text": "frequency"}
MAX_FILES = 20
# Content rules no reviewer may wave through: the file is refused at the door (4xx) with the
# rule's reason, and nothing is stored (issue 4, "Bad input").
REFUSED_RULES = ("formula_injection", "person_key_column", "too_many_rows")


@dataclass(frozen=True)
class FileCheck:
    name: str
    file_type: str
    data: bytes
    status: str            # pass | review | fail
    verified: bool         # re-executed, matched and backed by evidence
    result: dict           # JSON stored with the file and rendered on the checker page
    provenance_sql: str | None = None


def parse_released(files: Sequence[tuple[str, bytes]]) -> list[pa.Table]:
    """Tables already released under the permit, for differencing (unparseable ones skipped)."""
    tables = []
    for name, data in files:
        try:
            loaded = load_output(name, data, make_policy({"max_file_bytes": max(len(data), 1)}))
        except Refused:
            continue
        if loaded.table is not None:
            tables.append(loaded.table)
    return tables


def check_submission(files: Sequence[tuple[str, bytes]], *, kind: str, provenance: dict[str, str],
                     policy, extract_dir: Path | None, extract_persons: int | None,
                     released: Sequence[pa.Table] = (), timeout_seconds: float | None = None,
                     memory_limit: str | None = None) -> list[FileCheck]:
    if kind not in KINDS:
        raise InvalidInput(f"unknown output kind {kind!r}; expected one of {', '.join(KINDS)}", field="kind")
    if not files:
        raise InvalidInput("no file submitted", field="files")
    if len(files) > MAX_FILES:
        raise InvalidInput(f"{len(files)} files in one request; at most {MAX_FILES}", field="files")
    names = [name for name, _ in files]
    if len(set(names)) != len(names):
        raise InvalidInput("two files have the same name", field="files")
    unknown = set(provenance) - set(names)
    if unknown:
        raise InvalidInput(f"provenance SQL given for files not submitted: {sorted(unknown)}", field="provenance_sql")
    check_file_set(names)
    policy = make_policy(policy)
    loaded: list[LoadedOutput] = [load_output(name, data, policy) for name, data in files]
    if kind in ("frequency", "magnitude", "model") and not any(item.is_table for item in loaded):
        raise FileRefused(f"a {kind} output must include its table (csv, parquet or json)", field=names[0])
    for item in loaded:
        if item.name in provenance and not item.is_table:
            raise InvalidInput(f"provenance SQL only applies to tables, not {item.file_type}", field=item.name)
    results = []
    for (name, data), item in zip(files, loaded):
        if not item.is_table:
            verdicts = check_other_output("figure" if item.is_figure else "text")
            result = dict(verdicts.to_dict(), note="not a table: a checker must read it in full")
            results.append(FileCheck(name, item.file_type, data, verdicts.status, False, result))
            continue
        sql = provenance.get(name)
        evidence, persons, match, evidence_reason = None, extract_persons, None, "no provenance SQL submitted"
        if sql:
            if extract_dir is None:
                raise ProvenanceRefused("the permit has no extract to re-execute the provenance SQL against")
            prov = verify_provenance(item.table, sql, extract_dir, policy=policy,
                                     timeout_seconds=timeout_seconds, memory_limit=memory_limit)
            check_match(prov.match)  # a tampered or stale table is refused here
            evidence, match, evidence_reason = prov.evidence, prov.match.to_dict(), prov.evidence_reason
            persons = prov.extract_persons if prov.extract_persons is not None else extract_persons
        verdicts = check_table(item.table, policy, kind=_TABLE_KIND[kind], evidence=evidence,
                               released=list(released), extract_persons=persons)
        for finding in verdicts.table:
            if finding.rule in REFUSED_RULES:
                raise FileRefused(f"{finding.rule}: {finding.message} ({finding.action})", field=name)
        result = verdicts.to_dict()
        result["provenance"] = {"submitted": bool(sql), "match": match, "evidence_reason": evidence_reason}
        results.append(FileCheck(name, item.file_type, data, verdicts.status, verdicts.verified, result, sql))
    return results


def overall_status(checks: Sequence[FileCheck]) -> str:
    return worst(c.status for c in checks) if checks else PASS


MAX_PREVIEW_TEXT_CHARS = 50_000


def table_preview(name: str, data: bytes, max_rows: int = 200) -> dict | None:
    """What a checker sees of a stored file on the request page: a table's columns and first
    rows, a text's (or SVG's source) text, a PNG's bytes (base64, shown as an image)."""
    file_type = name.rsplit(".", 1)[-1].lower()
    if file_type == "png":
        import base64

        return {"png_base64": base64.b64encode(data).decode()}
    if file_type in ("txt", "md", "svg"):
        text = data.decode("utf-8", "replace")
        return {"text": text[:MAX_PREVIEW_TEXT_CHARS], "truncated": len(text) > MAX_PREVIEW_TEXT_CHARS}
    if file_type not in TABLE_TYPES:
        return None
    loaded = load_output(name, data, make_policy({"max_file_bytes": max(len(data), 1)}))
    table = loaded.table.slice(0, max_rows)
    return {"columns": table.column_names, "rows": [list(r.values()) for r in table.to_pylist()],
            "total_rows": loaded.table.num_rows}


__all__ = ["FAIL", "KINDS", "PASS", "REVIEW", "FileCheck", "check_submission", "overall_status",
           "parse_released", "table_preview"]
