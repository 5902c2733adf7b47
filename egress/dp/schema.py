"""The DP view of a dataset descriptor: which columns exist, their declared categories,
clamping bounds and per-person contribution bounds (pure; no I/O).

Composes with whatever the control plane hands over: a `hub.datasets.descriptor.Descriptor`,
the registry's dataset schema (`{"person_table", "person_key", "tables": {t: {"columns": ...}}}`)
or a plain mapping `{table: {column: {class, categories, bounds, max_per_person}}}`.
Categories and bounds only ever come from here, never from the data: a category list taken
from the data would itself disclose which values occur.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from hub.exceptions import InvalidInput, Refused

# Columns that identify a person or a record: never a group key or a filter.
NEVER_QUERYABLE_CLASSES = ("direct_identifier", "person_key")


@dataclass(frozen=True)
class DpColumn:
    name: str
    cls: str = "quasi_identifier"
    categories: tuple | None = None
    bounds: tuple[float, float] | None = None
    max_per_person: int | None = None
    key: bool = False
    type: str | None = None  # source type when the registry knows it

    @property
    def queryable(self) -> bool:
        return self.cls not in NEVER_QUERYABLE_CLASSES and not self.key


@dataclass(frozen=True)
class DpTable:
    name: str
    columns: Mapping[str, DpColumn]
    max_per_person: int | None = None


@dataclass(frozen=True)
class DpSchema:
    tables: Mapping[str, DpTable]
    person_table: str = "person"
    person_key: str = "person_id"
    extra: dict = field(default_factory=dict, compare=False)

    def table(self, name: str) -> DpTable:
        t = self.tables.get(name) if isinstance(name, str) else None
        if t is None:
            raise InvalidInput(f"unknown table {name!r}; declared tables: {sorted(self.tables)}", field="table")
        return t

    def contribution_bound(self, table: str, columns: tuple[str, ...] = ()) -> int:
        """Rows per person the query is truncated to (and calibrated for).

        The largest bound declared for the table or any of its columns (a bound is a property
        of the table's rows; taking the largest is conservative); the person table defaults
        to 1. A table without any declared bound is refused: guessing a bound would
        under-state the noise needed.
        """
        t = self.table(table)
        declared = [t.max_per_person] + [c.max_per_person for c in t.columns.values()]
        declared = [int(d) for d in declared if d is not None]
        if declared:
            return max(declared)
        if table == self.person_table:
            return 1
        raise Refused(f"table {table!r} declares no max_per_person in the dataset descriptor; "
                      f"DP queries on it need a declared contribution bound")


def _column(name: str, doc: Any) -> DpColumn:
    if isinstance(doc, DpColumn):
        return doc
    if isinstance(doc, str):
        return DpColumn(name=name, cls=doc)
    if not isinstance(doc, Mapping):
        # descriptor ColumnInfo (duck-typed so this module does not depend on its import path)
        doc = doc.as_dict() if hasattr(doc, "as_dict") else {}
    bounds = doc.get("bounds")
    if bounds is not None:
        lo, hi = (float(b) for b in bounds)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise InvalidInput(f"bounds of {name!r} must be finite [low, high]", field=f"{name}.bounds")
        bounds = (lo, hi)
    cats = doc.get("categories")
    return DpColumn(
        name=name,
        cls=doc.get("class", "quasi_identifier"),
        categories=tuple(cats) if cats is not None else None,
        bounds=bounds,
        max_per_person=doc.get("max_per_person"),
        key=bool(doc.get("key", False)),
        type=doc.get("type"),
    )


def make_dp_schema(source: Any) -> DpSchema:
    """Normalise any of the accepted descriptor shapes into a `DpSchema`."""
    if isinstance(source, DpSchema):
        return source
    if hasattr(source, "tables") and hasattr(source, "person_key") and not isinstance(source, Mapping):
        # hub.datasets.descriptor.Descriptor
        tables = {}
        for tname, t in source.tables.items():
            bound = t.get("max_per_person")
            cols = {c: _column(c, info) for c, info in t.get("columns", {}).items()}
            tables[tname] = DpTable(tname, cols, bound)
        return DpSchema(tables, source.person_table, source.person_key)
    if not isinstance(source, Mapping):
        raise TypeError(f"cannot read a DP schema from {type(source).__name__}")
    if isinstance(source.get("tables"), Mapping) and all(
            isinstance(t, Mapping) and "columns" in t for t in source["tables"].values()):
        # the registry's dataset schema
        tables = {}
        for tname, t in source["tables"].items():
            bound = t.get("max_per_person")
            cols = {c: _column(c, info) for c, info in (t.get("columns") or {}).items()}
            tables[tname] = DpTable(tname, cols, bound)
        return DpSchema(tables, source.get("person_table", "person"), source.get("person_key", "person_id"))
    # plain {table: {column: {...}}}
    tables = {tname: DpTable(tname, {c: _column(c, info) for c, info in cols.items()}, None)
              for tname, cols in source.items()}
    return DpSchema(tables)
