"""The front office in headless Chromium on the real hub: an applicant finds a dataset in the public
catalogue and applies for exact variables with a team member, accepts the fee estimate and
submits; the HDAB's assessor takes, checks and recommends; a different decider grants; the permit
is active and provisioned; the team member opens the workspace and `/data` holds only the granted
columns. A second application for a prohibited purpose is refused at the door with its article."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import expect, sync_playwright

from hub.cli import main as spe
from hub.naming import server_name_for
from tests.e2e.browser import launch, sign_in
from tests.integration.kernel import Kernel

pytestmark = [pytest.mark.docker, pytest.mark.browser]

ENTRY = "examples/catalogue/eunomia.yaml"
GRANTED = ["person.person_id", "person.gender_concept_id", "person.year_of_birth"]
FO = "/services/frontoffice/"


def login(browser, hub, user):
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    sign_in(page, hub.url, user, hub.passwords[user])
    page.wait_for_url("**/hub/**")
    return page


def test_applicant_assessor_decider_permit_workspace(spe_hub):
    from tests.hubfixture import REPO

    assert spe(["--home", str(spe_hub.home), "--actor", "olga", "catalogue", "set", str(REPO / ENTRY)]) == 0
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            # the public catalogue needs no login: search, facet, dataset page with disclosure classes
            anon = browser.new_page()
            anon.goto(f"{spe_hub.url}{FO}catalogue?q=bleeding&theme=HEAL")
            expect(anon.locator("#count")).to_have_text("1 dataset(s)")
            anon.click("#ds-eunomia h2 a")
            expect(anon.locator("#variables")).to_contain_text("direct identifier")
            ttl = anon.request.get(f"{spe_hub.url}{FO}catalogue.ttl")
            assert ttl.ok and "healthdcatap:hdab" in ttl.text()

            paula = login(browser, spe_hub, "paula")
            paula.goto(f"{spe_hub.url}{FO}applications/new?dataset=eunomia")
            paula.fill("#title", "Bleeding after NSAIDs")
            paula.fill("#organisation", "Example University")
            paula.fill("#purpose_description", "Risk of gastrointestinal bleeding after NSAID exposure.")
            paula.fill("#team", "bob:researcher")
            for var in GRANTED:
                paula.check(f"input[value='eunomia|{var}']")
            paula.fill("#pseudonymised_justification", "Per-person follow-up needs a stable pseudonym.")
            paula.fill("#start", date.today().isoformat())
            paula.fill("#months", "6")
            paula.click("#save-draft")
            expect(paula.locator("#state")).to_have_text("draft")
            app_id = re.search(r"(APP-[0-9A-F]{8})", paula.url).group(1)
            expect(paula.locator("#estimate-total")).to_contain_text("EUR")
            paula.click("#submit")  # without accepting the estimate: refused, framed, nothing moves
            expect(paula.locator("#error")).to_contain_text("accept the fee estimate")
            paula.goto(f"{spe_hub.url}{FO}applications/{app_id}")
            paula.check("#accept")
            paula.click("#submit")
            expect(paula.locator("#state")).to_have_text("submitted")

            hugo = login(browser, spe_hub, "hugo")
            hugo.goto(f"{spe_hub.url}{FO}applications/{app_id}")
            hugo.click("#take")
            expect(hugo.locator("#state")).to_have_text("completeness check")
            hugo.click("#mark_complete")
            expect(hugo.locator("#state")).to_have_text("assessment")
            hugo.select_option("#recommendation", "grant")
            hugo.fill("#recommend-reasons", "Necessary and proportionate for the stated purpose.")
            hugo.click("#recommend")
            expect(hugo.locator("#state")).to_have_text("decision")
            expect(hugo.locator("#grant")).to_have_count(0)  # the assessor never decides

            diane = login(browser, spe_hub, "diane")
            diane.goto(f"{spe_hub.url}{FO}applications/{app_id}")
            diane.fill("#grant-reasons", "Granted: necessary and proportionate.")
            diane.click("#grant")
            expect(diane.locator("#state")).to_have_text("granted")
            permit_id = f"{app_id}-1"
            expect(diane.locator("#permits")).to_have_text(permit_id)

        finally:
            browser.close()

    bob = spe_hub.client("bob")
    server = server_name_for(permit_id)
    bob.spawn("bob", server)
    kernel = Kernel(bob.user_url("bob", server), bob.token)
    try:
        out = kernel.run("import pyarrow.parquet as pq, os\n"
                         "print(sorted(os.listdir('/data')))\n"
                         "print(sorted(pq.read_schema('/data/person.parquet').names))")
    finally:
        kernel.close()
        bob.stop_server("bob", server)
    files, columns = out.strip().splitlines()
    assert files == "['manifest.json', 'person.parquet']"
    assert columns == "['gender_concept_id', 'person_id', 'year_of_birth']"


def test_a_prohibited_purpose_is_refused_at_the_door(spe_hub):
    paula = spe_hub.client("paula")
    doc = {"kind": "permit", "title": "Premium pricing", "organisation": "Insurer", "applicant_category": "industry",
           "purpose": "insurance_or_credit_exclusion", "purpose_description": "Exclude risky customers.",
           "datasets": [{"dataset": "eunomia", "tables": {"person": ["person_id"]}}],
           "pseudonymised_justification": "x", "start": date.today().isoformat(), "months": 3}
    resp = paula.session.post(f"{spe_hub.url}{FO}api/applications", json=doc,
                              headers={"Authorization": f"token {paula.token}"})
    assert resp.status_code == 400
    assert "prohibited by EHDS Art. 54(b)" in resp.json()["error"]
    listed = paula.session.get(f"{spe_hub.url}{FO}api/applications", headers={"Authorization": f"token {paula.token}"})
    assert all(a["document"]["purpose"] != "insurance_or_credit_exclusion" for a in listed.json()["applications"])
