"""`spe hub start|stop|status|users`: run the JupyterHub of SPE in the background.

`start` prepares the host (internal network + firewall; needs root), starts JupyterHub with
its proxy and services, waits until it answers and prints the URL; logs go to
`<SPE_HOME>/hub/hub.log`. `users` (re)generates the demo users' passwords and prints them
once. Hub options come from the environment (see hub.hubapp.options).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hub.exceptions import Conflict
from hub.hubapp.auth import DEMO_USERS, make_demo_users
from hub.hubapp.options import HubOptions
from hub.hubapp.process import hub_env, start_hub, stop_pid, wait_for_hub


def register(sub) -> None:
    p = sub.add_parser("hub", help="run the JupyterHub of SPE (workspaces) in the background")
    s = p.add_subparsers(dest="hub_command", required=True)
    start = s.add_parser("start", help="start JupyterHub + proxy + services; print the URL")
    start.add_argument("--wait-seconds", type=float, default=120, help="how long to wait for the hub to answer")
    start.set_defaults(func=cmd_start)
    s.add_parser("stop", help="stop the hub (and every running workspace)").set_defaults(func=cmd_stop)
    s.add_parser("status", help="is the hub running, and where").set_defaults(func=cmd_status)
    users = s.add_parser("users", help="generate new demo passwords (alice, bob, carol, carla, dan, olga, aud)")
    users.set_defaults(func=cmd_users)


def _options(settings) -> HubOptions:
    return HubOptions.from_env({**os.environ, "SPE_HOME": str(settings.home), "SPE_DB_URL": settings.db_url})


def _pid_file(opts: HubOptions) -> Path:
    return opts.state_dir / "hub-process.json"


def _running(opts: HubOptions) -> dict | None:
    """{pid, url} of the running hub started from this SPE_HOME, or None."""
    try:
        state = json.loads(_pid_file(opts).read_text())
        os.kill(int(state["pid"]), 0)
        return state
    except (FileNotFoundError, ValueError, KeyError, TypeError, ProcessLookupError):
        return None


def _url(opts: HubOptions) -> str:
    return f"http://{opts.public_ip}:{opts.public_port}"


def cmd_start(args, settings) -> int:
    opts = _options(settings)
    running = _running(opts)
    if running:
        raise Conflict(f"the hub is already running at {running['url']} (spe hub stop first)")
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    if not opts.users_file.exists() and opts.authenticator == "demo":
        print("no demo users yet: run `spe hub users` to create them")
    log_file = opts.state_dir / "hub.log"
    env = hub_env(dict(os.environ), SPE_HOME=str(opts.home), SPE_DB_URL=opts.db_url)
    proc = start_hub(env, log_file, opts.state_dir)
    _pid_file(opts).write_text(json.dumps({"pid": proc.pid, "url": _url(opts)}))
    wait_for_hub(_url(opts), proc, log_file, args.wait_seconds)
    print(f"SPE hub running at {_url(opts)}/  (log: {log_file})")
    return 0


def cmd_stop(args, settings) -> int:
    opts = _options(settings)
    running = _running(opts)
    if running is None:
        print("the hub is not running")
        return 0
    stop_pid(int(running["pid"]))
    _pid_file(opts).unlink(missing_ok=True)
    print("SPE hub stopped")
    return 0


def cmd_status(args, settings) -> int:
    opts = _options(settings)
    running = _running(opts)
    print(f"running (pid {running['pid']}) at {running['url']}/" if running else "not running")
    return 0 if running else 1


def cmd_users(args, settings) -> int:
    opts = _options(settings)
    passwords = make_demo_users(opts.users_file, DEMO_USERS)
    width = max(map(len, passwords))
    print("demo users (passwords are shown only now; stored as scrypt hashes):")
    for name, password in passwords.items():
        print(f"  {name.ljust(width)}  {password}   ({DEMO_USERS[name]})")
    return 0
