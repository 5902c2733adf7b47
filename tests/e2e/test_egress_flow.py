"""Egress end to end: a researcher submits with the real workspace client (`spe`), with the
token a workspace server carries, to the real service behind a real JupyterHub; the check
flags a small cell; the author resubmits a suppressed version; two checkers approve (one in
headless Chromium, on the checker page, after the hub's OAuth login); the researcher
downloads the released file outside the workspace and its checksum matches.

(The same flow from inside a real Docker workspace needs the spawner and the workspace
image; this test exercises every egress part with the hub's real token introspection.)
"""

from __future__ import annotations

import hashlib
import io
import sys

import pyarrow.parquet as pq
import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.e2e.browser import launch, sign_in
from tests.axe_support import blocking_violations
from tests.integration.egress_hub import (CHECKER_SCOPES, COUNT_SQL, REPO, RESEARCHER_SCOPES, Client, count_table,
                                          hub, suppressed)  # noqa: F401

pytestmark = pytest.mark.browser

expect.set_options(timeout=30_000)  # OAuth redirects on a loaded CI machine


@pytest.fixture(scope="module")
def spe():
    """The workspace client package exactly as the workspace image installs it (egress/client)."""
    sys.path.insert(0, str(REPO / "egress" / "client"))
    import spe as client

    yield client
    sys.path.remove(str(REPO / "egress" / "client"))


def login(page, hub, user: str) -> None:
    sign_in(page, hub.hub_url, user, "test-password")
    page.wait_for_url("**/hub/**")


def test_submit_flag_resubmit_two_approvals_download(hub, spe, tmp_path):
    ws = {"url": hub.egress_url, "token": hub.workspace_token("alice")}
    table = count_table(hub.extract_dir)
    df = table.to_pandas()
    small = int((df["n"] < 10).sum())

    # 1. submit a DataFrame with its SQL from the workspace: the check flags the small cells
    req = spe.submit(df, description="Persons by sex and year of birth", provenance_sql=COUNT_SQL,
                     kind="frequency", name="by_sex_year.parquet", **ws)
    rid = req["id"]
    v1 = req["versions"][-1]
    assert (req["state"], v1["check_status"], v1["verified"]) == ("checked", "fail", True)
    assert sum(1 for c in v1["files"][0]["check"]["cells"]
               if any(f["rule"] == "threshold" for f in c["findings"])) == small
    assert [r["state"] for r in spe.requests(**ws) if r["id"] == rid] == ["checked"]

    # the client raises a clear error when the service refuses (here: a tampered table)
    tampered = df.copy()
    tampered.loc[0, "n"] += 1
    with pytest.raises(spe.Refused) as refused:
        spe.submit(tampered, description="tampered", provenance_sql=COUNT_SQL, name="t.parquet", **ws)
    assert refused.value.status == 422 and "not the result of its provenance SQL" in str(refused.value)

    # 2. a checker opens the request in the browser: failing cells highlighted with the rule,
    #    no Approve button for a failing version; they return it with a comment
    with sync_playwright() as pw:
        browser = launch(pw)
        # bypass_csp: only so that the test can inject axe-core (tests.axe_support)
        page = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True).new_page()
        try:
            login(page, hub, "carol")
            page.goto(f"{hub.public_egress_url}queue")  # OAuth with the hub, then the queue
            expect(page.locator("#queue")).to_contain_text(rid)
            page.click(f"text={rid}")
            expect(page.locator("#state")).to_have_text("checked")
            expect(page.locator("#check-status")).to_contain_text("fail")
            failing = page.locator("td.cell.fail")
            expect(failing).to_have_count(small)
            expect(failing.first).to_contain_text("threshold")
            expect(page.locator("#description")).to_contain_text("Persons by sex and year of birth")
            expect(page.locator("#approve")).to_have_count(0)
            assert blocking_violations(page) == []  # axe-core: the request page with failing cells
            page.fill("#comment", "suppress the cells under 10")
            page.click("#return")
            expect(page.locator("#message")).to_contain_text("review recorded")
            page.screenshot(path=str(tmp_path / "checker-page.png"), full_page=True)
        finally:
            browser.close()

    dave = Client(hub, hub.user_token("dave", CHECKER_SCOPES))
    r = dave.post(f"api/requests/{rid}/reviews", json={"version": 1, "decision": "return",
                                                         "comment": "agree: suppress"})
    assert r.json()["state"] == "returned"
    mine = spe.request(rid, **ws)
    assert sorted(x["comment"] for x in mine["versions"][-1]["reviews"]) == ["agree: suppress",
                                                                             "suppress the cells under 10"]

    # 3. the author resubmits a suppressed version
    req = spe.resubmit(rid, suppressed(table).to_pandas(), description="cells under 10 suppressed",
                       provenance_sql=COUNT_SQL, name="by_sex_year.parquet", **ws)
    assert (req["state"], req["version"], req["versions"][-1]["check_status"]) == ("checked", 2, "pass")

    # 4. two checkers approve: carol in the browser, dave through the API; carol releases
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            login(page, hub, "carol")
            page.goto(f"{hub.public_egress_url}requests/{rid}")
            expect(page.locator("td.cell.fail")).to_have_count(0)
            page.fill("#comment", "suppressed correctly")
            page.click("#approve")
            expect(page.locator("#state")).to_have_text("in review")
        finally:
            browser.close()
    assert dave.post(f"api/requests/{rid}/reviews", json={"version": 2, "decision": "approve"}
                     ).json()["state"] == "approved"
    carol = Client(hub, hub.user_token("carol", CHECKER_SCOPES))
    assert carol.post(f"api/requests/{rid}/release").json()["state"] == "released"

    # 5. the researcher downloads it outside the workspace (a session token, not the server's)
    alice = Client(hub, hub.user_token("alice", RESEARCHER_SCOPES))
    listed = [f for f in alice.get("api/releases").json()["files"] if f["request_id"] == rid]
    assert [f["name"] for f in listed] == ["by_sex_year.parquet"]
    r = alice.get(f"api/requests/{rid}/files/by_sex_year.parquet")
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == listed[0]["sha256"] == r.headers["X-Content-SHA256"]
    assert pq.read_table(io.BytesIO(r.content)).column("n").null_count == small
    # not through the proxy without a session either
    assert requests.get(f"{hub.public_egress_url}api/requests/{rid}/files/by_sex_year.parquet",
                        allow_redirects=False, timeout=30).status_code in (302, 401, 403)
