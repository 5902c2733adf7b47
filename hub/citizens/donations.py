"""Data donations (HEALTH-X dataLOFT): a citizen gives a FHIR R4 bundle (parsed with `fhir.resources`)
or a CSV of SPE's declared form, with a consent (hub.citizens.consent). Both become the same
OMOP-shaped rows (a person, conditions, measurements), stored with the donor's keyed hash only;
the data trustee later pseudonymises them into the `donated` dataset (hub.citizens.trustee).

Uploads are hostile input: any problem refuses the whole donation with one line naming it, and
nothing is stored. The same upload twice is a 409. Must not import `egress`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from datetime import date

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.citizens.consent import parse_consent
from hub.citizens.tables import donations
from hub.exceptions import Conflict, InvalidInput, NotFound

MAX_BYTES = 2 * 1024 * 1024
MAX_RECORDS = 5000
FORMATS = ("fhir", "csv")
CSV_HEADER = ["type", "system", "code", "date", "value", "unit"]  # the declared form, spe-donation-v1
GENDERS = ("male", "female", "other", "unknown")
SYSTEMS = {"http://snomed.info/sct": "SNOMED", "snomed": "SNOMED", "http://loinc.org": "LOINC", "loinc": "LOINC"}


def _date(value, field: str) -> str:
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD): {str(value)[:20]!r}", field=field) from None


def _code(system, code, field: str) -> dict:
    vocab = SYSTEMS.get(str(system or "").strip().lower())
    if vocab is None:
        raise InvalidInput(f"{field}: code system must be SNOMED CT or LOINC, not {str(system)[:60]!r}", field=field)
    code = str(code or "").strip()
    if not code or len(code) > 50:
        raise InvalidInput(f"{field}: a code is required (at most 50 characters)", field=field)
    return {"vocabulary": vocab, "code": code}


def _value(raw, field: str) -> float | None:
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: the value must be a number, not {str(raw)[:20]!r}", field=field) from None


def parse_fhir(data: bytes) -> dict:
    """A FHIR R4 Bundle with exactly one Patient, and Conditions and Observations about them."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the FHIR bundle is not JSON", field="fhir") from None
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise InvalidInput("the upload is not a FHIR Bundle (resourceType must be \"Bundle\")", field="fhir")
    try:
        bundle = Bundle.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"not a valid FHIR R4 bundle: {where}: {first.get('msg', '')}"[:300], field="fhir") from None
    except Exception as err:  # noqa: BLE001 - fhir.resources raises several kinds for hostile input
        raise InvalidInput(f"not a valid FHIR R4 bundle: {str(err).splitlines()[0][:200]}", field="fhir") from None
    entries = bundle.entry or []
    if len(entries) > MAX_RECORDS:
        raise InvalidInput(f"the bundle has more than {MAX_RECORDS} entries", field="fhir")
    person, conditions, measurements = None, [], []
    for i, e in enumerate(entries):
        r = e.resource
        kind = r.get_resource_type() if r is not None else "(none)"
        field = f"entry[{i}]"
        if kind == "Patient":
            if person is not None:
                raise InvalidInput("the bundle must describe exactly one Patient (the donor)", field=field)
            if not r.birthDate:
                raise InvalidInput(f"{field}: the Patient needs a birthDate", field=field)
            person = {"gender": r.gender if r.gender in GENDERS else "unknown",
                      "birth_date": _date(r.birthDate, f"{field}.birthDate")}
        elif kind == "Condition":
            coding = (r.code.coding or [None])[0] if r.code else None
            if coding is None:
                raise InvalidInput(f"{field}: the Condition has no code", field=field)
            when = r.onsetDateTime or r.recordedDate
            if when is None:
                raise InvalidInput(f"{field}: the Condition needs onsetDateTime or recordedDate", field=field)
            conditions.append({**_code(coding.system, coding.code, f"{field}.code"),
                               "start_date": _date(when, f"{field}.onsetDateTime")})
        elif kind == "Observation":
            coding = (r.code.coding or [None])[0] if r.code else None
            if coding is None or r.effectiveDateTime is None:
                raise InvalidInput(f"{field}: the Observation needs a code and effectiveDateTime", field=field)
            q = r.valueQuantity
            measurements.append({**_code(coding.system, coding.code, f"{field}.code"),
                                 "date": _date(r.effectiveDateTime, f"{field}.effectiveDateTime"),
                                 "value": float(q.value) if q is not None and q.value is not None else None,
                                 "unit": (q.unit or q.code or "")[:50] if q is not None else ""})
        else:
            raise InvalidInput(f"{field}: unsupported resource type {kind}; supported: Patient, Condition, "
                               f"Observation", field=field)
    if person is None:
        raise InvalidInput("the bundle must describe exactly one Patient (the donor)", field="fhir")
    return {"person": person, "condition_occurrence": conditions, "measurement": measurements}


def parse_csv(data: bytes) -> dict:
    """SPE's declared form `type,system,code,date,value,unit`: one `patient` row (code: gender,
    date: birth date), then `condition` and `measurement` rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"the CSV is not UTF-8 text (byte {err.start})", field="csv") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != CSV_HEADER:
        raise InvalidInput(f"the CSV header must be {','.join(CSV_HEADER)}", field="csv")
    person, conditions, measurements = None, [], []
    for n, row in enumerate(reader, 2):
        if not any(c.strip() for c in row):
            continue
        if n > MAX_RECORDS + 1:
            raise InvalidInput(f"the CSV has more than {MAX_RECORDS} rows", field="csv")
        if len(row) != len(CSV_HEADER):
            raise InvalidInput(f"line {n}: expected {len(CSV_HEADER)} columns, found {len(row)}", field="csv")
        kind, system, code, when, value, unit = (c.strip() for c in row)
        field = f"line {n}"
        if kind == "patient":
            if person is not None:
                raise InvalidInput(f"{field}: only one patient row is allowed", field="csv")
            if code not in GENDERS:
                raise InvalidInput(f"{field}: gender must be one of {', '.join(GENDERS)}", field="csv")
            person = {"gender": code, "birth_date": _date(when, field)}
        elif kind == "condition":
            conditions.append({**_code(system, code, field), "start_date": _date(when, field)})
        elif kind == "measurement":
            measurements.append({**_code(system, code, field), "date": _date(when, field),
                                 "value": _value(value, field), "unit": unit[:50]})
        else:
            raise InvalidInput(f"{field}: type must be patient, condition or measurement", field="csv")
    if person is None:
        raise InvalidInput("the CSV needs one patient row (gender and birth date)", field="csv")
    return {"person": person, "condition_occurrence": conditions, "measurement": measurements}


def donate(engine: sa.Engine, id_hash: str, actor: str, fmt: str, data: bytes, consent_raw,
           today: date | None = None) -> dict:
    """Check everything, then store the donation; returns its summary."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}", field="format")
    if not data:
        raise InvalidInput("the upload is empty", field=fmt)
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the upload is larger than {MAX_BYTES} bytes", field=fmt)
    consent = parse_consent(consent_raw, today or date.today())
    rows = parse_fhir(data) if fmt == "fhir" else parse_csv(data)
    digest = hashlib.sha256(data).hexdigest()
    donation_id = "DON-" + uuid.uuid4().hex[:12].upper()
    with engine.begin() as conn:
        if conn.execute(sa.select(donations.c.id).where(donations.c.id_hash == id_hash, donations.c.sha256 == digest,
                                                        donations.c.state == "held")).first():
            raise Conflict("you have already donated this file; nothing was stored twice")
        conn.execute(donations.delete().where(donations.c.id_hash == id_hash, donations.c.sha256 == digest))
        conn.execute(donations.insert().values(id=donation_id, id_hash=id_hash, format=fmt, sha256=digest,
                                               consent_json=json.dumps(consent, sort_keys=True),
                                               rows_json=json.dumps(rows, sort_keys=True), state="held",
                                               submitted_at=utc_now_iso()))
        audit.record(conn, actor=actor, role="citizen", action="donation.submit", object_id=donation_id,
                     detail={"format": fmt, "sha256": digest, "purposes": consent["purposes"],
                             "expires": consent["expires"], "recontact": consent["recontact"],
                             "conditions": len(rows["condition_occurrence"]), "measurements": len(rows["measurement"])})
    return summary(donation_id, fmt, consent, rows, "held")


def summary(donation_id: str, fmt: str, consent: dict, rows: dict, state: str, submitted_at: str = "") -> dict:
    return {"id": donation_id, "format": fmt, "consent": consent, "state": state, "submitted_at": submitted_at,
            "conditions": len(rows["condition_occurrence"]), "measurements": len(rows["measurement"])}


def my_donations(engine: sa.Engine, id_hash: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(donations).where(donations.c.id_hash == id_hash)
                            .order_by(donations.c.submitted_at)).mappings().all()
    return [summary(r["id"], r["format"], json.loads(r["consent_json"]), json.loads(r["rows_json"]), r["state"],
                    r["submitted_at"]) for r in rows]


def withdraw_donation(engine: sa.Engine, id_hash: str, donation_id: str, actor: str) -> None:
    """Withdraw the consent of one's own donation: the next trustee build leaves it out, and the
    permits whose extracts hold it are re-provisioned (hub.citizens.trustee.rebuild)."""
    with engine.begin() as conn:
        n = conn.execute(donations.update().where(donations.c.id == donation_id, donations.c.id_hash == id_hash,
                                                  donations.c.state == "held")
                         .values(state="withdrawn", withdrawn_at=utc_now_iso())).rowcount
        if not n:
            raise NotFound(f"you have no held donation {donation_id[:40]!r}")
        audit.record(conn, actor=actor, role="citizen", action="donation.withdraw", object_id=donation_id, detail={})
