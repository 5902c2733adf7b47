"""Query spec validation: a JSON dict from a researcher -> `DpQuery` (pure; no I/O).

The spec is hostile input. Every key, column, operator and value is checked against the
dataset descriptor; anything not understood is refused with a message naming the field, and
nothing is ever pasted into SQL (columns are matched against the descriptor, values are bound
as parameters later). A refused spec is never charged.

    {"kind": "count", "table": "condition_occurrence", "by": ["gender_concept_id"],
     "where": [{"column": "condition_concept_id", "op": "in", "value": [192671, 4320]}],
     "epsilon": 0.1}
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from hub.exceptions import InvalidInput

from egress.dp.schema import DpColumn, DpSchema, make_dp_schema

KINDS = ("count", "sum", "mean", "histogram", "quantile")
MECHANISMS = ("laplace", "gaussian")
OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "between")
SPEC_KEYS = {"kind", "table", "column", "by", "where", "epsilon", "delta", "mechanism", "alphas"}
FILTER_KEYS = {"column", "op", "value"}

MAX_GROUP_COLUMNS = 3
MAX_CELLS = 10_000  # released vector length: bounds the answer and the work
MAX_FILTERS = 20
MAX_IN_VALUES = 1000
MAX_STRING_CHARS = 200
MAX_ALPHAS = 20
MAX_EPSILON = 100.0  # no permit's budget is larger (hub.permits.schema); also keeps the ledger's units in range
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

NUMERIC_TYPE_RE = re.compile(r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
                             r"FLOAT|REAL|DOUBLE|DECIMAL|NUMERIC)", re.I)
TEMPORAL_TYPE_RE = re.compile(r"^(DATE|TIMESTAMP)", re.I)
STRING_TYPE_RE = re.compile(r"^(VARCHAR|TEXT|STRING|CHAR)", re.I)


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any  # scalar, or a tuple for `in` / `between`


@dataclass(frozen=True)
class DpQuery:
    kind: str
    table: str
    column: str | None
    by: tuple[str, ...]
    where: tuple[Filter, ...]
    epsilon: float
    delta: float
    mechanism: str
    alphas: tuple[float, ...]
    max_per_person: int  # declared contribution bound the query is truncated to and calibrated for
    bounds: tuple[float, float] | None  # clamping bounds of `column` (sum, mean, quantile)
    group_columns: tuple[str, ...]  # `by`, plus `column` for a histogram
    categories: tuple[tuple, ...]  # declared categories of each group column
    person_key: str
    person_table: str = "person"

    @property
    def cells(self) -> int:
        n = 1
        for cats in self.categories:
            n *= len(cats)
        return n

    def canonical(self) -> dict:
        return {
            "kind": self.kind, "table": self.table, "column": self.column, "by": list(self.by),
            "where": [{"column": f.column, "op": f.op,
                       "value": list(f.value) if isinstance(f.value, tuple) else f.value} for f in self.where],
            "epsilon": self.epsilon, "delta": self.delta, "mechanism": self.mechanism,
            "alphas": list(self.alphas),
        }

    @property
    def query_hash(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _number(value: Any, fld: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"must be a number, not {type(value).__name__}", field=fld)
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInput("must be a finite number", field=fld)
    return value


def _name(value: Any, fld: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(f"not a column or table name: {str(value)[:80]!r}", field=fld)
    return value


def _column_of(schema: DpSchema, table: str, name: Any, fld: str) -> DpColumn:
    """A declared column of `table`, or `person.<column>`: an attribute of the person table
    joined on the person key (group condition rows by sex, filter them by birth year)."""
    if isinstance(name, str) and name.count(".") == 1 and name.split(".")[0] == schema.person_table \
            and table != schema.person_table:
        prefix, plain = name.split(".")
        col = _column_of(schema, schema.person_table, plain, fld)
        return replace(col, name=f"{prefix}.{col.name}")
    name = _name(name, fld)
    col = schema.table(table).columns.get(name)
    if col is None:
        raise InvalidInput(f"table {table!r} has no declared column {name!r}", field=fld)
    if not col.queryable:
        raise InvalidInput(f"column {name!r} identifies a person or record ({col.cls}); it cannot be "
                           f"grouped or filtered on", field=fld)
    return col


def _scalar(value: Any, col: DpColumn, fld: str) -> Any:
    """One filter value, type-checked against what the descriptor says about the column."""
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            raise InvalidInput("must be a finite number", field=fld)
        kind = "number"
    elif isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise InvalidInput(f"string longer than {MAX_STRING_CHARS} characters", field=fld)
        kind = "string"
    else:
        raise InvalidInput(f"must be a string or a number, not {type(value).__name__}", field=fld)
    expected = None
    if col.categories:
        cat = col.categories[0]
        expected = "string" if isinstance(cat, str) else "number"
    elif col.bounds is not None:
        expected = "number"
    elif col.type:
        if NUMERIC_TYPE_RE.match(col.type):
            expected = "number"
        elif TEMPORAL_TYPE_RE.match(col.type):
            expected = "date"
        elif STRING_TYPE_RE.match(col.type):
            expected = "string"
        elif col.type.upper().startswith("BOOL"):
            expected = "bool"
    if expected == "date":
        if kind != "string":
            raise InvalidInput(f"column {col.name!r} is a date: give an ISO date string", field=fld)
        try:
            (date.fromisoformat if len(value) <= 10 else datetime.fromisoformat)(value)
        except ValueError:
            raise InvalidInput(f"not an ISO date: {value[:40]!r}", field=fld) from None
    elif expected is not None and kind != expected:
        raise InvalidInput(f"column {col.name!r} holds {expected} values, got {kind} {str(value)[:40]!r}", field=fld)
    if col.categories and value not in col.categories:
        raise InvalidInput(f"{repr(value)[:40]} is not a declared category of {col.name!r} "
                           f"({', '.join(map(str, col.categories[:20]))})", field=fld)
    return value


def _filter(schema: DpSchema, table: str, doc: Any, i: int) -> Filter:
    fld = f"where.{i}"
    if not isinstance(doc, dict):
        raise InvalidInput("a filter is an object {column, op, value}", field=fld)
    extra = set(doc) - FILTER_KEYS
    if extra or not FILTER_KEYS <= set(doc):
        raise InvalidInput(f"a filter has exactly the keys column, op, value (got {sorted(map(str, doc))})", field=fld)
    col = _column_of(schema, table, doc["column"], f"{fld}.column")
    op = doc["op"]
    if not isinstance(op, str) or op not in OPS:
        raise InvalidInput(f"unknown operator {str(op)[:20]!r}; allowed: {', '.join(OPS)}", field=f"{fld}.op")
    value = doc["value"]
    if op in ("in", "between"):
        if not isinstance(value, list):
            raise InvalidInput(f"{op!r} takes a list of values", field=f"{fld}.value")
        if op == "between" and len(value) != 2:
            raise InvalidInput("'between' takes [low, high]", field=f"{fld}.value")
        if not 1 <= len(value) <= MAX_IN_VALUES:
            raise InvalidInput(f"'in' takes 1 to {MAX_IN_VALUES} values", field=f"{fld}.value")
        values = tuple(_scalar(v, col, f"{fld}.value.{j}") for j, v in enumerate(value))
        if op == "between" and type(values[0]) is type(values[1]) and values[0] > values[1]:
            raise InvalidInput("'between' needs low <= high", field=f"{fld}.value")
        return Filter(col.name, op, values)
    return Filter(col.name, op, _scalar(value, col, f"{fld}.value"))


def parse_query(spec: Any, schema: Any, *, available: dict | None = None) -> DpQuery:
    """Validate a query spec against the dataset descriptor (and, if given, the extract's
    `available` columns per table). Raises `InvalidInput` naming the field."""
    schema = make_dp_schema(schema)
    if not isinstance(spec, dict):
        raise InvalidInput("a DP query is a JSON object")
    unknown = sorted(str(k) for k in set(spec) - SPEC_KEYS)
    if unknown:
        raise InvalidInput(f"unknown keys {unknown}; allowed: {sorted(SPEC_KEYS)}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    table = _name(spec.get("table"), "table")
    schema.table(table)  # refuses a table the descriptor does not declare
    if available is not None and table not in available:
        raise InvalidInput(f"table {table!r} is not in this permit's extract", field="table")

    mechanism = spec.get("mechanism", "laplace")
    if mechanism not in MECHANISMS:
        raise InvalidInput(f"mechanism must be one of {', '.join(MECHANISMS)}", field="mechanism")
    if "epsilon" not in spec:
        raise InvalidInput("epsilon is required", field="epsilon")
    epsilon = _number(spec["epsilon"], "epsilon")
    if epsilon <= 0:
        raise InvalidInput("must be greater than 0", field="epsilon")
    if epsilon > MAX_EPSILON:
        raise InvalidInput(f"must be at most {MAX_EPSILON:g} (no permit's budget is larger)", field="epsilon")
    delta = 0.0
    if mechanism == "gaussian":
        if spec.get("delta") is None:
            raise InvalidInput("the gaussian mechanism needs delta (0 < delta < 1)", field="delta")
        delta = _number(spec["delta"], "delta")
        if not 0 < delta < 1:
            raise InvalidInput("must be between 0 and 1 (exclusive)", field="delta")
        if kind == "quantile":
            raise InvalidInput("quantiles use the exponential (noisy max) mechanism: leave mechanism as laplace",
                               field="mechanism")
    elif spec.get("delta") not in (None, 0, 0.0):
        raise InvalidInput("delta applies only to mechanism 'gaussian'", field="delta")

    column = spec.get("column")
    col = None
    if kind == "count":
        if column is not None:
            raise InvalidInput("count counts rows; give no column (use histogram for a column's categories)",
                               field="column")
    else:
        if column is None:
            raise InvalidInput(f"{kind} needs a column", field="column")
        col = _column_of(schema, table, column, "column")
    bounds = None
    if kind in ("sum", "mean", "quantile"):
        if col.bounds is None:
            raise InvalidInput(f"column {col.name!r} declares no bounds in the dataset descriptor; "
                               f"{kind} needs clamping bounds", field="column")
        bounds = col.bounds
    if kind == "histogram" and not col.categories:
        raise InvalidInput(f"column {col.name!r} declares no categories in the dataset descriptor", field="column")

    by = spec.get("by") or []
    if isinstance(by, str):
        by = [by]
    if not isinstance(by, list) or len(by) > MAX_GROUP_COLUMNS:
        raise InvalidInput(f"by is a list of at most {MAX_GROUP_COLUMNS} columns", field="by")
    by_cols = [_column_of(schema, table, b, f"by.{i}") for i, b in enumerate(by)]
    for i, b in enumerate(by_cols):
        if not b.categories:
            raise InvalidInput(f"column {b.name!r} declares no categories in the dataset descriptor; "
                               f"only declared categorical columns can group", field=f"by.{i}")
    names = [b.name for b in by_cols]
    if len(set(names)) != len(names):
        raise InvalidInput("a column appears twice in by", field="by")
    if kind == "quantile" and by_cols:
        raise InvalidInput("grouped quantiles are not supported; filter per group instead", field="by")
    group_cols = list(by_cols) + ([col] if kind == "histogram" else [])
    if kind == "histogram" and col.name in names:
        raise InvalidInput("the histogram column is also in by", field="by")

    where = spec.get("where") or []
    if not isinstance(where, list):
        raise InvalidInput("where is a list of filters {column, op, value}", field="where")
    if len(where) > MAX_FILTERS:
        raise InvalidInput(f"at most {MAX_FILTERS} filters", field="where")
    filters = tuple(_filter(schema, table, f, i) for i, f in enumerate(where))

    alphas: tuple[float, ...] = ()
    if kind == "quantile":
        raw = spec.get("alphas")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ALPHAS:
            raise InvalidInput(f"quantile needs alphas: a list of 1 to {MAX_ALPHAS} numbers in (0, 1)", field="alphas")
        alphas = tuple(_number(a, f"alphas.{i}") for i, a in enumerate(raw))
        if any(not 0 < a < 1 for a in alphas):
            raise InvalidInput("each alpha must be in (0, 1)", field="alphas")
    elif spec.get("alphas") is not None:
        raise InvalidInput("alphas applies only to kind 'quantile'", field="alphas")

    used = {c.name for c in group_cols} | {f.column for f in filters} | ({col.name} if col else set())
    if available is not None:
        for name in sorted(used | {schema.person_key}):
            t, c = name.split(".") if "." in name else (table, name)
            if t not in available or c not in set(available[t]) or (t != table and schema.person_key not in available[t]):
                raise InvalidInput(f"column {c!r} of {t!r} is not in this permit's extract", field="column")

    categories = tuple(tuple(c.categories) for c in group_cols)
    cells = 1
    for cats in categories:
        cells *= len(cats)
    if cells > MAX_CELLS:
        raise InvalidInput(f"the answer would have {cells} cells; at most {MAX_CELLS}", field="by")

    m = schema.contribution_bound(table, tuple(sorted(used)))
    return DpQuery(kind=kind, table=table, column=col.name if col else None, by=tuple(names), where=filters,
                   epsilon=epsilon, delta=delta, mechanism=mechanism, alphas=alphas, max_per_person=m,
                   bounds=bounds, group_columns=tuple(c.name for c in group_cols), categories=categories,
                   person_key=schema.person_key, person_table=schema.person_table)
