"""Dataset descriptor: the disclosure class of each column (pure; parsing and validation).

Classes decide what provisioning does: `direct_identifier` is always dropped,
`person_key` (and any other key) becomes a keyed per-permit pseudonym, `quasi_identifier`
columns form the k-anonymity report, `sensitive` and `other` pass as allowed by the permit.
A column the descriptor does not list gets the table's or the descriptor's `default_class`
(`quasi_identifier` unless said otherwise): unknown columns are never treated as harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.yamlio import validate_schema

CLASSES = ("direct_identifier", "person_key", "quasi_identifier", "sensitive", "other")

_column = {
    "oneOf": [
        {"enum": list(CLASSES)},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["class"],
            "properties": {
                "class": {"enum": list(CLASSES)},
                "description": {"type": "string"},
                "categories": {"type": "array", "minItems": 1, "maxItems": 10000,
                               "items": {"type": ["string", "integer"]}},
                "bounds": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
                "max_per_person": {"type": "integer", "minimum": 1},
                "key": {"type": "boolean", "description": "a record key to pseudonymise"},
            },
        },
    ]
}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "tables"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
        "description": {"type": "string"},
        "person_table": {"type": "string"},
        "person_key": {"type": "string"},
        "national_id_column": {"type": "string", "description": "person-table column opt-outs are matched on"},
        "national_id_hashed": {"type": "boolean",
                               "description": "that column already holds the opt-out register's keyed hash (donations)"},
        "consent_table": {"type": "string",
                          "description": "table of per-person consents (person key, purposes, expires): "
                                         "provisioning keeps only persons whose consent covers the permit's purpose"},
        "default_class": {"enum": list(CLASSES)},
        "tables": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "default_class": {"enum": list(CLASSES)},
                    "max_per_person": {"type": "integer", "minimum": 1},
                    "columns": {"type": "object", "additionalProperties": _column},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    cls: str
    categories: tuple | None = None
    bounds: tuple[float, float] | None = None
    max_per_person: int | None = None
    key: bool = False
    description: str = ""

    def as_dict(self) -> dict:
        d = {"class": self.cls}
        if self.categories is not None:
            d["categories"] = list(self.categories)
        if self.bounds is not None:
            d["bounds"] = list(self.bounds)
        if self.max_per_person is not None:
            d["max_per_person"] = self.max_per_person
        if self.key:
            d["key"] = True
        if self.description:
            d["description"] = self.description
        return d


@dataclass(frozen=True)
class Descriptor:
    name: str
    person_table: str
    person_key: str
    default_class: str
    tables: dict  # table -> {"default_class": str|None, "max_per_person": int|None, "columns": {col: ColumnInfo}}
    description: str = ""
    national_id_column: str = "person_source_value"
    national_id_hashed: bool = False
    consent_table: str | None = None
    raw: dict = field(default_factory=dict, compare=False)

    def column(self, table: str, column: str) -> ColumnInfo:
        t = self.tables.get(table, {})
        info = t.get("columns", {}).get(column)
        if info is not None:
            return info
        cls = "person_key" if column == self.person_key else (t.get("default_class") or self.default_class)
        return ColumnInfo(column, cls)


def parse_descriptor(doc: dict) -> Descriptor:
    validate_schema(doc, SCHEMA, "dataset descriptor")
    tables = {}
    for tname, tdoc in doc["tables"].items():
        cols = {}
        for cname, cdoc in (tdoc.get("columns") or {}).items():
            if isinstance(cdoc, str):
                cdoc = {"class": cdoc}
            bounds = tuple(cdoc["bounds"]) if "bounds" in cdoc else None
            if bounds and bounds[0] > bounds[1]:
                from hub.exceptions import InvalidInput

                raise InvalidInput("bounds must be [low, high] with low <= high", field=f"tables.{tname}.columns.{cname}.bounds")
            cols[cname.lower()] = ColumnInfo(
                name=cname.lower(),
                cls=cdoc["class"],
                categories=tuple(cdoc["categories"]) if "categories" in cdoc else None,
                bounds=bounds,
                max_per_person=cdoc.get("max_per_person", tdoc.get("max_per_person")),
                key=bool(cdoc.get("key", False)),
                description=cdoc.get("description", ""),
            )
        tables[tname.lower()] = {
            "default_class": tdoc.get("default_class"),
            "max_per_person": tdoc.get("max_per_person"),
            "columns": cols,
        }
    return Descriptor(
        name=doc["name"],
        person_table=doc.get("person_table", "person"),
        person_key=doc.get("person_key", "person_id"),
        default_class=doc.get("default_class", "quasi_identifier"),
        tables=tables,
        description=doc.get("description", ""),
        national_id_column=doc.get("national_id_column", "person_source_value").lower(),
        national_id_hashed=bool(doc.get("national_id_hashed", False)),
        consent_table=doc["consent_table"].lower() if doc.get("consent_table") else None,
        raw=doc,
    )
