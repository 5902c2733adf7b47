"""Does a submitted table equal the result of its provenance query? (`compare`, pure)

Same column names, same rows in any order (matched on the label columns, or by sorting when
labels do not identify rows), numbers equal to the precision the author shows (12.35 matches
12.3456), a NULL where the result has a number counts as a suppressed cell, and a multiple of
the rounding base that is the nearest multiple of the result as a rounded cell. Anything else
is a mismatch: the table was tampered with or is stale, and `check_match` refuses it.

Pure: pyarrow only; `egress.provenance` runs the query and calls this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa

from egress.checks.evidence import label_key
from egress.checks.tables import is_numeric
from egress.exceptions import TableMismatch

@dataclass(frozen=True)
class Mismatch:
    row: int | None
    column: str | None
    submitted: Any
    recomputed: Any


@dataclass(frozen=True)
class Match:
    """Result of `compare`: `equal` True when the submitted table is the query's result (with
    suppressed and rounded cells allowed); otherwise `reason` says why, `mismatches` where."""

    equal: bool
    reason: str = ""
    rows_compared: int = 0
    suppressed_cells: int = 0
    rounded_cells: int = 0
    mismatches: tuple[Mismatch, ...] = ()

    def to_dict(self) -> dict:
        return {"equal": self.equal, "reason": self.reason, "rows_compared": self.rows_compared,
                "suppressed_cells": self.suppressed_cells, "rounded_cells": self.rounded_cells,
                "mismatches": [{"row": m.row, "column": m.column, "submitted": _jsonable(m.submitted),
                                "recomputed": _jsonable(m.recomputed)} for m in self.mismatches]}


def compare(submitted: pa.Table, recomputed: pa.Table, *, label_columns: Sequence[str] | None = None,
            rounding_base: int | None = None, allow_suppressed: bool = True,
            rel_tolerance: float = 1e-9, max_mismatches: int = 20) -> Match:
    """Is `submitted` the result `recomputed`? (module docstring, step 2). Pure."""
    own, theirs = set(submitted.column_names), set(recomputed.column_names)
    if own != theirs:
        parts = []
        if theirs - own:
            parts.append(f"missing {sorted(theirs - own)}")
        if own - theirs:
            parts.append(f"unexpected {sorted(own - theirs)}")
        return Match(False, "columns differ from the query result: " + ", ".join(parts))
    if submitted.num_rows != recomputed.num_rows:
        return Match(False, f"{submitted.num_rows} rows submitted, the query returns {recomputed.num_rows}")
    names = list(recomputed.column_names)
    numeric = [c for c in names if is_numeric(recomputed.schema.field(c).type)
               and (label_columns is None or c not in label_columns)]
    labels = list(label_columns) if label_columns is not None else [c for c in names if c not in numeric]
    sub_rows = _rows(submitted, names)
    rec_rows = _rows(recomputed, names)
    label_idx = [names.index(c) for c in labels]
    numeric_idx = [names.index(c) for c in numeric]
    pairs, by_key = _align(sub_rows, rec_rows, label_idx, numeric_idx)
    if pairs is None:
        return Match(False, "rows with these labels are not in the query result")
    mismatches: list[Mismatch] = []
    suppressed = rounded = 0
    for sub_row, rec_row in pairs:
        for i in label_idx if not by_key else ():  # rows paired by their labels have the same labels
            if label_key([sub_rows[sub_row][i]]) != label_key([rec_rows[rec_row][i]]):
                mismatches.append(Mismatch(sub_row, names[i], sub_rows[sub_row][i], rec_rows[rec_row][i]))
        for i in numeric_idx:
            outcome = _compare_number(sub_rows[sub_row][i], rec_rows[rec_row][i], rounding_base,
                                      allow_suppressed, rel_tolerance)
            if outcome == "suppressed":
                suppressed += 1
            elif outcome == "rounded":
                rounded += 1
            elif outcome == "different":
                mismatches.append(Mismatch(sub_row, names[i], sub_rows[sub_row][i], rec_rows[rec_row][i]))
    if mismatches:
        return Match(False, f"{len(mismatches)} cell(s) differ from the query result", len(pairs), suppressed,
                     rounded, tuple(mismatches[:max_mismatches]))
    return Match(True, "", len(pairs), suppressed, rounded)


def check_match(match: Match) -> None:
    """Raise `TableMismatch` (the table is refused and flagged) unless `match.equal`."""
    if not match.equal:
        where = ""
        if match.mismatches:
            m = match.mismatches[0]
            where = f" (first: row {m.row}, column {m.column!r}: {m.submitted!r} vs {m.recomputed!r})"
        raise TableMismatch(f"the submitted table is not the result of its provenance SQL: {match.reason}{where}")


def _compare_number(sub: Any, rec: Any, rounding_base: int | None, allow_suppressed: bool,
                    rel_tolerance: float) -> str:
    s, r = _number(sub), _number(rec)
    if s is None and r is None:
        return "equal"
    if s is None:
        return "suppressed" if allow_suppressed else "different"
    if r is None or isinstance(s, str):
        return "different"
    if s == r or abs(s - r) <= rel_tolerance * max(abs(r), 1.0):
        return "equal"
    # The author may show fewer decimals than DuckDB computed: 12.35 for 12.3456.
    if abs(s - r) <= 0.5 * 10.0 ** (-_decimals(sub)) + 1e-12 * max(abs(r), 1.0):
        return "equal"
    if rounding_base and float(s).is_integer() and int(s) % rounding_base == 0:
        # Rounded to the nearest multiple of the base (either neighbour at an exact half).
        below = math.floor(r / rounding_base) * rounding_base
        nearest = {below, below + rounding_base} if r - below == rounding_base / 2 else {
            below if r - below < rounding_base / 2 else below + rounding_base}
        if s in nearest:
            return "rounded"
    return "different"


def _number(value: Any) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() in ("nan", "null", "na", "-", "*", "suppressed", "<10"):
            return None
        try:
            return float(text)
        except ValueError:
            return text
    number = float(value)
    return None if math.isnan(number) else number


def _decimals(value: Any) -> int:
    if isinstance(value, int):
        return 0
    text = value.strip() if isinstance(value, str) else repr(float(value))
    if "e" in text.lower():
        return 15
    if "." not in text:
        return 0
    decimals = len(text.split(".", 1)[1])
    return 0 if text.endswith(".0") else decimals


def _rows(table: pa.Table, names: list[str]) -> list[tuple]:
    columns = [table.column(c).to_pylist() for c in names]
    return list(zip(*columns))


def _align(sub_rows, rec_rows, label_idx, numeric_idx) -> tuple[list[tuple[int, int]] | None, bool]:
    """(pairs of submitted and recomputed rows, whether they were paired by their labels)."""
    def key(row, idx):
        return label_key(row[i] for i in idx)

    sub_keys = [key(r, label_idx) for r in sub_rows]
    rec_keys = [key(r, label_idx) for r in rec_rows]
    if label_idx and len(set(sub_keys)) == len(sub_keys) and len(set(rec_keys)) == len(rec_keys):
        where = {k: i for i, k in enumerate(rec_keys)}
        pairs = [(i, where.get(k)) for i, k in enumerate(sub_keys)]
        return (None if any(p[1] is None for p in pairs) else pairs), True

    # Labels do not identify rows: sort both on all columns (numbers at 6 significant digits).
    def sort_key(row):
        labels = key(row, label_idx)
        numbers = tuple(_rounded(row[i]) for i in numeric_idx)
        return (tuple("" if v is None else str(v) for v in labels), numbers)

    sub_order = sorted(range(len(sub_rows)), key=lambda i: sort_key(sub_rows[i]))
    rec_order = sorted(range(len(rec_rows)), key=lambda i: sort_key(rec_rows[i]))
    return list(zip(sub_order, rec_order)), False


def _rounded(value: Any) -> tuple:
    number = _number(value)
    if number is None or isinstance(number, str):
        return (1, 0.0)
    return (0, float(f"{number:.6g}"))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)
