"""`spe hub start|stop|status|users`: run the JupyterHub of SPE in the background.

`start` prepares the host (internal network + firewall; needs root), writes the supervisor's
configuration and starts supervisord, which runs the proxy, JupyterHub and every SPE service
(hub.hubapp.supervise); it waits until the hub answers and prints the URL. Logs go to
`<SPE_HOME>/hub/logs/<program>.log`. `stop` stops them all; running workspaces keep running
and are adopted by the next `start`. `status` lists each program. `users` (re)generates the
demo users' passwords and prints them once. Hub settings come from the environment and
SPE_HUB_EXTRA_CONFIG (hub.hubapp.options).
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.exceptions import Conflict
from hub.hubapp.auth import DEMO_USERS, demo_users_file, make_demo_users
from hub.hubapp.options import SpeDockerHub, settings_from, site_config
from hub.hubapp.process import wait_for_hub


def register(sub) -> None:
    p = sub.add_parser("hub", help="run the JupyterHub of SPE (workspaces) in the background")
    s = p.add_subparsers(dest="hub_command", required=True)
    start = s.add_parser("start", help="start JupyterHub + proxy + services; print the URL")
    start.add_argument("--wait-seconds", type=float, default=120, help="how long to wait for the hub to answer")
    start.set_defaults(func=cmd_start)
    s.add_parser("stop", help="stop the hub, the proxy and the services (workspaces keep running)"
                 ).set_defaults(func=cmd_stop)
    s.add_parser("status", help="each program of the hub: running or not").set_defaults(func=cmd_status)
    users = s.add_parser("users", help="generate new demo passwords (" + ", ".join(DEMO_USERS) + ")")
    users.set_defaults(func=cmd_users)


def _hub_settings() -> SpeDockerHub:
    """The settings the hub will start with (environment, then the site config file): validated
    here first, so that a bad value is one line before anything starts."""
    return settings_from(os.environ, site_config(os.environ.get("SPE_HUB_EXTRA_CONFIG")))


def cmd_start(args, settings) -> int:
    from hub.hubapp.host import egress_available, prepare_host
    from hub.hubapp.supervisor_run import start_supervisord, supervisord_pid, write_config

    spe = _hub_settings()
    url = f"http://{spe.public_ip}:{spe.public_port}"
    if supervisord_pid(settings.hub_dir) is not None:
        raise Conflict(f"the hub is already running at {url} (spe hub status; `spe services start all` brings "
                       "back a program stopped by hand; spe hub stop first to restart all)")
    if not demo_users_file(settings).exists() and spe.authenticator == "demo":
        print("no demo users yet: run `spe hub users` to create them")
    gateway_ip = prepare_host(spe, settings)
    conf, env = write_config(spe, settings, gateway_ip, egress_available(), dict(os.environ))
    start_supervisord(conf, env)
    log_file = settings.hub_dir / "logs" / "hub.log"
    wait_for_hub(url, None, log_file, args.wait_seconds)
    print(f"SPE hub running at {url}/  (logs: {log_file.parent}; spe services status)")
    return 0


def cmd_stop(args, settings) -> int:
    from hub.hubapp.supervisor_run import shutdown

    if shutdown(settings.hub_dir):
        print("SPE hub stopped (running workspaces keep running; `spe hub start` adopts them)")
    else:
        print("the hub is not running")
    return 0


def cmd_status(args, settings) -> int:
    from hub.hubapp.supervisor_run import ctl, supervisord_pid

    if supervisord_pid(settings.hub_dir) is None:
        print("not running")
        return 1
    out = ctl(settings.hub_dir, "status")
    print(out.stdout.rstrip())
    return 0 if out.returncode == 0 else 1


def cmd_users(args, settings) -> int:
    passwords = make_demo_users(demo_users_file(settings), DEMO_USERS)
    width = max(map(len, passwords))
    print("demo users (passwords are shown only now; stored as scrypt hashes):")
    for name, password in passwords.items():
        print(f"  {name.ljust(width)}  {password}   ({DEMO_USERS[name]})")
    return 0
