"""A researcher in headless Chromium tries to take the extract out through JupyterLab itself: a
cell copies /data's Parquet file to `x.csv` and `x.png` in the work folder, and opening them in
JupyterLab shows a refusal instead of the bytes (for the image, the recorder's, naming egress review); a cell displaying 3 MB shows the recorder's
notice that it was cut. Real hub, real workspace, the session recorder in between."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect, sync_playwright
from tests.e2e.browser import launch, sign_in

pytestmark = [pytest.mark.docker, pytest.mark.browser]

CODE = ("import glob, shutil\nsrc = sorted(glob.glob('/data/*.parquet'))[0]\n"
        "shutil.copy(src, 'x.csv'); shutil.copy(src, 'x.png')\n"
        "from IPython.display import display\ndisplay({'text/plain': 'q' * 3_000_000}, raw=True)")


def notebook() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "id": "copy-extract", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": CODE}]}


def test_the_extract_does_not_open_in_jupyterlab(spe_hub):
    user, server = "alice", "demo-2026-002"
    api = spe_hub.client(user)
    api.spawn(user, server)
    try:
        resp = api.session.put(api.user_url(user, server, "api/contents/copy.ipynb"),
                               headers={"Authorization": f"token {api.token}"},
                               data=json.dumps({"type": "notebook", "content": notebook()}))
        assert resp.status_code in (200, 201), resp.text
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            try:
                sign_in(page, spe_hub.url, user, spe_hub.passwords[user])
                page.goto(api.user_url(user, server, "lab/tree/copy.ipynb"))
                expect(page.locator(".jp-Notebook .jp-Cell").first).to_contain_text("shutil.copy", timeout=90_000)
                expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=90_000)
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                output = page.locator(".jp-OutputArea-output").first
                expect(output).to_contain_text("[SPE] Output truncated", timeout=90_000)

                # as text (.csv): the server cannot decode it, and the recorder would refuse it anyway
                page.goto(api.user_url(user, server, "lab/tree/x.csv"))
                expect(page.locator(".jp-Dialog")).to_contain_text("File Load Error", timeout=90_000)
                body = page.locator("body").inner_text()
                page.locator(".jp-Dialog").get_by_role("button", name="Close").click()
                # as an image (.png): JupyterLab asks for base64, and the recorder says why not
                # (?reset: JupyterLab would otherwise restore x.csv first, and its dialog)
                page.goto(api.user_url(user, server, "lab/tree/x.png") + "?reset")
                dialog = page.locator(".jp-Dialog", has_text="x.png")
                expect(dialog).to_contain_text("egress review", timeout=90_000)
                expect(dialog).to_contain_text("Parquet")
                body += page.locator("body").inner_text()
            finally:
                browser.close()
        assert "PAR1" not in body
    finally:
        api.stop_server(user, server)
