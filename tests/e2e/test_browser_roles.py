"""Every role's pages in headless Chromium on the real hub, in SPE's one frame: what each person
sees and does not see in the navigation, where each lands, the framed 403 that says what to do
instead, the login for a visitor without a session, French from the browser's language and from
the switch, the skip link, and axe-core on every page with no serious or critical violation.
A screenshot of each page goes to build/screenshots/; with SPE_UPDATE_DOCS_IMG=1 the ones the guides
show replace theirs in docs/img/ (otherwise a test run leaves the tree untouched)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.browser import launch, sign_in
from tests.axe_support import axe_source, blocking_violations

pytestmark = [pytest.mark.docker, pytest.mark.browser]

EG, FO = "/services/egress/", "/services/frontoffice/"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TIMEOUT_MS = 60_000  # generous: the machine is shared
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# screenshot -> the guide's image
DOCS_SHOTS = {"researcher-home": "home-researcher.png", "auditor-events": "auditor-events.png",
              "researcher-home-fr": "home-researcher-fr.png"}

# role -> (demo user, the nav items they must see, the ones they must not)
ROLES = {
    "researcher": ("alice", {"home", "outputs", "imports", "catalogue", "register"},
                   {"queue", "import_queue", "audit", "admin", "applications"}),
    "checker": ("carla", {"home", "queue", "import_queue"}, {"outputs", "imports", "audit", "admin", "applications"}),
    "auditor": ("aud", {"home", "audit"}, {"outputs", "queue", "admin", "applications"}),
    "operator": ("olga", {"home", "admin", "applications"}, {"outputs", "queue", "audit"}),
    "applicant": ("paula", {"home", "applications", "outputs"}, {"queue", "audit", "admin"}),
    "assessor": ("hugo", {"home", "applications"}, {"outputs", "queue", "audit", "admin"}),
    "decider": ("diane", {"home", "applications"}, {"outputs", "queue", "audit", "admin"}),
    "data_holder": ("holger", {"home", "applications"}, {"outputs", "queue", "audit", "admin"}),
}


def _context(browser, locale="en-GB"):
    # bypass_csp: only so that the test can inject axe-core into pages whose CSP forbids it
    ctx = browser.new_context(viewport={"width": 1300, "height": 900}, locale=locale, bypass_csp=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    return ctx


def _login(ctx, hub, user):
    page = ctx.new_page()
    sign_in(page, hub.url, user, hub.passwords[user])
    page.wait_for_url("**/hub/home")
    return page


def _nav(page) -> set[str]:
    return set(page.locator(".spe-nav a").evaluate_all("els => els.map(e => e.dataset.nav)"))


def _check(page, name: str, failures: list[str]) -> None:
    """axe on this page (violations collected, reported together) and its screenshot."""
    expect(page.locator(".spe-header")).to_be_visible()
    expect(page.locator(".spe-footer")).to_have_count(1)
    failures += [f"{name} {page.url}: {v}" for v in blocking_violations(page)]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_every_role_in_one_frame(spe_hub):
    axe_source()  # npm install before the browser starts (fails here, clearly, without npm)
    failures: list[str] = []
    url = spe_hub.url
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            # a visitor without a session: the public pages in the frame, everything else -> login
            anon = _context(browser).new_page()
            anon.goto(f"{url}{EG}register")
            expect(anon.locator("h1")).to_have_text("Data permit register")
            expect(anon.locator("#register-permits")).to_contain_text("DEMO-2026-001")
            assert _nav(anon) == {"catalogue", "register"}
            expect(anon.locator("#spe-login")).to_be_visible()
            _check(anon, "anonymous-register", failures)
            for path in ("/hub/home", f"{EG}queue", f"{EG}audit/events", FO):
                anon.goto(url + path)
                anon.wait_for_url("**/hub/login**")
            _check(anon, "anonymous-login", failures)

            # keyboard: the first Tab reaches the skip link, which moves focus to the content
            anon.goto(f"{url}{EG}register")
            anon.keyboard.press("Tab")
            assert anon.evaluate("() => document.activeElement.className") == "spe-skip"
            expect(anon.locator(".spe-skip")).to_be_in_viewport()  # visible once focused
            anon.keyboard.press("Enter")
            assert anon.evaluate("() => document.activeElement.id") == "spe-main"

            pages = {}
            for role, (user, seen, unseen) in ROLES.items():
                page = pages[role] = _login(_context(browser), spe_hub, user)
                nav = _nav(page)
                assert seen <= nav, f"{role} misses {seen - nav}"
                assert not (unseen & nav), f"{role} sees {unseen & nav}"
                expect(page.locator("#spe-user")).to_have_text(user)
                _check(page, f"{role}-home", failures)

            # researcher: permits with workspace buttons, outputs; forbidden pages framed with what to do
            alice = pages["researcher"]
            expect(alice.locator("#spe-roles")).to_have_text("researcher")
            expect(alice.locator("#spe-permits")).to_contain_text("DEMO-2026-001")
            expect(alice.locator("#spe-all-permits")).to_have_count(0)  # the operator's list
            alice.click("[data-nav=outputs]")
            expect(alice.locator("h1")).to_have_text("My output requests")
            _check(alice, "researcher-outputs", failures)
            for path in (f"{EG}queue", f"{EG}audit/events"):
                response = alice.goto(url + path)
                assert response.status == 403
                expect(alice.locator("h1")).to_have_text("Not allowed")
                expect(alice.locator("#instead-links")).to_contain_text("My outputs")
                assert "queue" not in _nav(alice)
            _check(alice, "researcher-forbidden", failures)
            alice.click("[data-nav=imports]")
            expect(alice.locator("#file-form")).to_be_visible()
            _check(alice, "researcher-imports", failures)
            alice.click("[data-nav=catalogue]")  # a public page: no login asked, the visitor's frame
            expect(alice.locator("#spe-login")).to_be_visible()
            alice.goto(f"{url}{FO}")  # once signed in to the front office (OAuth), the same frame as everywhere
            alice.click("[data-nav=catalogue]")
            expect(alice.locator("#spe-user")).to_have_text("alice")
            _check(alice, "researcher-catalogue", failures)

            # checker: lands on the queue from the egress home; counts and filters
            carla = pages["checker"]
            expect(carla.locator("#card-queue")).to_be_visible()
            expect(carla.locator("#spe-permits")).to_have_count(0)
            carla.click("#card-queue a")
            expect(carla.locator("h1")).to_have_text("Checker queue")
            carla.goto(f"{url}{EG}")
            carla.wait_for_url(f"**{EG}queue")
            expect(carla.locator("#filters")).to_be_visible()
            assert int(carla.locator("#count-all").inner_text()) == (
                int(carla.locator("#count-review").inner_text()) + int(carla.locator("#count-release").inner_text()))
            _check(carla, "checker-queue", failures)
            carla.click("[data-nav=import_queue]")
            _check(carla, "checker-import-queue", failures)
            carla.goto(f"{url}{EG}queue?show=nonsense")
            expect(carla.locator("#error")).to_contain_text("show must be one of")

            # auditor: the egress home is the audit trail; filter form; a permit's timeline
            aud = pages["auditor"]
            aud.goto(f"{url}{EG}")
            aud.wait_for_url(f"**{EG}audit/events")
            aud.fill("#f-permit", "DEMO-2026-001")
            aud.click("#f-apply")
            expect(aud.locator("#events")).to_contain_text("DEMO-2026-001")
            _check(aud, "auditor-events", failures)
            aud.locator("#events a", has_text="DEMO-2026-001").first.click()
            expect(aud.locator("h1")).to_have_text("Timeline of permit DEMO-2026-001")
            _check(aud, "auditor-timeline", failures)

            # operator: every permit on the home page, the front office
            olga = pages["operator"]
            expect(olga.locator("#spe-all-permits")).to_contain_text("DEMO-2026-002")
            olga.click("[data-nav=admin]")  # JupyterHub's own admin page, inside SPE's frame
            expect(olga.locator("#react-admin-hook")).to_have_count(1)
            expect(olga.locator("[data-nav=admin]")).to_have_attribute("aria-current", "page")
            olga.click("[data-nav=applications]")
            expect(olga.locator("h1")).to_have_text("Front office")
            _check(olga, "operator-frontoffice", failures)

            for role in ("applicant", "assessor", "decider", "data_holder"):
                page = pages[role]
                page.click("#card-applications a")
                expect(page.locator("h1")).to_have_text("Front office")
                _check(page, f"{role}-frontoffice", failures)

            # French from the browser's language, then English by the switch (a cookie for the site)
            fr = _login(_context(browser, locale="fr-FR"), spe_hub, "alice")
            expect(fr.locator("#spe-permits-title")).to_have_text("Vos autorisations de traitement")
            expect(fr.locator("[data-nav=outputs]")).to_have_text("Mes sorties")
            _check(fr, "researcher-home-fr", failures)
            fr.click("[data-nav=outputs]")
            expect(fr.locator("h1")).to_have_text("Mes demandes de sortie")
            assert fr.locator("html").get_attribute("lang") == "fr"
            fr.click("[data-lang=en]")
            expect(fr.locator("h1")).to_have_text("My output requests")
            fr.goto(f"{url}/hub/home")
            expect(fr.locator("#spe-permits-title")).to_have_text("Your data permits")
            fr.click("[data-lang=fr]")
            expect(fr.locator("#spe-permits-title")).to_have_text("Vos autorisations de traitement")
        finally:
            browser.close()
    assert failures == [], "axe-core found serious or critical violations:\n" + "\n".join(failures)
    if os.environ.get("SPE_UPDATE_DOCS_IMG"):  # refresh the guides' screenshots on request, never by default
        for shot, image in DOCS_SHOTS.items():
            shutil.copyfile(SHOTS / f"{shot}.png", DOCS_IMG / image)
