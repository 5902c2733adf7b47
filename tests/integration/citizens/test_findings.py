"""Significant findings (EHDS Art. 61(5)) on a real provisioned extract: researcher -> HDAB -> key
holder -> data holder or citizen, and the researcher never sees who the person is."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from hub.citizens import findings
from hub.citizens.donations import donate
from hub.citizens.identity import citizen_hash
from hub.citizens.trustee import build_donated
from hub.exceptions import Conflict, Forbidden, InvalidInput
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.provision.keys import KeyStore
from hub.provision.run import provision
from tests.conftest import EXAMPLES
from tests.integration.citizens.test_donations import CSV, permit_doc
from tests.integration.citizens.test_optout_propagation import eunomia_person

P1 = "DEMO-2026-001"  # members alice (PI) and bob
TEXT = "Haemoglobin far below the normal range on two visits: urgent follow-up advised."


def pseudonym_of(settings, permit_id: str, person_id) -> str:
    key = KeyStore(settings.keys_dir).permit_key(permit_id)
    return hmac.new(key, f"person:{person_id}".encode(), hashlib.sha256).hexdigest()[:24]


def test_finding_goes_researcher_hdab_key_holder_data_holder(settings, engine, eunomia):
    PermitStore(engine).apply_file(EXAMPLES / "demo-gibleed.yaml", "tester")
    provision(engine, settings, P1, "tester")
    person_id, national_id = eunomia_person("year_of_birth BETWEEN 1940 AND 1990")
    pseudo = pseudonym_of(settings, P1, person_id)
    path = Path(current_extract(engine, P1)["path"])
    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{path / 'person.parquet'}') "
                                    f"WHERE person_id = ?", [pseudo]).fetchone()[0] == 1

    reported = findings.report(engine, P1, "bob", pseudo, TEXT)
    assert set(reported) == {"id", "state"}
    fid = reported["id"]
    with pytest.raises(Forbidden, match="member"):
        findings.review(engine, fid, "alice", True, "own permit")
    assert findings.review(engine, fid, "diane", True, "clinically significant")["state"] == "accepted"
    out = findings.resolve(engine, settings, fid, "olga")
    assert out == {"id": fid, "state": "resolved", "channel": "data_holder"}
    row = findings.get(engine, fid)
    assert row["id_hash"] == citizen_hash(KeyStore(settings.keys_dir), national_id)
    assert row["source_person"] == str(person_id)
    # the data holder's list names its own person key; the researcher's view never the person
    assert findings.to_inform(engine, "eunomia") == [{"id": fid, "dataset": "eunomia", "source_person": str(person_id),
                                                      "text": TEXT}]
    view = findings.for_researcher(row)
    assert set(view) == {"id", "permit_id", "state", "reported_at"}
    assert national_id not in json.dumps(view) and row["id_hash"] not in json.dumps(view)
    with pytest.raises(Conflict):
        findings.resolve(engine, settings, fid, "olga")  # only once


def test_a_donor_who_allowed_recontact_sees_the_finding(settings, engine):
    consent = {"purposes": ["scientific_research"], "expires": (date.today() + timedelta(days=90)).isoformat(),
               "recontact": True}
    donor = "c" * 64
    donate(engine, donor, "cora", "csv", CSV.encode(), consent)
    build_donated(engine, settings, "trustee")
    PermitStore(engine).apply(permit_doc("DON-RES-9", "scientific_research"), "tester")
    provision(engine, settings, "DON-RES-9", "tester")
    path = Path(current_extract(engine, "DON-RES-9")["path"])
    pseudo = duckdb.connect().execute(f"SELECT person_id FROM read_parquet('{path / 'person.parquet'}')").fetchone()[0]
    fid = findings.report(engine, "DON-RES-9", "alice", pseudo, TEXT)["id"]
    findings.review(engine, fid, "diane", True, "significant")
    assert findings.resolve(engine, settings, fid, "olga")["channel"] == "citizen"
    assert [f["text"] for f in findings.for_citizen(engine, donor)] == [TEXT]
    assert findings.for_citizen(engine, "d" * 64) == []


def test_rejected_and_bad_reports(settings, engine, eunomia):
    PermitStore(engine).apply_file(EXAMPLES / "demo-gibleed.yaml", "tester")
    with pytest.raises(Forbidden, match="not a member"):
        findings.report(engine, P1, "mallory", "0" * 24, TEXT)
    with pytest.raises(InvalidInput, match="pseudonym"):
        findings.report(engine, P1, "bob", "Robert Smith", TEXT)
    with pytest.raises(InvalidInput, match="describe the finding"):
        findings.report(engine, P1, "bob", "0" * 24, "bad")
    fid = findings.report(engine, P1, "bob", "0" * 24, TEXT)["id"]
    assert findings.review(engine, fid, "diane", False, "not significant")["state"] == "rejected"
    with pytest.raises(Conflict, match="rejected"):
        findings.resolve(engine, settings, fid, "olga")
    # an accepted finding on a pseudonym no person has stays unresolved, never guessed
    fid2 = findings.report(engine, P1, "bob", "f" * 24, TEXT)["id"]
    findings.review(engine, fid2, "diane", True, "check")
    assert findings.resolve(engine, settings, fid2, "olga")["state"] == "unresolvable"


def test_hdab_and_key_holder_steps_through_the_cli(settings, engine, eunomia, spe):
    PermitStore(engine).apply_file(EXAMPLES / "demo-gibleed.yaml", "tester")
    provision(engine, settings, P1, "tester")
    person_id, _ = eunomia_person("year_of_birth BETWEEN 1940 AND 1990")
    fid = findings.report(engine, P1, "bob", pseudonym_of(settings, P1, person_id), TEXT)["id"]
    code, out, _ = spe("findings", "list", "--state", "reported")
    assert code == 0 and fid in out
    code, _, err = spe("findings", "resolve", fid)
    assert code != 0 and "cannot resolve a finding that is reported" in err
    assert spe("findings", "review", fid, "accept", "--reason", "significant")[0] == 0
    code, out, _ = spe("findings", "resolve", fid)
    assert code == 0 and "resolved (listed for the data holder)" in out
    code, out, _ = spe("findings", "to-inform", "eunomia")
    assert code == 0 and fid in out and f" {person_id} " in f" {out} ".replace("\n", " ")
