"""Citizens on a real hub: JupyterHub (GenericOAuthenticator) signs citizens in at a real OpenID
Connect provider (node-oidc-provider) whose tokens carry a national identifier claim; the
citizens' service (hub.citizens.web) runs as a hub service; the registry holds the real Eunomia
demo permits, provisioned with DuckDB.

Proves: the login links the account to the keyed hash (the clear identifier is stored nowhere in
the registry or the hub's database); opting out on the page reaches the permits through the
service's own propagation round (new extract without the person, old version deleted, checked per
person and in the Parquet files); "who used my data" lists exactly the permits that held the
person; a login without an identifier is refused; a second opt-out is a 409; a researcher cannot
reach the citizens' pages.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

import docker
import duckdb
import pytest
import requests

from hub.cli import main as spe
from hub.datasets.example import eunomia_path
from hub.db import make_engine
from hub.hubapp.client import HubClient
from hub.hubapp.process import (free_loopback_port, hub_env, remove_run_resources, start_hub, stop_pid,
                                wait_for_hub)
from hub.provision.extracts import current_extract
from hub.settings import Settings
from tests.conftest import EXAMPLES
from tests.oidc_support import forms as html_forms
from tests.oidc_support import oidc_login, start_provider

pytestmark = pytest.mark.docker

CIT = "/services/citizens/"
P1, P2 = "DEMO-2026-001", "DEMO-2026-002"
WAIT_SECONDS = 300  # generous: the machine is shared


def eunomia(sql: str):
    con = duckdb.connect(str(eunomia_path()), read_only=True)
    try:
        return con.execute(sql).fetchone()
    finally:
        con.close()


@pytest.fixture(scope="module")
def citizen_hub(tmp_path_factory):
    run = uuid.uuid4().hex[:6]
    home = tmp_path_factory.mktemp(f"spe-citizens-{run}")
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'registry.db'}", actor="tester")
    for args in (["dataset", "add-example"], ["permit", "apply", str(EXAMPLES / "demo-gibleed.yaml")],
                 ["permit", "apply", str(EXAMPLES / "demo-second.yaml")], ["permit", "provision", P1],
                 ["permit", "provision", P2]):
        assert spe(["--home", str(home), "--actor", "tester", *args]) == 0, args
    adult = eunomia("SELECT person_id, person_source_value FROM person WHERE year_of_birth BETWEEN 1940 AND 1990 "
                    "ORDER BY person_id LIMIT 1")
    oldest = eunomia("SELECT person_id, person_source_value FROM person WHERE year_of_birth < 1909 "
                     "ORDER BY person_id LIMIT 1")  # 111 at 2019-01-01: in neither demo cohort (18-110)

    ports = {k: free_loopback_port() for k in ("public", "proxy", "hub", "egress", "mirror", "oidc")}
    url = f"http://127.0.0.1:{ports['public']}"
    secret = uuid.uuid4().hex
    accounts = {
        "cora": {"groups": ["citizens"], "national_id": adult[1], "name": "Cora"},
        "otto": {"groups": ["citizens"], "national_id": oldest[1]},
        "nina": {"groups": ["citizens"]},  # the IdP sends no national identifier
        "rita": {"groups": ["researchers"]},
    }
    idp = start_provider(home, [{"client_id": "spe-hub", "client_secret": secret,
                                 "redirect_uris": [f"{url}/hub/oauth_callback"]}], accounts, port=ports["oidc"])
    site = home / "oidc_config.py"
    site.write_text(f"""c = get_config()  # noqa: F821
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.client_id = "spe-hub"
c.GenericOAuthenticator.client_secret = {secret!r}
c.GenericOAuthenticator.oauth_callback_url = "{url}/hub/oauth_callback"
c.GenericOAuthenticator.authorize_url = "{idp.authorize_url}"
c.GenericOAuthenticator.token_url = "{idp.token_url}"
c.GenericOAuthenticator.userdata_url = "{idp.userinfo_url}"
c.GenericOAuthenticator.scope = ["openid", "profile", "groups", "national_id"]
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.manage_groups = True
c.GenericOAuthenticator.auth_state_groups_key = "oauth_user.groups"
c.GenericOAuthenticator.allowed_groups = {{"citizens", "researchers"}}
""")
    network, bridge, chain = f"spe-t{run}", f"spet{run}", f"SPE-T{run.upper()}"
    env = hub_env(dict(os.environ), SPE_HOME=home, SPE_DB_URL=settings.db_url,
                  SPE_IMAGE=os.environ.get("SPE_TEST_IMAGE", "spe/workspace:latest"),
                  SPE_NETWORK=network, SPE_BRIDGE=bridge, SPE_FIREWALL_CHAIN=chain,
                  SPE_PUBLIC_PORT=ports["public"], SPE_PROXY_API_PORT=ports["proxy"], SPE_HUB_PORT=ports["hub"],
                  SPE_EGRESS_PORT=ports["egress"], SPE_MIRROR_PORT=ports["mirror"], SPE_NAME_PREFIX=f"spe-t{run}",
                  SPE_AUTHENTICATOR="oidc", SPE_HUB_EXTRA_CONFIG=site, CONFIGPROXY_AUTH_TOKEN=uuid.uuid4().hex,
                  # propagate a new opt-out at once, every 5 s (production: within 7 days, hourly)
                  SPE_OPTOUT_DELAY_DAYS=0, SPE_OPTOUT_PROPAGATE_SECONDS=10)
    log_file = home / "hub.log"
    proc = start_hub(env, log_file, home)
    client = docker.from_env()
    try:
        wait_for_hub(url, proc, log_file)
        yield {"url": url, "home": home, "settings": settings, "adult": adult, "oldest": oldest,
               "log": log_file}
    finally:
        stop_pid(proc.pid)
        proc.wait()
        remove_run_resources(client, network, bridge, chain)
        idp.stop()


def login(hub, user: str) -> HubClient:
    c = HubClient(hub["url"])
    resp = oidc_login(c.session, f"{hub['url']}/hub/oauth_login?next=/hub/home", user)
    assert resp.status_code == 200 and "/hub/" in resp.url, (resp.status_code, resp.url, resp.text[:300])
    c.username = user
    c.create_token(note="citizens test")
    return c


def api(c: HubClient, method: str, path: str) -> requests.Response:
    return c.session.request(method, f"{c.base_url}{CIT}{path}", headers={"Authorization": f"token {c.token}"},
                             timeout=120)


def page_form(c: HubClient, path: str) -> dict:
    """The page's form fields (the _xsrf token the service checks)."""
    resp = c.session.get(f"{c.base_url}{CIT}{path}", timeout=120)
    assert resp.status_code == 200, resp.text[:300]
    return resp, {a: f for a, f in html_forms(resp.text)}


def test_citizen_login_optout_propagation_and_who_used_my_data(citizen_hub):
    hub = citizen_hub
    cora = login(hub, "cora")
    # the registry and the hub's database hold the hash, never the national identifier
    national_id = hub["adult"][1]
    for db in (hub["home"] / "registry.db", hub["home"] / "hub" / "jupyterhub.sqlite"):
        con = sqlite3.connect(db)
        dump = "\n".join(con.iterdump())
        con.close()
        assert national_id not in dump, db
    engine = make_engine(hub["settings"].db_url)

    # who used my data: exactly the two demo permits (both cohorts hold this adult)
    used = api(cora, "GET", "api/usage")
    assert used.status_code == 200, used.text
    assert sorted(p["id"] for p in used.json()["permits"]) == [P1, P2]
    assert all("members" not in p and "principal_investigator" not in p for p in used.json()["permits"])
    page = cora.session.get(f"{cora.base_url}{CIT}usage", timeout=120)
    assert page.status_code == 200 and P1 in page.text and P2 in page.text

    # opt out through the page (a browser form with its _xsrf token)
    resp, forms = page_form(cora, "")
    assert "not opted out" in resp.text
    action = next(a for a in forms if a.endswith("/optout"))
    old_dir = Path(current_extract(engine, P1)["path"])
    posted = cora.session.post(f"{cora.base_url}{action}", data=forms[action], timeout=120)
    assert posted.status_code == 200 and "You have opted out" in posted.text, posted.text[:500]

    # the service's propagation round re-provisions both permits without her
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        state = api(cora, "GET", "api/me").json()
        if state["extracts"] and all(not r["in_current"] for r in state["extracts"]):
            break
        assert time.monotonic() < deadline, f"propagation did not happen: {state}\n{hub['log'].read_text()[-3000:]}"
        time.sleep(2)
    assert state["optout"]["opted_out"] and state["optout"]["source"] == "citizen"
    assert all(r["versions_on_disk_holding"] == [] for r in state["extracts"])
    assert not old_dir.exists()  # the version that held her is deleted
    new_dir = Path(current_extract(engine, P1)["path"])
    pseudo_count = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{new_dir / 'person.parquet'}')").fetchone()[0]
    assert pseudo_count == json.loads((new_dir / "manifest.json").read_text())["persons"]
    assert json.loads((new_dir / "manifest.json").read_text())["optout"]["excluded"] == 1

    # a second opt-out is refused, nothing stored twice
    again = api(cora, "POST", "api/optout")
    assert again.status_code == 409 and "already opted out" in again.json()["error"]
    # who used my data still lists the permits that used her data before she left
    assert sorted(p["id"] for p in api(cora, "GET", "api/usage").json()["permits"]) == [P1, P2]


def test_a_citizen_in_no_cohort_sees_no_permit(citizen_hub):
    otto = login(citizen_hub, "otto")
    used = api(otto, "GET", "api/usage")
    assert used.status_code == 200 and used.json() == {"permits": []}
    page = otto.session.get(f"{otto.base_url}{CIT}usage", timeout=120)
    assert "No data permit has used your data" in page.text
    # rate-limited: at most 10 look-ups a minute per citizen, then a clear 429
    statuses = [api(otto, "GET", "api/usage").status_code for _ in range(10)]
    assert statuses[-1] == 429 and set(statuses) == {200, 429}
    assert "too many look-ups" in api(otto, "GET", "api/usage").json()["error"]


def test_login_without_national_identifier_is_refused(citizen_hub):
    c = HubClient(citizen_hub["url"])
    resp = oidc_login(c.session, f"{citizen_hub['url']}/hub/oauth_login?next=/hub/home", "nina")
    assert resp.status_code == 403, (resp.status_code, resp.url)
    with make_engine(citizen_hub["settings"].db_url).connect() as conn:
        import sqlalchemy as sa
        from hub.audit.tables import audit_events
        from hub.citizens.tables import citizen_links

        assert conn.execute(sa.select(citizen_links).where(citizen_links.c.username == "nina")).first() is None
        failed = conn.execute(sa.select(audit_events.c.detail).where(audit_events.c.actor == "nina",
                                                                      audit_events.c.outcome == "failed")).all()
    assert failed and "no national identifier" in failed[-1].detail


def test_a_researcher_cannot_reach_the_citizens_pages(citizen_hub):
    rita = login(citizen_hub, "rita")
    resp = api(rita, "GET", "api/me")
    assert resp.status_code == 403, resp.text


def test_a_citizen_cannot_reach_the_front_office_api(citizen_hub):
    # the front office is the HDAB's and applicants' (access:services!service=frontoffice); a
    # citizen's token is refused there, not treated as a person without roles
    fo = "/services/frontoffice/api/applications"
    cora = login(citizen_hub, "cora")
    resp = cora.session.get(f"{cora.base_url}{fo}", headers={"Authorization": f"token {cora.token}"}, timeout=120)
    assert resp.status_code == 403 and "front office" in resp.json()["error"], resp.text
    rita = login(citizen_hub, "rita")
    resp = rita.session.get(f"{rita.base_url}{fo}", headers={"Authorization": f"token {rita.token}"}, timeout=120)
    assert resp.status_code == 200, resp.text


def test_donations_through_the_service_refuse_bad_input_and_store_good_once(citizen_hub):
    import sqlalchemy as sa
    from datetime import date, timedelta

    from hub.citizens.tables import donations
    from tests.integration.citizens.test_donations import BUNDLE, CSV

    engine = make_engine(citizen_hub["settings"].db_url)

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(donations)).scalar()

    otto = login(citizen_hub, "otto")
    expires = (date.today() + timedelta(days=200)).isoformat()
    consent = {"purposes": ["scientific_research"], "expires": expires, "recontact": False}

    def post(body):
        return otto.session.post(f"{otto.base_url}{CIT}api/donations", json=body,
                                 headers={"Authorization": f"token {otto.token}"}, timeout=120)

    bad = [({"format": "fhir", "content": "{\"resourceType\": \"Bundle\", \"entry\": [{\"resource\": "
                                          "{\"resourceType\": \"Patient\", \"birthDate\": 12}}]}", "consent": consent},
            "not a valid FHIR R4 bundle"),
           ({"format": "csv", "content": "a,b\n1,2\n", "consent": consent}, "header must be"),
           ({"format": "csv", "content": CSV}, "needs a consent"),
           ({"format": "csv", "content": CSV, "consent": {**consent, "purposes": []}}, "at least one purpose")]
    for body, message in bad:
        resp = post(body)
        assert resp.status_code == 400 and message in resp.json()["error"], (message, resp.text)
    assert count() == 0
    first = post({"format": "fhir", "content": json.dumps(BUNDLE), "consent": consent})
    assert first.status_code == 201, first.text
    assert post({"format": "fhir", "content": json.dumps(BUNDLE), "consent": consent}).status_code == 409
    # the page's multipart form (with its _xsrf token)
    resp, forms = page_form(otto, "donations")
    action = next(a for a in forms if a.endswith("/donations"))
    fields = {**forms[action], "format": "csv", "purposes": "scientific_research", "expires": expires,
              "recontact": "yes"}
    done = otto.session.post(f"{otto.base_url}{action}", data=fields,
                             files={"file": ("mine.csv", CSV.encode(), "text/csv")}, timeout=120)
    assert done.status_code == 200 and "Thank you" in done.text, done.text[:500]
    assert count() == 2
    listed = otto.session.get(f"{otto.base_url}{CIT}api/donations",
                              headers={"Authorization": f"token {otto.token}"}, timeout=120).json()["donations"]
    assert sorted((d["format"], d["consent"]["purposes"], d["consent"]["recontact"]) for d in listed) == [
        ("csv", ["scientific_research"], True), ("fhir", ["scientific_research"], False)]


def test_a_donor_who_allowed_recontact_sees_a_finding_on_the_page(citizen_hub):
    """Runs after the donation test: otto's donations are held (one allows re-contact)."""
    import duckdb as ddb

    from hub.citizens import findings
    from hub.citizens.trustee import build_donated
    from hub.permits.store import PermitStore
    from hub.provision.run import provision
    from tests.integration.citizens.test_donations import permit_doc

    engine = make_engine(citizen_hub["settings"].db_url)
    settings = citizen_hub["settings"]
    build_donated(engine, settings, "trustee")
    PermitStore(engine).apply(permit_doc("DON-RES-HUB", "scientific_research"), "tester")
    provision(engine, settings, "DON-RES-HUB", "tester")
    extract = Path(current_extract(engine, "DON-RES-HUB")["path"])
    pseudo = ddb.connect().execute(f"SELECT person_id FROM read_parquet('{extract / 'person.parquet'}')").fetchone()[0]
    text = "Haemoglobin far below the normal range: please see your doctor."
    fid = findings.report(engine, "DON-RES-HUB", "alice", pseudo, text)["id"]
    findings.review(engine, fid, "diane", True, "significant")
    assert findings.resolve(engine, settings, fid, "olga")["channel"] == "citizen"

    otto = login(citizen_hub, "otto")
    page = otto.session.get(f"{otto.base_url}{CIT}", timeout=120)
    assert page.status_code == 200 and text in page.text
    cora = login(citizen_hub, "cora")  # not the person: sees nothing of it
    assert text not in cora.session.get(f"{cora.base_url}{CIT}", timeout=120).text
