"""`spe hub start|stop|status|users`: run the JupyterHub of SPE in the background.

`start` prepares the host (internal network + firewall; needs root), starts JupyterHub with
its proxy and services, waits until it answers and prints the URL; logs go to
`<SPE_HOME>/hub/hub.log`. `users` (re)generates the demo users' passwords and prints them
once. Hub settings come from the environment and SPE_HUB_EXTRA_CONFIG (hub.hubapp.options).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hub.exceptions import Conflict
from hub.hubapp.auth import DEMO_USERS, demo_users_file, make_demo_users
from hub.hubapp.options import SpeDockerHub, settings_from, site_config
from hub.hubapp.process import hub_env, start_hub, stop_pid, wait_for_hub


def register(sub) -> None:
    p = sub.add_parser("hub", help="run the JupyterHub of SPE (workspaces) in the background")
    s = p.add_subparsers(dest="hub_command", required=True)
    start = s.add_parser("start", help="start JupyterHub + proxy + services; print the URL")
    start.add_argument("--wait-seconds", type=float, default=120, help="how long to wait for the hub to answer")
    start.set_defaults(func=cmd_start)
    s.add_parser("stop", help="stop the hub (and every running workspace)").set_defaults(func=cmd_stop)
    s.add_parser("status", help="is the hub running, and where").set_defaults(func=cmd_status)
    users = s.add_parser("users", help="generate new demo passwords (" + ", ".join(DEMO_USERS) + ")")
    users.set_defaults(func=cmd_users)


def _hub_settings() -> SpeDockerHub:
    """The settings the hub will start with (environment, then the site config file): validated
    here first, so that a bad value is one line before anything starts."""
    return settings_from(os.environ, site_config(os.environ.get("SPE_HUB_EXTRA_CONFIG")))


def _pid_file(settings) -> Path:
    return settings.hub_dir / "hub-process.json"


def _running(settings) -> dict | None:
    """{pid, url} of the running hub started from this SPE_HOME, or None."""
    try:
        state = json.loads(_pid_file(settings).read_text())
        os.kill(int(state["pid"]), 0)
        return state
    except (FileNotFoundError, ValueError, KeyError, TypeError, ProcessLookupError):
        return None


def cmd_start(args, settings) -> int:
    running = _running(settings)
    if running:
        raise Conflict(f"the hub is already running at {running['url']} (spe hub stop first)")
    spe = _hub_settings()
    settings.hub_dir.mkdir(parents=True, exist_ok=True)
    if not demo_users_file(settings).exists() and spe.authenticator == "demo":
        print("no demo users yet: run `spe hub users` to create them")
    log_file = settings.hub_dir / "hub.log"
    env = hub_env(dict(os.environ), SPE_HOME=str(settings.home), SPE_DB_URL=settings.db_url)
    proc = start_hub(env, log_file, settings.hub_dir)
    url = f"http://{spe.public_ip}:{spe.public_port}"
    _pid_file(settings).write_text(json.dumps({"pid": proc.pid, "url": url}))
    wait_for_hub(url, proc, log_file, args.wait_seconds)
    print(f"SPE hub running at {url}/  (log: {log_file})")
    return 0


def cmd_stop(args, settings) -> int:
    running = _running(settings)
    if running is None:
        print("the hub is not running")
        return 0
    stop_pid(int(running["pid"]))
    _pid_file(settings).unlink(missing_ok=True)
    print("SPE hub stopped")
    return 0


def cmd_status(args, settings) -> int:
    running = _running(settings)
    print(f"running (pid {running['pid']}) at {running['url']}/" if running else "not running")
    return 0 if running else 1


def cmd_users(args, settings) -> int:
    passwords = make_demo_users(demo_users_file(settings), DEMO_USERS)
    width = max(map(len, passwords))
    print("demo users (passwords are shown only now; stored as scrypt hashes):")
    for name, password in passwords.items():
        print(f"  {name.ljust(width)}  {password}   ({DEMO_USERS[name]})")
    return 0
