"""A researcher reports a significant finding from the workspace through the real egress service
(a real hub verifies the tokens); the HDAB and the key holder act operator-side; the researcher's
view never carries the person."""

from __future__ import annotations

import json
import duckdb

from hub.citizens import findings
from hub.db import make_engine
from hub.settings import Settings
from tests.integration.egress_hub import PERMIT, RESEARCHER_SCOPES, Client, hub  # noqa: F401 (fixture)

TEXT = "Potassium critically high on the last measurement: the person should be contacted."


def a_pseudonym(hub) -> str:  # noqa: F811
    extract = hub.extract_dir
    return duckdb.connect().execute(f"SELECT person_id FROM read_parquet('{extract / 'person.parquet'}') "
                                    f"ORDER BY person_id LIMIT 1").fetchone()[0]


def test_workspace_reports_hdab_accepts_key_holder_resolves(hub):  # noqa: F811
    alice_ws = Client(hub, hub.workspace_token("alice"))
    mallory = Client(hub, hub.user_token("mallory", RESEARCHER_SCOPES))
    pseudo = a_pseudonym(hub)

    bad = alice_ws.post("api/findings", json={"permit": PERMIT, "pseudonym": "Jane Doe", "text": TEXT})
    assert bad.status_code == 400 and "pseudonym" in bad.json()["error"]
    other = alice_ws.post("api/findings", json={"permit": "DEMO-2026-999", "pseudonym": pseudo, "text": TEXT})
    assert other.status_code == 403 and "its own permit" in other.json()["error"]
    outsider = mallory.post("api/findings", json={"permit": PERMIT, "pseudonym": pseudo, "text": TEXT})
    assert outsider.status_code == 403 and "not a member" in outsider.json()["error"]

    made = alice_ws.post("api/findings", json={"permit": PERMIT, "pseudonym": pseudo, "text": TEXT})
    assert made.status_code == 201, made.text
    fid = made.json()["id"]
    engine = make_engine(hub.db_url)
    settings = Settings(home=hub.home, db_url=hub.db_url, actor="olga")
    findings.review(engine, fid, "diane", True, "clinically significant")
    resolved = findings.resolve(engine, settings, fid, "olga")
    assert resolved["state"] == "resolved" and resolved["channel"] == "data_holder"
    row = findings.get(engine, fid)
    assert row["id_hash"] and row["source_person"]

    view = alice_ws.get(f"api/findings/{fid}")
    assert view.status_code == 200 and view.json()["state"] == "resolved"
    body = json.dumps(view.json())
    assert row["id_hash"] not in body and set(view.json()) == {"id", "permit_id", "state", "reported_at"}
    assert mallory.get(f"api/findings/{fid}").status_code == 404


def test_the_workspace_client_reports_and_follows_a_finding(hub):  # noqa: F811
    import sys

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "egress" / "client"))
    import spe

    token = hub.workspace_token("bob")
    made = spe.report_finding(PERMIT, a_pseudonym(hub), TEXT, url=hub.egress_url, token=token)
    assert made["state"] == "reported"
    assert spe.finding(made["id"], url=hub.egress_url, token=token)["state"] == "reported"
    try:
        spe.report_finding(PERMIT, "not-a-pseudonym", TEXT, url=hub.egress_url, token=token)
    except spe.Refused as err:
        assert "pseudonym" in str(err)
    else:
        raise AssertionError("a bad pseudonym was accepted")
