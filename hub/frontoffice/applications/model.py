"""An application as the applicant fills it in: schema and meaning (pure).

Two kinds: `permit` (a workspace on a minimised extract, EHDS Art. 67/68) and `data_request`
(anonymised statistics answered by the HDAB, no workspace for the applicant, EHDS Art. 69).
Checked at the door, before anything is stored:
- the purpose is an EHDS Art. 53(1) category; an Art. 54 purpose is refused with its article;
- every dataset has a catalogue entry and every requested variable exists in it (never a direct
  identifier); the cohort is in the permit's filter vocabulary;
- a permit application says why pseudonymised rather than anonymised data are needed (Art. 67);
- the start is not in the past, the duration within the HDAB's maximum, resources within its limits;
- every team member is a user (checked by the business layer, which has the directory).
The permit(s) a full grant would make are built and checked by the permit model too (`grant.py`),
so an application that passes here can always become a permit.
"""

from __future__ import annotations

from datetime import date

from hub.exceptions import InvalidInput
from hub.frontoffice.fees.schedule import CATEGORIES
from hub.permits.model import normalise_document
from hub.permits.purposes import check_purpose
from hub.permits.schema import PERMIT_SCHEMA
from hub.spawner.spec import parse_bytes
from hub.yamlio import validate_schema

KINDS = ("permit", "data_request")
_ident = {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$"}
_text = {"type": "string", "minLength": 1, "maxLength": 5000}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "title", "organisation", "applicant_category", "purpose", "purpose_description",
                 "datasets", "start", "months"],
    "properties": {
        "kind": {"enum": list(KINDS)},
        "title": {"type": "string", "minLength": 3, "maxLength": 300},
        "organisation": {"type": "string", "minLength": 2, "maxLength": 300},
        "applicant_category": {"enum": list(CATEGORIES)},
        "purpose": {"type": "string", "maxLength": 100},
        "purpose_description": _text,
        "team": {"type": "array", "maxItems": 50, "items": {
            "type": "object", "additionalProperties": False, "required": ["username", "role"],
            "properties": {"username": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._@-]{0,99}$"},
                           "role": {"enum": ["researcher", "data_manager"]}}}},
        "datasets": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
            "type": "object", "additionalProperties": False, "required": ["dataset", "tables"],
            "properties": {"dataset": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
                           "tables": {"type": "object", "minProperties": 1, "propertyNames": _ident,
                                      "additionalProperties": {"type": "array", "minItems": 1, "maxItems": 2000,
                                                               "items": _ident, "uniqueItems": True}},
                           "cohort": PERMIT_SCHEMA["properties"]["cohort"]}}},
        "pseudonymised_justification": _text,
        "statistics": _text,
        "start": {"type": "string", "format": "date"},
        "months": {"type": "integer", "minimum": 1, "maximum": 120},
        "resources": {"type": "object", "additionalProperties": False,
                      "properties": PERMIT_SCHEMA["properties"]["resources"]["properties"]},
    },
}


def parse_application(raw: dict, *, today: date, config: dict, dataset_schemas: dict[str, dict]) -> dict:
    """The validated application (a normalised copy); `dataset_schemas`: name -> registered schema
    of every dataset that has a catalogue entry."""
    if not isinstance(raw, dict):
        raise InvalidInput("an application must be a mapping", field="(top level)")
    doc = normalise_document(raw)
    validate_schema(doc, SCHEMA, "application")
    check_purpose(doc["purpose"])  # Art. 54 purposes are refused here, with their article
    if doc["kind"] == "permit" and not doc.get("pseudonymised_justification"):
        raise InvalidInput("say why pseudonymised data are needed rather than anonymised data (EHDS Art. 67); "
                           "if anonymised statistics suffice, make a data request instead",
                           field="pseudonymised_justification")
    if doc["kind"] == "data_request" and not doc.get("statistics"):
        raise InvalidInput("describe the statistics (tables, counts, breakdowns) the HDAB should produce",
                           field="statistics")
    start = date.fromisoformat(doc["start"])
    if start < today:
        raise InvalidInput(f"the start date {start} is in the past (today is {today})", field="start")
    max_months = config["permits"]["max_months"]
    if doc["months"] > max_months:
        raise InvalidInput(f"{doc['months']} months is longer than this HDAB grants ({max_months})", field="months")
    check_resources(doc.get("resources") or {}, config)
    seen = set()
    for i, d in enumerate(doc["datasets"]):
        name = d["dataset"]
        if name in seen:
            raise InvalidInput(f"dataset {name!r} is listed twice", field=f"datasets.{i}.dataset")
        seen.add(name)
        schema = dataset_schemas.get(name)
        if schema is None:
            raise InvalidInput(f"dataset {name!r} is not in the catalogue", field=f"datasets.{i}.dataset")
        for table, columns in d["tables"].items():
            t = schema["tables"].get(table)
            if t is None:
                raise InvalidInput(f"dataset {name!r} has no table {table!r}", field=f"datasets.{i}.tables.{table}")
            for c in columns:
                info = t["columns"].get(c)
                if info is None:
                    raise InvalidInput(f"dataset {name!r} has no variable {table}.{c}",
                                       field=f"datasets.{i}.tables.{table}")
                if info["class"] == "direct_identifier":
                    raise InvalidInput(f"{table}.{c} of {name!r} is a direct identifier and is never made available",
                                       field=f"datasets.{i}.tables.{table}")
    members = [m["username"] for m in doc.get("team") or []]
    if len(set(members)) != len(members):
        raise InvalidInput("a team member is listed twice", field="team")
    doc.setdefault("team", [])
    return doc


def check_resources(resources: dict, config: dict) -> None:
    top = config["permits"]["max_resources"]
    if resources.get("cpu_limit", 0) > top["cpu_limit"]:
        raise InvalidInput(f"at most {top['cpu_limit']} CPUs per workspace", field="resources.cpu_limit")
    if "mem_limit" in resources and parse_bytes(resources["mem_limit"]) > parse_bytes(top["mem_limit"]):
        raise InvalidInput(f"at most {top['mem_limit']} memory per workspace", field="resources.mem_limit")


def team_usernames(doc: dict, applicant: str) -> list[str]:
    return [applicant] + [m["username"] for m in doc.get("team") or [] if m["username"] != applicant]


def requested_variables(doc: dict) -> dict[str, dict[str, list[str]]]:
    """dataset -> {table: [columns]} as requested."""
    return {d["dataset"]: {t: list(c) for t, c in d["tables"].items()} for d in doc["datasets"]}


def check_subset(granted: dict, requested: dict) -> None:
    """A partial grant may only narrow what was requested."""
    for ds, tables in granted.items():
        if ds not in requested:
            raise InvalidInput(f"dataset {ds!r} was not requested", field=f"granted.{ds}")
        for table, cols in tables.items():
            extra = sorted(set(cols) - set(requested[ds].get(table, [])))
            if extra:
                raise InvalidInput(f"{ds}: {table}.{extra[0]} was not requested", field=f"granted.{ds}.{table}")
            if not cols:
                raise InvalidInput(f"{ds}: table {table} has no variable left", field=f"granted.{ds}.{table}")
