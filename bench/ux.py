"""Time to each role's first useful page, in Chromium, against the real SPE hub.

`python -m bench.ux [--rounds N]`: starts the SPE hub (demo permits provisioned, demo users),
then for each role, in a fresh browser context (no cookies, as after a new login): from clicking
*Sign in* on the hub's login page to the element that is that role's work being on screen (the
researcher's permits, the checker's queue, the auditor's events, the operator's permits, the
front office's applications), through every redirect and OAuth hop on the way. Baseline in the
same run: loading the login page itself (JupyterHub's, nothing of SPE's work). Reports p50/p95
per role, the ratio to the baseline, and the goal p50 ≤ 3 s. JSON to stdout and
bench/results/ux.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from playwright.sync_api import sync_playwright

from bench.common import percentile, write_report
from hub.cli import main as spe
from hub.hubapp.auth import make_demo_users
from hub.hubapp.process import REPO_ROOT, hub_env, remove_run_resources, start_hub, stop_pid, tail, wait_for_hub
from hub.hubapp.process import free_loopback_port as free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PERMITS = REPO_ROOT / "examples" / "permits"
GOAL_SECONDS = 3.0

# role -> (demo user, the page that is their work, the element that means it is on screen)
ROLES = {
    "researcher": ("alice", "/hub/home", "#spe-permits"),
    "checker": ("carla", "/services/egress/queue", "#filters"),
    "auditor": ("aud", "/services/egress/audit/events", "#audit-filters"),
    "operator": ("olga", "/hub/home", "#spe-all-permits"),
    "applicant": ("paula", "/services/frontoffice/", "#applications"),
    "hdab_assessor": ("hugo", "/services/frontoffice/", "#applications"),
}


def _stats(samples: list[float]) -> dict:
    return {"n": len(samples), "p50_seconds": round(percentile(samples, 50), 3),
            "p95_seconds": round(percentile(samples, 95), 3), "samples": [round(s, 3) for s in samples]}


def measure(url: str, passwords: dict, rounds: int) -> dict:
    out = {"baseline_login_page": [], **{role: [] for role in ROLES}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            for r in range(rounds + 1):  # round 0 warms caches and the services' OAuth clients
                for role, (user, path, selector) in ROLES.items():
                    ctx = browser.new_context()
                    ctx.set_default_timeout(120_000)
                    page = ctx.new_page()
                    started = time.perf_counter()
                    page.goto(f"{url}/hub/login")
                    page.wait_for_selector("#login_submit")
                    login_seconds = time.perf_counter() - started
                    page.fill("input[name=username]", user)
                    page.fill("input[name=password]", passwords[user])
                    started = time.perf_counter()
                    page.click("#login_submit")
                    page.wait_for_url("**/hub/home")
                    if path != "/hub/home":
                        page.goto(url + path)
                    page.wait_for_selector(selector)
                    seconds = time.perf_counter() - started
                    ctx.close()
                    if r:
                        out[role].append(seconds)
                        out["baseline_login_page"].append(login_seconds)
        finally:
            browser.close()
    return {k: _stats(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ux", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per role (default 5)")
    parser.add_argument("--image", default=os.environ.get("SPE_IMAGE", "spe/workspace:latest"))
    args = parser.parse_args(argv)
    client = docker.from_env()
    run = uuid.uuid4().hex[:6]
    network, bridge, chain = f"spe-u{run}", f"speu{run}", f"SPE-U{run.upper()}"
    home = Path(tempfile.mkdtemp(prefix="spe-bench-ux-"))
    steps = [["dataset", "add-example"],
             *(["permit", "apply", str(PERMITS / f)] for f in ("demo-gibleed.yaml", "demo-second.yaml")),
             *(["permit", "provision", p] for p in ("DEMO-2026-001", "DEMO-2026-002"))]
    for cmd in steps:
        print(f"bench.ux: spe {' '.join(cmd)}", file=sys.stderr)
        if spe(["--home", str(home), "--actor", "bench", *cmd]) != 0:
            raise SystemExit(f"spe {' '.join(cmd)} failed")
    passwords = make_demo_users(home / "hub" / "demo-users.json")
    ports = {k: free_port() for k in ("SPE_PUBLIC_PORT", "SPE_PROXY_API_PORT", "SPE_HUB_PORT", "SPE_EGRESS_PORT",
                                      "SPE_MIRROR_PORT")}
    env = hub_env(dict(os.environ), SPE_HOME=home, SPE_DB_URL=f"sqlite:///{home / 'registry.db'}",
                  SPE_IMAGE=args.image, SPE_NETWORK=network, SPE_BRIDGE=bridge, SPE_FIREWALL_CHAIN=chain,
                  SPE_NAME_PREFIX=f"spe-u{run}", CONFIGPROXY_AUTH_TOKEN=uuid.uuid4().hex, **ports)
    log_file = home / "hub.log"
    proc = start_hub(env, log_file, home)
    url = f"http://127.0.0.1:{ports['SPE_PUBLIC_PORT']}"
    try:
        wait_for_hub(url, proc, log_file)
        print(f"bench.ux: hub up at {url}; {args.rounds} rounds x {len(ROLES)} roles", file=sys.stderr)
        result = measure(url, passwords, args.rounds)
    except Exception:
        print(tail(log_file, 60), file=sys.stderr)
        raise
    finally:
        stop_pid(proc.pid)
        proc.wait()
        remove_run_resources(client, network, bridge, chain)
    base = result["baseline_login_page"]["p50_seconds"]
    write_report("ux", {
        "rounds": args.rounds, "roles": result,
        "ratio_p50_to_login_page": {role: round(result[role]["p50_seconds"] / base, 2) if base else None
                                    for role in ROLES},
        "goals": {"p50_le_3s": {role: result[role]["p50_seconds"] <= GOAL_SECONDS for role in ROLES}},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
