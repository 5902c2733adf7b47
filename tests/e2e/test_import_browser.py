"""An import in headless Chromium, through the hub's OAuth login and the egress pages' forms
(cookie session, XSRF token): a researcher uploads a file on the Imports page, a checker finds
it in the Import queue, sees its type by its bytes and its first lines, and approves it; the
file is then in the permit's imports directory, read-only."""

from __future__ import annotations

import stat

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.browser import launch
from tests.e2e.test_egress_flow import login
from tests.integration.egress_hub import PERMIT, hub  # noqa: F401

pytestmark = pytest.mark.browser


def test_a_researcher_asks_in_the_browser_and_a_checker_approves(hub, tmp_path):
    upload = tmp_path / "atc-codes.csv"
    upload.write_bytes(b"atc,name\nA10BA02,metformin\nA10BB01,glibenclamide\n")
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            researcher = browser.new_context().new_page()
            login(researcher, hub, "alice")
            researcher.goto(f"{hub.public_egress_url}imports")  # OAuth with the hub, then the form
            researcher.select_option("#file-permit", PERMIT)
            researcher.set_input_files("#file", str(upload))
            researcher.fill("#file-justification", "ATC codes of the glucose-lowering drugs (WHO list)")
            researcher.click("#file-submit")
            expect(researcher.locator("#message")).to_contain_text("submitted for review")
            expect(researcher.locator("#state")).to_have_text("submitted")
            import_id = researcher.url.split("/imports/")[1].split("?")[0]

            checker = browser.new_context().new_page()
            login(checker, hub, "carol")
            checker.goto(f"{hub.public_egress_url}imports/queue")
            expect(checker.locator("#import-queue")).to_contain_text(import_id)
            checker.click(f"text={import_id}")
            expect(checker.locator("#detected-type")).to_contain_text("comma-separated values")
            expect(checker.locator("#preview")).to_contain_text("A10BA02,metformin")
            checker.fill("#comment", "a public WHO code list")
            checker.click("#approve")
            expect(checker.locator("#state")).to_have_text("approved")
            expect(checker.locator("#published")).to_contain_text("/imports/atc-codes.csv")
        finally:
            browser.close()
    published = hub.home / "imports" / PERMIT / "atc-codes.csv"
    assert published.read_bytes() == upload.read_bytes() and stat.S_IMODE(published.stat().st_mode) == 0o444
