"""The data trustee (HEALTH-X dataLOFT): pseudonymises the held, unexpired donations of donors who
have not opted out into the `donated` dataset (a DuckDB OMOP file, registered like any source), then
re-provisions the live permits on it and deletes their older extract versions that hold a donor who
is no longer in it (withdrawn consent, opt-out). Persons get fresh random person ids at every build;
the donor's keyed hash is the dataset's national-identifier column (`national_id_hashed`), so opt-outs
and "who used my data" work as for any source. Codes are mapped to OMOP concepts through the
vocabulary of the Eunomia example when it is installed (else concept 0, the source code kept).

Run by `spe citizens build-donated` (operator or data trustee). Must not import `egress`.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import date
from pathlib import Path

import duckdb
import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.citizens.tables import donations, extract_persons
from hub.datasets.registry import add_dataset
from hub.exceptions import NotFound
from hub.provision.extracts import delete_extract_versions
from hub.registry_tables import extracts, optouts, permits

DATASET = "donated"
DESCRIPTOR = Path(__file__).parent / "donated.yaml"
GENDER_CONCEPTS = {"male": 8507, "female": 8532, "other": 8521, "unknown": 0}

DDL = """
CREATE TABLE person (person_id BIGINT, person_source_value VARCHAR, gender_concept_id INTEGER,
                     year_of_birth INTEGER, month_of_birth INTEGER, day_of_birth INTEGER);
CREATE TABLE condition_occurrence (condition_occurrence_id BIGINT, person_id BIGINT, condition_concept_id INTEGER,
                                   condition_start_date DATE, condition_source_value VARCHAR);
CREATE TABLE measurement (measurement_id BIGINT, person_id BIGINT, measurement_concept_id INTEGER,
                          measurement_date DATE, value_as_number DOUBLE, unit_source_value VARCHAR,
                          measurement_source_value VARCHAR);
CREATE TABLE donation_consent (person_id BIGINT, purposes VARCHAR, expires DATE, withdrawn BOOLEAN,
                               recontact BOOLEAN);
"""


def vocabulary() -> dict[tuple[str, str], int]:
    """(vocabulary, code) -> OMOP concept id, from the Eunomia example's concept table if installed."""
    try:
        from hub.datasets.example import eunomia_path

        path = eunomia_path()
    except NotFound:
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT vocabulary_id, concept_code, concept_id FROM concept "
                           "WHERE vocabulary_id IN ('SNOMED', 'LOINC')").fetchall()
    finally:
        con.close()
    return {(v, c): i for v, c, i in rows}


def merge_by_donor(held: list[dict], today: date) -> dict[str, dict]:
    """Per donor: the latest person record, every record, and the consent every donation shares
    (purposes in all of them, the earliest expiry, re-contact only if all allow it). Pure."""
    out: dict[str, dict] = {}
    for d in sorted(held, key=lambda d: d["submitted_at"]):
        consent, rows = json.loads(d["consent_json"]), json.loads(d["rows_json"])
        if date.fromisoformat(consent["expires"]) < today:
            continue
        cur = out.get(d["id_hash"])
        if cur is None:
            out[d["id_hash"]] = {"person": rows["person"], "conditions": list(rows["condition_occurrence"]),
                                 "measurements": list(rows["measurement"]), "purposes": set(consent["purposes"]),
                                 "expires": consent["expires"], "recontact": consent["recontact"]}
        else:
            cur["person"] = rows["person"]
            cur["conditions"] += rows["condition_occurrence"]
            cur["measurements"] += rows["measurement"]
            cur["purposes"] &= set(consent["purposes"])
            cur["expires"] = min(cur["expires"], consent["expires"])
            cur["recontact"] = cur["recontact"] and consent["recontact"]
    return {h: v for h, v in out.items() if v["purposes"]}


def write_dataset(path: Path, donors: dict[str, dict], concepts: dict) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(DDL)
        ids = {h: i for i, h in enumerate(sorted(donors, key=lambda _: secrets.randbits(64)), 1)}
        cid = mid = 0
        for h, d in donors.items():
            pid, birth = ids[h], date.fromisoformat(d["person"]["birth_date"])
            con.execute("INSERT INTO person VALUES (?, ?, ?, ?, ?, ?)",
                        [pid, h, GENDER_CONCEPTS.get(d["person"]["gender"], 0), birth.year, birth.month, birth.day])
            con.execute("INSERT INTO donation_consent VALUES (?, ?, ?, FALSE, ?)",
                        [pid, " ".join(sorted(d["purposes"])), d["expires"], d["recontact"]])
            for c in d["conditions"]:
                cid += 1
                con.execute("INSERT INTO condition_occurrence VALUES (?, ?, ?, ?, ?)",
                            [cid, pid, concepts.get((c["vocabulary"], c["code"]), 0), c["start_date"], c["code"]])
            for m in d["measurements"]:
                mid += 1
                con.execute("INSERT INTO measurement VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [mid, pid, concepts.get((m["vocabulary"], m["code"]), 0), m["date"], m["value"],
                             m["unit"], m["code"]])
        con.execute("CHECKPOINT")
    finally:
        con.close()


def build_donated(engine: sa.Engine, settings, actor: str, today: date | None = None,
                  progress=lambda msg: None) -> dict:
    """Build and register the donated dataset, then bring the live permits on it up to date."""
    from hub.provision.run import provision

    today = today or date.today()
    with engine.connect() as conn:
        opted = {r[0] for r in conn.execute(sa.select(optouts.c.id_hash))}
        held = [dict(r) for r in conn.execute(sa.select(donations).where(donations.c.state == "held")).mappings()]
    donors = {h: d for h, d in merge_by_donor(held, today).items() if h not in opted}
    root = settings.home / "donated"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"donated-{utc_now_iso().replace(':', '')}-{secrets.token_hex(3)}.duckdb"
    progress(f"pseudonymising {len(donors)} donor(s) into {path.name}")
    write_dataset(path, donors, vocabulary())
    os.chmod(path, 0o440)
    _, outcome = add_dataset(engine, name=DATASET, kind="omop-duckdb", source=path, descriptor_path=DESCRIPTOR,
                             actor=actor)
    for old in root.glob("donated-*.duckdb"):
        if old != path:
            old.unlink()
    with engine.begin() as conn:
        audit.record(conn, actor=actor, role="data_trustee", action="donation.build", object_id=DATASET,
                     detail={"donations": len(held), "persons": len(donors), "outcome": outcome})
        live = [r[0] for r in conn.execute(sa.select(permits.c.id).where(permits.c.status.in_(("active", "suspended"))))]
    reprovisioned = []
    for pid in live:
        from hub.permits.store import PermitStore

        if PermitStore(engine).get(pid).dataset != DATASET:
            continue
        progress(f"re-provisioning {pid}")
        result = provision(engine, settings, pid, actor)
        with engine.begin() as conn:
            gone = _versions_holding_others(conn, pid, set(donors))
            removed = delete_extract_versions(conn, pid, gone)
            if removed:
                audit.record(conn, actor=actor, role="data_trustee", action="extract.delete", permit_id=pid,
                             detail={"versions": removed, "reason": "donors withdrew or opted out"})
        reprovisioned.append({"permit_id": pid, "extract_version": result.extract_version, "removed_versions": removed})
    return {"path": str(path), "persons": len(donors), "donations": len(held), "permits": reprovisioned}


def _versions_holding_others(conn: sa.Connection, permit_id: str, present: set[str]) -> list[int]:
    rows = conn.execute(sa.select(extract_persons.c.extract_version, extract_persons.c.id_hash)
                        .join(extracts, sa.and_(extracts.c.permit_id == extract_persons.c.permit_id,
                                                extracts.c.extract_version == extract_persons.c.extract_version))
                        .where(extract_persons.c.permit_id == permit_id, extracts.c.state == "superseded")).all()
    return sorted({r.extract_version for r in rows if r.id_hash not in present})
