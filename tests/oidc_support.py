"""A real OpenID Connect provider for tests (node-oidc-provider, tests/oidc/provider.mjs): the outer
edge of SPE's login, with accounts and claims a test chooses, and a browserless login through its
development interaction pages (login form, consent form).

`ensure_provider_installed()` runs `npm install` into tests/oidc/node_modules once (needs node and
npm; the npm registry or its cache). Shared by the tests that sign people in with OIDC.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

OIDC_DIR = Path(__file__).parent / "oidc"


def ensure_provider_installed() -> None:
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.fail("the OIDC tests need node and npm (scripts/system-deps.sh installs them)")
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=OIDC_DIR, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"npm install of oidc-provider failed: {proc.stderr.strip().splitlines()[-1:]}")


@dataclass
class OidcProvider:
    issuer: str
    proc: subprocess.Popen
    log_file: Path

    @property
    def authorize_url(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_url(self) -> str:
        return f"{self.issuer}/me"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_provider(workdir: Path, port: int, clients: list[dict], accounts: dict[str, dict],
                   timeout_seconds: float = 60) -> OidcProvider:
    ensure_provider_installed()
    cfg = workdir / "oidc-config.json"
    cfg.write_text(json.dumps({"clients": clients, "accounts": accounts}))
    log_file = workdir / "oidc-provider.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(["node", str(OIDC_DIR / "provider.mjs"), str(port), str(cfg)], cwd=OIDC_DIR,
                                stdout=log, stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"oidc-provider exited: {log_file.read_text()[-2000:]}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return OidcProvider(issuer, proc, log_file)
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"oidc-provider did not answer within {timeout_seconds} s")
        time.sleep(0.3)


_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input[^>]*name=\"([^\"]+)\"(?:[^>]*value=\"([^\"]*)\")?[^>]*>", re.I)


def _forms(html: str) -> list[tuple[str, dict]]:
    return [(unescape(action), {n: unescape(v or "") for n, v in _INPUT.findall(body)})
            for action, body in _FORM.findall(html)]


def oidc_login(session: requests.Session, start_url: str, login: str, password: str = "any",
               max_steps: int = 10) -> requests.Response:
    """Follow a login that starts at `start_url` (the hub's /hub/oauth_login) through the provider's
    login and consent pages; returns the last response (the hub's page after its callback)."""
    resp = session.get(start_url, timeout=60)
    for _ in range(max_steps):
        forms = _forms(resp.text) if "text/html" in resp.headers.get("Content-Type", "") else []
        interaction = [(a, f) for a, f in forms if "/interaction/" in a]
        if not interaction:
            return resp
        action, fields = interaction[0]
        if "login" in fields:
            fields.update(login=login, password=password)
        resp = session.post(urljoin(resp.url, action), data=fields, timeout=60)
    raise AssertionError(f"the OIDC login did not finish in {max_steps} steps; last page {resp.url}")
