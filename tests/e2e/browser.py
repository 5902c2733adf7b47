"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright (started as
the machine notes say), and the hub's own login form filled in as a person would."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def launch(pw):
    """Chromium from a `sync_playwright()` context."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


def sign_in(page, base_url: str, user: str, password: str) -> None:
    """Sign `user` in at the hub's login page of the SPE at `base_url`."""
    page.goto(f"{base_url.rstrip('/')}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("#login_submit")
