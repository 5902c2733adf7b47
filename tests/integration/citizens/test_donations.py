"""Data donations with consent (HEALTH-X dataLOFT): real FHIR parsing (fhir.resources), the data
trustee's DuckDB build, real provisioning filtered by consent, withdrawal, hostile uploads."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from hub.citizens.donations import donate, my_donations, withdraw_donation
from hub.citizens.membership import check_person
from hub.citizens.tables import donations
from hub.citizens.trustee import build_donated
from hub.citizens.usage import permits_that_used
from hub.exceptions import Conflict, InvalidInput
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.provision.run import provision

NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()
RESEARCH = {"purposes": ["scientific_research"], "expires": NEXT_YEAR, "recontact": True}
TEACHING = {"purposes": ["education"], "expires": NEXT_YEAR, "recontact": False}
ANNA, BERT = "a" * 64, "b" * 64  # donors' keyed hashes (as hub.citizens.identity makes them)

BUNDLE = {
    "resourceType": "Bundle", "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1970-03-02"}},
        {"resource": {"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40055000"}]},
                      "onsetDateTime": "2015-06-01"}},
        {"resource": {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p"},
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2885-2"}]},
                      "effectiveDateTime": "2016-01-10", "valueQuantity": {"value": 7.1, "unit": "g/dL"}}},
    ],
}
CSV = ("type,system,code,date,value,unit\n"
       "patient,,male,1962-11-20,,\n"
       "condition,snomed,40055000,2012-02-03,,\n"
       "measurement,loinc,2885-2,2013-05-06,6.5,g/dL\n")


def permit_doc(pid: str, purpose: str) -> dict:
    return {"id": pid, "title": f"Donated data for {purpose}", "purpose": purpose,
            "purpose_description": "Test permit on the donated dataset.", "organisation": "Example University",
            "principal_investigator": "alice", "members": [{"username": "alice", "role": "principal_investigator"}],
            "dataset": "donated",
            "tables": {"person": ["person_id", "gender_concept_id", "year_of_birth"],
                       "condition_occurrence": ["person_id", "condition_concept_id"]},
            "generalise": {"person.year_of_birth": {"band": 5}},
            "valid_from": "2026-01-01", "valid_until": "2030-12-31",
            "egress": {"threshold": 1}}


def persons(engine, pid: str) -> int:
    path = Path(current_extract(engine, pid)["path"])
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{path / 'person.parquet'}')").fetchone()[0]


def stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(donations)).scalar()


def test_consent_decides_who_a_permit_gets_and_withdrawal_removes(settings, engine):
    anna = donate(engine, ANNA, "anna", "fhir", json.dumps(BUNDLE).encode(), RESEARCH)
    donate(engine, BERT, "bert", "csv", CSV.encode(), TEACHING)
    assert anna["conditions"] == 1 and anna["measurements"] == 1
    built = build_donated(engine, settings, "trustee")
    assert built["persons"] == 2
    store = PermitStore(engine)
    for pid, purpose in (("DON-RES-1", "scientific_research"), ("DON-EDU-1", "education"),
                         ("DON-PH-1", "public_health")):
        store.apply(permit_doc(pid, purpose), "tester")
        provision(engine, settings, pid, "tester")
    # the research permit gets only Anna, the teaching one only Bert, public health nobody
    assert (persons(engine, "DON-RES-1"), persons(engine, "DON-EDU-1"), persons(engine, "DON-PH-1")) == (1, 1, 0)
    assert [p["id"] for p in permits_that_used(engine, ANNA)] == ["DON-RES-1"]
    assert [p["id"] for p in permits_that_used(engine, BERT)] == ["DON-EDU-1"]
    # the FHIR codes were mapped to OMOP concepts (Eunomia's vocabulary), not left at 0
    src = duckdb.connect(built["path"], read_only=True)
    assert src.execute("SELECT min(condition_concept_id) FROM condition_occurrence").fetchone()[0] > 0
    assert src.execute("SELECT count(*) FROM person WHERE person_source_value = ?", [ANNA]).fetchone()[0] == 1
    src.close()

    old = Path(current_extract(engine, "DON-RES-1")["path"])
    withdraw_donation(engine, ANNA, anna["id"], "anna")
    rebuilt = build_donated(engine, settings, "trustee")
    assert rebuilt["persons"] == 1
    res = next(p for p in rebuilt["permits"] if p["permit_id"] == "DON-RES-1")
    assert res["removed_versions"] == [1] and not old.exists()
    assert persons(engine, "DON-RES-1") == 0
    assert all(not r["in_current"] and not r["versions_on_disk_holding"] for r in check_person(engine, ANNA))
    assert persons(engine, "DON-EDU-1") == 1  # Bert stays
    assert [d["state"] for d in my_donations(engine, ANNA)] == ["withdrawn"]


def test_the_same_upload_twice_is_refused(engine):
    donate(engine, ANNA, "anna", "csv", CSV.encode(), RESEARCH)
    with pytest.raises(Conflict, match="already donated"):
        donate(engine, ANNA, "anna", "csv", CSV.encode(), RESEARCH)
    assert stored(engine) == 1


def _bundle(**change):
    b = json.loads(json.dumps(BUNDLE))
    b.update(change)
    return json.dumps(b).encode()


@pytest.mark.parametrize("fmt,data,consent,message", [
    ("fhir", b"{not json", RESEARCH, "not JSON"),
    ("fhir", json.dumps({"resourceType": "Patient"}).encode(), RESEARCH, "not a FHIR Bundle"),
    ("fhir", _bundle(entry=[{"resource": {"resourceType": "Patient", "birthDate": "not-a-date"}}]), RESEARCH,
     "not a valid FHIR R4 bundle"),
    ("fhir", _bundle(entry=[{"resource": {"resourceType": "Medication"}}]), RESEARCH, "unsupported resource type"),
    ("fhir", _bundle(entry=BUNDLE["entry"][1:]), RESEARCH, "exactly one Patient"),
    ("csv", b"kind,code\nx,y\n", RESEARCH, "header must be"),
    ("csv", CSV.replace("2012-02-03", "03/02/2012").encode(), RESEARCH, "line 3: not a date"),
    ("csv", CSV.replace("snomed", "icd9").encode(), RESEARCH, "SNOMED CT or LOINC"),
    ("csv", b"\xff\xfe", RESEARCH, "not UTF-8"),
    ("csv", CSV.encode(), None, "needs a consent"),
    ("csv", CSV.encode(), {"purposes": [], "expires": NEXT_YEAR}, "at least one purpose"),
    ("csv", CSV.encode(), {"purposes": ["advertising"], "expires": NEXT_YEAR}, "unknown purpose"),
    ("csv", CSV.encode(), {"purposes": ["education"], "expires": "2000-01-01"}, "in the future"),
    ("xml", b"<x/>", RESEARCH, "format must be"),
])
def test_hostile_donations_are_refused_and_nothing_is_stored(engine, fmt, data, consent, message):
    with pytest.raises(InvalidInput, match=message):
        donate(engine, ANNA, "anna", fmt, data, consent)
    assert stored(engine) == 0
