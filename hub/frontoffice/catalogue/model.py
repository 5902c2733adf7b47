"""A catalogue entry: the HealthDCAT-AP metadata of one registered dataset (pure; parsing and checks).

The entry says what only its data holder knows (titles and descriptions in English and French,
holder, theme, health category, coverage, population, legal basis, access rights, contact, update
frequency, the EHDS data quality and utility label); the variables and their disclosure classes
come from the registered dataset itself (`hub.datasets`), so the catalogue can never advertise a
column the source does not have. `maintainers` are the data-holder accounts that may edit it.
"""

from __future__ import annotations

from datetime import date

from hub.exceptions import InvalidInput
from hub.frontoffice.catalogue import vocab
from hub.permits.model import normalise_document
from hub.yamlio import validate_schema

_t = {"type": "string", "minLength": 1, "maxLength": 5000}
_short = {"type": "string", "minLength": 1, "maxLength": 300}
_i18n = {"type": "object", "additionalProperties": False, "required": ["en"], "properties": {"en": _t, "fr": _t}}
_i18n_list = {"type": "object", "additionalProperties": False,
              "properties": {lang: {"type": "array", "maxItems": 50, "items": _short}
                             for lang in ("en", "fr")}}
_email = {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", "maxLength": 254}
_url = {"type": "string", "pattern": "^https?://[^\\s]+$", "maxLength": 2000}
_username = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._@-]{0,99}$"}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    # What HealthDCAT-AP asks only of some access levels (keywords, contact point, provenance for
    # NON_PUBLIC) is left to its shapes (shacl.py), which name the rule when it is missing.
    "required": ["dataset", "title", "description", "holder", "theme", "health_category", "legal_basis"],
    "properties": {
        "dataset": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
        "title": _i18n,
        "description": _i18n,
        "holder": {"type": "object", "additionalProperties": False, "required": ["id", "name", "email"],
                   "properties": {"id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,62}$"}, "name": _short,
                                  "email": _email, "url": _url, "trusted": {"type": "boolean"}}},
        "maintainers": {"type": "array", "maxItems": 50, "uniqueItems": True, "items": _username},
        "theme": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(vocab.DATA_THEMES)}},
        "health_category": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": {"enum": list(vocab.HEALTH_CATEGORIES)}},
        "dataset_type": {"enum": list(vocab.DATASET_TYPES)},
        "keywords": _i18n_list,
        "coverage": {"type": "object", "additionalProperties": False, "properties": {
            "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
            "spatial": {"type": "array", "maxItems": 50, "uniqueItems": True,
                        "items": {"type": "string", "pattern": "^[A-Z]{3}$"}},
            "population": _i18n,
            "min_age": {"type": "integer", "minimum": 0, "maximum": 150},
            "max_age": {"type": "integer", "minimum": 0, "maximum": 150}}},
        "languages": {"type": "array", "maxItems": 10, "uniqueItems": True, "items": {"enum": list(vocab.LANGUAGES)}},
        "legal_basis": _i18n,
        "provenance": _i18n,
        "access_rights": {"enum": list(vocab.ACCESS_RIGHTS)},
        "contact": {"type": "object", "additionalProperties": False, "required": ["name", "email"],
                    "properties": {"name": _short, "email": _email, "url": _url}},
        "update_frequency": {"enum": list(vocab.FREQUENCIES)},
        "quality_label": {"type": "object", "additionalProperties": False, "required": ["level"],
                          "properties": {"level": {"enum": list(vocab.QUALITY_LEVELS)},
                                         "issued": {"type": "string", "format": "date"},
                                         "note": _i18n}},
        "variables": {"type": "object", "maxProperties": 5000,
                      "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*$"},
                      "additionalProperties": _i18n},
        "samples": {"type": "integer", "minimum": 0},
    },
}

MAX_ENTRY_BYTES = 256 * 1024


def parse_entry(raw: dict, dataset_schema: dict | None = None) -> dict:
    """The validated entry (a normalised copy). With the dataset's registered schema, variable
    descriptions must name real columns."""
    if not isinstance(raw, dict):
        raise InvalidInput("a catalogue entry must be a mapping", field="(top level)")
    doc = normalise_document(raw)
    validate_schema(doc, SCHEMA, "catalogue entry")
    cov = doc.get("coverage") or {}
    if "from" in cov and "to" in cov and date.fromisoformat(cov["to"]) < date.fromisoformat(cov["from"]):
        raise InvalidInput("coverage 'to' is before 'from'", field="coverage.to")
    if cov.get("min_age", 0) > cov.get("max_age", 150):
        raise InvalidInput("coverage min_age is greater than max_age", field="coverage.min_age")
    if dataset_schema is not None:
        for key in doc.get("variables") or {}:
            table, column = key.split(".", 1)
            if column not in dataset_schema["tables"].get(table, {}).get("columns", {}):
                raise InvalidInput(f"dataset {doc['dataset']!r} has no variable {key!r}", field=f"variables.{key}")
    doc.setdefault("access_rights", "NON_PUBLIC")
    doc.setdefault("keywords", {"en": []})
    doc.setdefault("languages", ["ENG"])
    doc.setdefault("maintainers", [])
    doc.setdefault("dataset_type", "PERSONAL_DATA")
    doc.setdefault("update_frequency", "UNKNOWN")
    return doc


def variables(entry: dict, dataset_schema: dict) -> list[dict]:
    """Every variable of the dataset with its disclosure class, type and description (pure).
    `requestable` is False for direct identifiers: provisioning drops them whatever a permit says."""
    texts = entry.get("variables") or {}
    out = []
    for table, t in sorted(dataset_schema["tables"].items()):
        for column, info in t["columns"].items():
            key = f"{table}.{column}"
            desc = texts.get(key) or ({"en": info["description"]} if info.get("description") else {})
            out.append({"table": table, "column": column, "key": key, "type": info.get("type", ""),
                        "class": info["class"], "description": desc,
                        "requestable": info["class"] != "direct_identifier"})
    return out


def population_counts(dataset_schema: dict) -> tuple[int, int]:
    """(persons, records): rows of the person table and rows of every table holding persons."""
    tables = dataset_schema["tables"]
    person_key = dataset_schema.get("person_key", "person_id")
    persons = tables.get(dataset_schema.get("person_table", "person"), {}).get("rows", 0)
    records = sum(t.get("rows", 0) for t in tables.values() if person_key in t.get("columns", {}))
    return persons, records


def is_maintainer(entry: dict, username: str) -> bool:
    return username in (entry.get("maintainers") or [])
