"""Content rules that look at a table's columns and strings, whatever its kind:

- a column that looks like a person key or pseudonym (by name, or by values that are
  high-cardinality hex/UUID/token strings) — a release must not carry person-level keys;
- spreadsheet formula injection: a text cell (or column name) starting with `=`, `+`, `-`,
  `@`, TAB or CR is executed by spreadsheet programs when the CSV is opened; plain signed
  numbers (`-3.5`, `+2`) are data, not formulas.

Pure: pyarrow only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

# Names of person-level keys. OMOP `*_concept_id` columns are category codes (sex, condition),
# which tables are made of, so they are exempt from the `*_id` pattern.
_KEY_NAME = re.compile(r"^(person_id|person|patient_id|patient|subject_id|subject|pid|mrn|nhs_number|ssn|"
                       r"pseudonym|pseudo_id|.*pseudonym.*|.*_pseudo|.*_id|id)$", re.I)
_EXEMPT_NAME = re.compile(r"^.*concept_id$", re.I)
# Values that look like pseudonyms: hex digests, UUIDs, long base64url tokens with digits.
_KEY_VALUE = re.compile(r"^([0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                 r"|(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,})$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_MAX_SAMPLED = 10_000  # enough to recognise a listing; bounds the work on hostile tables
_MIN_KEY_VALUES = 5  # fewer distinct values cannot be a person listing worth refusing on values


@dataclass(frozen=True)
class KeyColumn:
    column: str
    reason: str


def person_key_columns(table: pa.Table) -> list[KeyColumn]:
    found = []
    for name in table.column_names:
        if _KEY_NAME.match(name) and not _EXEMPT_NAME.match(name):
            found.append(KeyColumn(name, f"column name {name!r} looks like a person key or pseudonym"))
            continue
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = column.drop_null()
        if len(values) < _MIN_KEY_VALUES:
            continue
        sample = values.slice(0, _MAX_SAMPLED).to_pylist()
        looks_like_key = sum(1 for v in sample if _KEY_VALUE.match(v))
        distinct = len(set(sample))
        values = sample
        if looks_like_key >= 0.5 * len(values) and distinct >= 0.9 * len(values):
            found.append(KeyColumn(name, f"column {name!r} holds {distinct} distinct hex/UUID-like values "
                                         "(looks like pseudonyms)"))
    return found


def is_formula(text: str) -> bool:
    return text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(text.strip())


def formula_cells(table: pa.Table, limit: int = 20) -> list[tuple[int | None, str, str]]:
    """`(row, column, text)` of cells (row None = the column name) that start like a formula."""
    found: list[tuple[int | None, str, str]] = []
    for name in table.column_names:
        if is_formula(name):
            found.append((None, name, name))
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        for row, text in enumerate(column.to_pylist()):
            if text is not None and is_formula(text):
                found.append((row, name, text))
                if len(found) >= limit:
                    return found
    return found
