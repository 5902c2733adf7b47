"""The one test OpenID Connect provider of SPE's tests (npm `oidc-provider`, tests/oidc/provider.mjs):
the outer edge of SPE's login, with clients, redirect URIs, accounts and claims a test chooses
(groups, e-mail, a national identifier, anything), amr/acr from an optional one-time code, and a
browserless login through its interaction page.

The npm package is pinned by tests/oidc/package.json and package-lock.json and installed once with
`npm ci` outside the source tree (`$SPE_NPM_CACHE`, default `~/.cache/spe/npm`, one directory per
lockfile). Missing node or npm, or a failed install, fails the test with the reason; never a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from hub.hubapp.process import free_loopback_port

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
PINNED = ("package.json", "package-lock.json")


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("the OIDC tests need node and npm (scripts/system-deps.sh installs them)")
    return node, npm


def ensure_provider_installed() -> Path:
    """node_modules holding the pinned oidc-provider, installed with `npm ci` on first use."""
    _, npm = _tools()
    digest = hashlib.sha256(b"".join((OIDC_DIR / f).read_bytes() for f in PINNED)).hexdigest()[:16]
    root = Path(os.environ.get("SPE_NPM_CACHE") or Path.home() / ".cache" / "spe" / "npm")
    target = root / f"oidc-provider-{digest}"
    modules = target / "node_modules"
    if (modules / "oidc-provider" / "lib" / "index.js").is_file():
        return modules
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=root))
    try:
        for f in PINNED:
            shutil.copy2(OIDC_DIR / f, staging / f)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=staging, capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            pytest.fail(f"npm ci of tests/oidc/package-lock.json failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        try:
            staging.rename(target)  # atomic: a concurrent install that finished first wins
        except OSError:
            if not (modules / "oidc-provider" / "lib" / "index.js").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return modules


@dataclass
class OidcProvider:
    issuer: str
    config_path: Path
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

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    def update_account(self, login: str, **claims) -> None:
        """Change a person's claims at the IdP (the provider reads its accounts on every use)."""
        cfg = json.loads(self.config_path.read_text())
        cfg["accounts"][login].update(claims)
        self.config_path.write_text(json.dumps(cfg))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_provider(workdir: Path, clients: list[dict], accounts: dict[str, dict], port: int | None = None,
                   timeout_seconds: float = 60) -> OidcProvider:
    """Start the provider on 127.0.0.1. `clients`: {client_id, client_secret, redirect_uris,
    token_endpoint_auth_method (default client_secret_basic)}; `accounts`: login -> claims, with an
    optional `otp` (the one-time code that makes the login two-factor)."""
    modules = ensure_provider_installed()
    node, _ = _tools()
    port = port or free_loopback_port()
    issuer = f"http://127.0.0.1:{port}"
    cfg = workdir / "oidc-provider.json"
    cfg.write_text(json.dumps({"issuer": issuer, "port": port, "modules": str(modules), "clients": clients,
                               "accounts": accounts}))
    log_file = workdir / "oidc-provider.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([node, str(OIDC_DIR / "provider.mjs"), str(cfg)], cwd=workdir,
                                stdout=log, stderr=subprocess.STDOUT)
    idp = OidcProvider(issuer, cfg, proc, log_file)
    deadline = time.monotonic() + timeout_seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"oidc-provider exited ({proc.returncode}):\n{idp.log()}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return idp
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            idp.stop()
            raise RuntimeError(f"oidc-provider did not answer within {timeout_seconds} s:\n{idp.log()}")
        time.sleep(0.3)


_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input[^>]*name=\"([^\"]+)\"(?:[^>]*value=\"([^\"]*)\")?[^>]*>", re.I)


def forms(html: str) -> list[tuple[str, dict]]:
    """The page's forms: (action, {field: value})."""
    return [(unescape(action), {n: unescape(v or "") for n, v in _INPUT.findall(body)})
            for action, body in _FORM.findall(html)]


def oidc_login(session: requests.Session, start_url: str, login: str, password: str = "any", otp: str = "",
               max_steps: int = 10) -> requests.Response:
    """The browser's path: `start_url` (the hub's /hub/oauth_login) sends us to the provider's login
    page, we sign in there, the provider sends us back; returns the last response (the hub's page
    after its callback)."""
    resp = session.get(start_url, timeout=60)
    for step in range(max_steps):
        page = forms(resp.text) if "text/html" in resp.headers.get("Content-Type", "") else []
        interaction = [(a, f) for a, f in page if "/interaction/" in a]
        if not interaction:
            assert step > 0, f"{start_url} did not lead to the IdP's login page: {resp.status_code} {resp.url}"
            return resp
        action, fields = interaction[0]
        if "login" in fields:
            fields.update(login=login, password=password, otp=otp)
        resp = session.post(urljoin(resp.url, action), data=fields, timeout=120)
    raise AssertionError(f"the OIDC login did not finish in {max_steps} steps; last page {resp.url}")
