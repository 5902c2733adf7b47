"""Permit model: the parsed, validated permit document (pure; no I/O).

`parse_permit(doc)` checks structure (schema) and meaning (purpose, dates, members);
`check_against_dataset(permit, dataset_schema)` refuses a permit wider than its dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date

from hub.exceptions import InvalidInput
from hub.permits.purposes import check_purpose
from hub.permits.schema import PERMIT_SCHEMA
from hub.yamlio import validate_schema

MAX_VALIDITY_DAYS = 3653  # EHDS Art. 68(12): at most 10 years


@dataclass(frozen=True)
class Member:
    username: str
    role: str


@dataclass(frozen=True)
class DpBudget:
    epsilon: float = 1.0
    delta: float = 1e-6
    per_member: bool = False
    auto_release: bool = False
    max_query_epsilon: float = 10.0        # one query may spend at most this much
    auto_release_max_epsilon: float = 1.0  # auto_release only up to this epsilon per query


@dataclass(frozen=True)
class EgressPolicy:
    threshold: int = 10
    dominance_n: int = 2
    dominance_k: float = 0.9
    p_percent: float = 0.1
    rounding_base: int = 5
    reviewers_required: int = 2
    max_file_bytes: int = 16 * 1024 * 1024
    # ACRO's vocabulary (hub.permits.acro maps an ACRO policy file onto these names)
    dof_threshold: int = 10
    zeros_are_disclosive: bool = True
    check_missing_values: bool = True
    # a table without verified evidence (provenance re-executed, per-cell evidence) cannot be approved
    require_provenance: bool = True
    check_dominance: bool = True
    check_p_percent: bool = True
    check_dof: bool = True
    check_secondary_suppression: bool = True
    check_differencing: bool = True
    acro_policy: str | None = None  # name of the ACRO file the values came from


@dataclass(frozen=True)
class Resources:
    mem_limit: str | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None


@dataclass(frozen=True)
class Permit:
    id: str
    title: str
    purpose: str
    organisation: str
    principal_investigator: str
    members: tuple[Member, ...]
    dataset: str
    tables: dict  # table -> tuple of columns
    valid_from: date
    valid_until: date
    cohort: dict = field(default_factory=dict)
    generalise: dict = field(default_factory=dict)  # "table.column" -> rule
    dp: DpBudget = DpBudget()
    egress: EgressPolicy = EgressPolicy()
    resources: Resources = Resources()
    min_k: int | None = None  # k_anonymity.min_k: the provisioning gate (hub.provision.kanon)
    egress_retention_days: int | None = None  # retention.egress_days (egress.retention)
    purpose_description: str = ""
    version: int = 0
    status: str = "draft"
    document: dict = field(default_factory=dict, compare=False, repr=False)

    def is_member(self, username: str) -> bool:
        return any(m.username == username for m in self.members)

    def member_role(self, username: str) -> str | None:
        return next((m.role for m in self.members if m.username == username), None)

    @property
    def digest(self) -> str:
        return document_digest(self.document)

    def with_state(self, *, version: int, status: str) -> "Permit":
        from dataclasses import replace

        return replace(self, version=version, status=status)


def document_digest(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _to_date(value, fld: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"not a date (YYYY-MM-DD): {value!r}", field=fld) from None


def normalise_document(doc: dict) -> dict:
    """YAML turns unquoted dates into date objects; the schema and digests want strings."""
    def norm(v):
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v
    return norm(doc)


def parse_permit(raw: dict) -> Permit:
    doc = normalise_document(raw)
    validate_schema(doc, PERMIT_SCHEMA, "permit")
    check_purpose(doc["purpose"])
    valid_from = _to_date(doc["valid_from"], "valid_from")
    valid_until = _to_date(doc["valid_until"], "valid_until")
    if valid_until <= valid_from:
        raise InvalidInput(f"valid_until ({valid_until}) must be after valid_from ({valid_from})", field="valid_until")
    if (valid_until - valid_from).days > MAX_VALIDITY_DAYS:
        raise InvalidInput("a permit is valid for at most 10 years (EHDS Art. 68)", field="valid_until")
    seen: set[str] = set()
    for i, m in enumerate(doc["members"]):
        if m["username"] in seen:
            raise InvalidInput(f"duplicate member {m['username']!r}", field=f"members.{i}.username")
        seen.add(m["username"])
    if doc["principal_investigator"] not in seen:
        raise InvalidInput(f"principal investigator {doc['principal_investigator']!r} must be listed in members",
                           field="principal_investigator")
    cohort = doc.get("cohort") or {}
    if "age" in cohort and cohort["age"].get("min", 0) > cohort["age"].get("max", 130):
        raise InvalidInput("cohort age min is greater than max", field="cohort.age")
    if "date_window" in cohort:
        dw = cohort["date_window"]
        if _to_date(dw["to"], "cohort.date_window.to") < _to_date(dw["from"], "cohort.date_window.from"):
            raise InvalidInput("date window 'to' is before 'from'", field="cohort.date_window")
    dp = DpBudget(**doc.get("dp", {}))
    return Permit(
        id=doc["id"],
        title=doc["title"],
        purpose=doc["purpose"],
        purpose_description=doc.get("purpose_description", ""),
        organisation=doc["organisation"],
        principal_investigator=doc["principal_investigator"],
        members=tuple(Member(m["username"], m["role"]) for m in doc["members"]),
        dataset=doc["dataset"],
        tables={t: tuple(cols) for t, cols in doc["tables"].items()},
        valid_from=valid_from,
        valid_until=valid_until,
        cohort=cohort,
        generalise=doc.get("generalise") or {},
        dp=dp,
        egress=EgressPolicy(**doc.get("egress", {})),
        resources=Resources(**doc.get("resources", {})),
        min_k=(doc.get("k_anonymity") or {}).get("min_k"),
        egress_retention_days=(doc.get("retention") or {}).get("egress_days"),
        document=doc,
    )


# OMOP event date columns used by a date window when the permit does not name them.
DEFAULT_DATE_COLUMNS = {
    "condition_occurrence": "condition_start_date",
    "drug_exposure": "drug_exposure_start_date",
    "measurement": "measurement_date",
    "visit_occurrence": "visit_start_date",
    "observation": "observation_date",
    "procedure_occurrence": "procedure_date",
    "death": "death_date",
}


def check_against_dataset(permit: Permit, schema: dict) -> None:
    """Refuse anything the dataset does not have, and columns that may never leave the source."""
    tables = schema["tables"]
    person_key = schema["person_key"]

    def col(table: str, column: str, fld: str) -> dict:
        if table not in tables:
            raise InvalidInput(f"dataset {permit.dataset!r} has no table {table!r}", field=fld)
        if column not in tables[table]["columns"]:
            raise InvalidInput(f"table {table!r} of dataset {permit.dataset!r} has no column {column!r}", field=fld)
        return tables[table]["columns"][column]

    for table, columns in permit.tables.items():
        if table not in tables:
            raise InvalidInput(f"dataset {permit.dataset!r} has no table {table!r}", field=f"tables.{table}")
        for c in columns:
            info = col(table, c, f"tables.{table}")
            if info["class"] == "direct_identifier":
                raise InvalidInput(f"column {table}.{c} is a direct identifier and can never be part of an extract",
                                   field=f"tables.{table}")
        if person_key not in tables[table]["columns"] and table != schema["person_table"]:
            pass  # tables without persons (vocabularies) are allowed
    cohort = permit.cohort
    for i, rule in enumerate(cohort.get("codes", [])):
        col(rule["table"], rule["column"], f"cohort.codes.{i}")
        if person_key not in tables[rule["table"]]["columns"]:
            raise InvalidInput(f"table {rule['table']!r} has no person key to select a cohort by", field=f"cohort.codes.{i}")
    if "age" in cohort:
        col(schema["person_table"], "year_of_birth", "cohort.age")
    if "date_window" in cohort:
        for table, column in date_window_columns(permit).items():
            col(table, column, f"cohort.date_window.columns.{table}")
    for target, rule in permit.generalise.items():
        table, column = target.split(".", 1)
        if column not in permit.tables.get(table, ()):
            raise InvalidInput(f"generalisation of {target} but the permit does not allow that column",
                               field=f"generalise.{target}")
        info = col(table, column, f"generalise.{target}")
        t = info["type"].upper()
        if "date" in rule and not re.match(r"^(DATE|TIMESTAMP)", t):
            raise InvalidInput(f"date rule on {target} of type {t}", field=f"generalise.{target}")
        if "band" in rule and not re.match(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|DOUBLE|FLOAT|DECIMAL|UBIGINT|UINTEGER)", t):
            raise InvalidInput(f"band rule on non-numeric {target} ({t})", field=f"generalise.{target}")
        if info["class"] in ("person_key",) or info.get("key"):
            raise InvalidInput(f"{target} is a key: it is pseudonymised, not generalised", field=f"generalise.{target}")


def date_window_columns(permit: Permit) -> dict[str, str]:
    """Event table -> date column the date window applies to (only tables in the permit)."""
    dw = permit.cohort.get("date_window")
    if not dw:
        return {}
    named = dw.get("columns") or {}
    out = {}
    for table in permit.tables:
        if table in named:
            out[table] = named[table]
        elif table in DEFAULT_DATE_COLUMNS:
            out[table] = DEFAULT_DATE_COLUMNS[table]
    return out
