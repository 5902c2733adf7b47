"""A researcher in headless Chromium: log in, start the permit's workspace, run DuckDB over /data.

With SPE_UPDATE_DOCS_IMG=1 the screenshot replaces docs/img/workspace-duckdb.png (otherwise a
test run leaves the tree untouched)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from tests.e2e.browser import launch, sign_in

pytestmark = [pytest.mark.docker, pytest.mark.browser]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "workspace-duckdb.png"

QUERY = """import duckdb
duckdb.sql(\"\"\"
  SELECT year_of_birth, count(*) AS persons
  FROM '/data/person.parquet' GROUP BY ALL ORDER BY year_of_birth LIMIT 5
\"\"\").df()"""


def notebook() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "id": "duckdb-query", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": QUERY}]}


def test_researcher_runs_duckdb_in_jupyterlab(spe_hub, tmp_path):
    user, server = "bob", "demo-2026-001"
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            sign_in(page, spe_hub.url, user, spe_hub.passwords[user])
            expect(page.locator("#spe-permits")).to_contain_text("DEMO-2026-001")
            # one click: the home page posts the spawn form with this permit, no options page
            page.click("tr[data-permit='DEMO-2026-001'] button[data-action=start]")
            page.wait_for_url(f"**/user/{user}/{server}/lab**", timeout=120_000)

            # put the notebook in the work directory through the contents API (as the Lab UI would)
            api = spe_hub.client(user)
            resp = api.session.put(api.user_url(user, server, "api/contents/duckdb.ipynb"),
                                   headers={"Authorization": f"token {api.token}"},
                                   data=json.dumps({"type": "notebook", "content": notebook()}))
            assert resp.status_code in (200, 201), resp.text

            page.goto(api.user_url(user, server, "lab/tree/duckdb.ipynb"))
            cell = page.locator(".jp-Notebook .jp-Cell").first
            expect(cell).to_be_visible(timeout=60_000)
            expect(cell).to_contain_text("duckdb.sql", timeout=30_000)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            output = page.locator(".jp-OutputArea-output").first
            expect(output).to_contain_text("persons", timeout=90_000)
            expect(output).to_contain_text("year_of_birth")
            text = output.inner_text()
            shot = tmp_path / "workspace-duckdb.png"
            page.screenshot(path=str(shot), full_page=False)

            # back on the home page the running workspace has Open, Stop and Restart; Restart stops it
            # and starts it again (a new container: JupyterLab again), Stop returns it to Start
            page.goto(f"{spe_hub.url}/hub/home")
            row = page.locator("tr[data-permit='DEMO-2026-001']")
            expect(row.locator("[data-action=open]")).to_be_visible()
            before = api.server(user, server)["started"]
            row.locator("button[data-action=restart]").click()
            page.wait_for_url(f"**/user/{user}/{server}/lab**", timeout=180_000)
            assert api.server(user, server)["started"] != before
            page.goto(f"{spe_hub.url}/hub/home")
            row.locator("button[data-action=stop]").click()
            expect(row.locator("button[data-action=start]")).to_be_visible(timeout=120_000)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert "Error" not in text and "Traceback" not in text
    if os.environ.get("SPE_UPDATE_DOCS_IMG"):  # refresh the guide's screenshot on request, never by default
        shutil.copyfile(shot, DOCS_IMG)
    assert api.server(user, server) is None  # stopped by the home page's Stop button
