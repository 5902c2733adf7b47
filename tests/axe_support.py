"""axe-core (npm `axe-core`) for the browser tests: fetched once with npm into build/npm (not in
git), injected into a page, run, and its serious and critical violations returned in one line each."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AXE_VERSION = "4.11.1"
NPM_DIR = REPO / "build" / "npm"
AXE_JS = NPM_DIR / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def axe_source() -> str:
    """axe.min.js of AXE_VERSION, installed with npm on first use."""
    package = NPM_DIR / "node_modules" / "axe-core" / "package.json"
    if not (AXE_JS.exists() and f'"version": "{AXE_VERSION}"' in package.read_text()):
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(NPM_DIR),
                               f"axe-core@{AXE_VERSION}"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"npm install axe-core@{AXE_VERSION} failed: {done.stderr.strip()[-500:]}")
    return AXE_JS.read_text()


def blocking_violations(page) -> list[str]:
    """Run axe on the page (its browser context needs `bypass_csp=True` to inject the script):
    one line per serious or critical violation, naming the rule and the first offending nodes."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
            for v in result["violations"] if v.get("impact") in BLOCKING]
