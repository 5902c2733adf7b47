"""Significant findings (EHDS Art. 61(5)): a researcher reports, on a pseudonym of their permit's
extract, a finding that matters for that person's health; the HDAB accepts or rejects it (a member
of the permit never decides); the key holder resolves the pseudonym with the permit's key, in
DuckDB over the source, to the person's keyed hash and the data holder's own person key; then the
person learns it on their citizens' page (when they allowed re-contact in a donation) or the data
holder is asked to inform them. The researcher only ever sees the finding's id and state.

The state machine is the table TRANSITIONS; every step is audited. Must not import `egress`.
"""

from __future__ import annotations

import json
import re
import uuid

import duckdb
import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.citizens.tables import donations, findings
from hub.datasets.registry import get_dataset
from hub.datasets.source import attach, quote_ident, source_tables
from hub.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from hub.permits.store import PermitStore
from hub.provision.keys import KeyStore, hmac_pads, hmac_sql
from hub.provision.plan import PSEUDONYM_HEX

# (state, action) -> next state
TRANSITIONS = {
    ("reported", "accept"): "accepted",
    ("reported", "reject"): "rejected",
    ("accepted", "resolve"): "resolved",
    ("accepted", "unresolvable"): "unresolvable",
}
PSEUDONYM = re.compile(rf"^[0-9a-f]{{{PSEUDONYM_HEX}}}$")
MAX_TEXT = 2000


def _next(state: str, action: str) -> str:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise Conflict(f"cannot {action} a finding that is {state}") from None


def report(engine: sa.Engine, permit_id: str, reporter: str, pseudonym: str, text: str) -> dict:
    """A permit member's report; returns only {id, state}."""
    permit = PermitStore(engine).get(permit_id)
    if not permit.is_member(reporter):
        raise Forbidden(f"{reporter} is not a member of permit {permit_id}")
    if permit.status != "active":
        raise Conflict(f"permit {permit_id} is {permit.status}: findings are reported while it is active")
    if not isinstance(pseudonym, str) or not PSEUDONYM.match(pseudonym):
        raise InvalidInput(f"the pseudonym must be the {PSEUDONYM_HEX} hex characters of the extract's person_id",
                           field="pseudonym")
    if not isinstance(text, str) or not 10 <= len(text.strip()) <= MAX_TEXT:
        raise InvalidInput(f"describe the finding in 10-{MAX_TEXT} characters", field="text")
    fid = "FND-" + uuid.uuid4().hex[:12].upper()
    now = utc_now_iso()
    with engine.begin() as conn:
        conn.execute(findings.insert().values(id=fid, permit_id=permit_id, pseudonym=pseudonym, text=text.strip(),
                                              state="reported", reported_by=reporter, reported_at=now, updated_at=now))
        audit.record(conn, actor=reporter, role="researcher", action="finding.report", permit_id=permit_id,
                     object_id=fid, detail={"chars": len(text.strip())})
    return {"id": fid, "state": "reported"}


def get(engine: sa.Engine, finding_id: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.select(findings).where(findings.c.id == finding_id)).mappings().first()
    if row is None:
        raise NotFound(f"no finding {finding_id[:40]!r}")
    return dict(row)


def for_researcher(row: dict) -> dict:
    """What the reporting researcher may see: never the resolution."""
    return {k: row[k] for k in ("id", "permit_id", "state", "reported_at")}


def review(engine: sa.Engine, finding_id: str, decider: str, accept: bool, reason: str) -> dict:
    row = get(engine, finding_id)
    if PermitStore(engine).get(row["permit_id"]).is_member(decider):
        raise Forbidden(f"{decider} is a member of permit {row['permit_id']} and cannot decide its findings")
    if not reason or len(reason) > MAX_TEXT:
        raise InvalidInput(f"give the reason in 1-{MAX_TEXT} characters", field="reason")
    state = _next(row["state"], "accept" if accept else "reject")
    with engine.begin() as conn:
        conn.execute(findings.update().where(findings.c.id == finding_id, findings.c.state == row["state"])
                     .values(state=state, decided_by=decider, reason=reason, updated_at=utc_now_iso()))
        audit.record(conn, actor=decider, role="decider", action="finding.review", permit_id=row["permit_id"],
                     object_id=finding_id, detail={"state": state})
    return {"id": finding_id, "state": state}


def _resolve_in_source(engine: sa.Engine, settings, permit_id: str, pseudonym: str) -> tuple[str, str] | None:
    """(keyed hash of the national identifier, source person key) of the person behind `pseudonym`."""
    permit = PermitStore(engine).get(permit_id)
    dataset = get_dataset(engine, permit.dataset)
    schema = dataset.schema
    cols = schema["tables"][schema["person_table"]]["columns"]
    pid = "p." + quote_ident(cols[schema["person_key"]]["source_name"])
    nid = "p." + quote_ident(cols[schema.get("national_id_column", "person_source_value")]["source_name"])
    keys = KeyStore(settings.keys_dir)
    ipad, opad = hmac_pads(keys.permit_key(permit.id))
    oipad, oopad = hmac_pads(keys.optout_key())
    nid_hash = f"CAST({nid} AS VARCHAR)" if schema.get("national_id_hashed") else hmac_sql(nid, "oipad", "oopad")
    con = duckdb.connect(":memory:")
    try:
        attach(con, dataset.ref)
        rel = source_tables(con, dataset.ref)[schema["person_table"]]
        sql = (f"SELECT {nid_hash}, CAST({pid} AS VARCHAR) FROM {rel} p WHERE "
               f"substr({hmac_sql(repr('person:') + ' || ' + pid, 'ipad', 'opad')}, 1, {PSEUDONYM_HEX}) = $pseudo")
        params = {"ipad": ipad, "opad": opad, "pseudo": pseudonym}
        if not schema.get("national_id_hashed"):
            params.update(oipad=oipad, oopad=oopad)
        row = con.execute(sql, params).fetchone()
    finally:
        con.close()
    return (row[0], row[1]) if row else None


def resolve(engine: sa.Engine, settings, finding_id: str, actor: str) -> dict:
    """The key holder's step: pseudonym -> person; chooses the channel (the citizen's page when a
    donation of theirs allows re-contact, else the data holder)."""
    row = get(engine, finding_id)
    _next(row["state"], "resolve")
    found = _resolve_in_source(engine, settings, row["permit_id"], row["pseudonym"])
    now = utc_now_iso()
    with engine.begin() as conn:
        if found is None:
            state = _next(row["state"], "unresolvable")
            conn.execute(findings.update().where(findings.c.id == finding_id).values(state=state, updated_at=now))
            channel = None
        else:
            id_hash, source_person = found
            recontact = any(json.loads(c[0]).get("recontact") for c in conn.execute(
                sa.select(donations.c.consent_json).where(donations.c.id_hash == id_hash, donations.c.state == "held")))
            channel = "citizen" if recontact else "data_holder"
            state = "resolved"
            conn.execute(findings.update().where(findings.c.id == finding_id)
                         .values(state=state, id_hash=id_hash, source_person=source_person, channel=channel,
                                 updated_at=now))
        audit.record(conn, actor=actor, role="key_holder", action="finding.resolve", permit_id=row["permit_id"],
                     object_id=finding_id, detail={"state": state, "channel": channel})
    return {"id": finding_id, "state": state, "channel": channel}


def for_citizen(engine: sa.Engine, id_hash: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(findings.c.id, findings.c.text, findings.c.updated_at, findings.c.permit_id)
                            .where(findings.c.id_hash == id_hash, findings.c.state == "resolved",
                                   findings.c.channel == "citizen").order_by(findings.c.updated_at)).all()
    return [{"id": r.id, "text": r.text, "date": r.updated_at[:10], "permit_id": r.permit_id} for r in rows]


def to_inform(engine: sa.Engine, dataset: str) -> list[dict]:
    """The data holder's list: resolved findings on its dataset to pass on to the person."""
    out = []
    store = PermitStore(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(findings).where(findings.c.state == "resolved",
                                                      findings.c.channel == "data_holder")).mappings().all()
    for r in rows:
        if store.get(r["permit_id"]).dataset == dataset:
            out.append({"id": r["id"], "dataset": dataset, "source_person": r["source_person"], "text": r["text"]})
    return out


def listing(engine: sa.Engine, state: str | None = None) -> list[dict]:
    q = sa.select(findings.c.id, findings.c.permit_id, findings.c.state, findings.c.reported_at, findings.c.channel)
    if state:
        q = q.where(findings.c.state == state)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(findings.c.reported_at)).mappings()]
