"""Start the test OpenID Connect provider (npm `oidc-provider`, tests/integration/oidc/idp.mjs).

The npm package is installed once into a cache directory outside the repository
(`$SPE_NPM_CACHE`, default `~/.cache/spe/npm`), as configurable-http-proxy is installed outside
it; a failed install fails the test with npm's output, never skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hub.hubapp.process import free_loopback_port

HERE = Path(__file__).resolve().parent
OIDC_PROVIDER = "oidc-provider@9"


def npm_modules() -> Path:
    """node_modules holding oidc-provider, installed on first use."""
    root = Path(os.environ.get("SPE_NPM_CACHE") or Path.home() / ".cache" / "spe" / "npm")
    modules = root / "node_modules"
    if not (modules / "oidc-provider" / "lib" / "index.js").is_file():
        npm = shutil.which("npm")
        assert npm, "npm is needed for the OIDC tests (scripts/system-deps.sh installs node and npm)"
        root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", OIDC_PROVIDER],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm install {OIDC_PROVIDER} failed:\n{done.stdout}\n{done.stderr}"
    return modules


@dataclass
class Idp:
    issuer: str
    client_id: str
    client_secret: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_idp(tmp: Path, redirect_uri: str, users: dict[str, dict]) -> Idp:
    port = free_loopback_port()
    issuer = f"http://127.0.0.1:{port}"
    cfg = {"issuer": issuer, "port": port, "modules": str(npm_modules()), "client_id": "spe-hub",
           "client_secret": "test-client-secret-" + os.urandom(8).hex(), "redirect_uri": redirect_uri, "users": users}
    (tmp / "idp.json").write_text(json.dumps(cfg))
    log_path = tmp / "idp.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([shutil.which("node") or "node", str(HERE / "idp.mjs"), str(tmp / "idp.json")],
                                   stdout=log, stderr=subprocess.STDOUT)
    idp = Idp(issuer, cfg["client_id"], cfg["client_secret"], process, log_path)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the test IdP exited ({process.returncode}):\n{idp.log()}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return idp
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            idp.stop()
            raise RuntimeError(f"the test IdP did not come up:\n{idp.log()}")
        time.sleep(0.3)
