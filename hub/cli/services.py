"""`spe services status|start|stop|restart [NAME]`: the programs of the single-host supervisor.

The programs are those of hub.hubapp.supervise: `proxy`, `hub`, `egress`, `frontoffice`,
`session-recorder`, `package-mirror`, `spe-lifecycle`, `idle-culler` (or `all`). This is
`supervisorctl -c <SPE_HOME>/hub/supervisord.conf …` with the name checked first; restarting
one leaves the others (and every workspace) running. Must not import `egress`.
"""

from __future__ import annotations

import re

from hub.exceptions import Conflict, InvalidInput

_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")


def register(sub) -> None:
    p = sub.add_parser("services", help="the hub's programs under its supervisor: status, start, stop, restart")
    s = p.add_subparsers(dest="services_command", required=True)
    status = s.add_parser("status", help="each program: RUNNING, STOPPED, FATAL…, with pid and uptime")
    status.add_argument("name", nargs="?", help="one program (default: all)")
    status.set_defaults(func=cmd_ctl)
    for action in ("start", "stop", "restart"):
        a = s.add_parser(action, help=f"{action} one program (or `all`); the others keep running")
        a.add_argument("name", help="program name, e.g. egress, or all")
        a.set_defaults(func=cmd_ctl)


def cmd_ctl(args, settings) -> int:
    from hub.hubapp.supervisor_run import ctl, supervisord_pid

    if args.name is not None and not _NAME.fullmatch(args.name):
        raise InvalidInput(f"program name {args.name[:40]!r}: use the names of `spe services status`", field="name")
    if supervisord_pid(settings.hub_dir) is None:
        raise Conflict("the hub's supervisor is not running (spe hub start)")
    out = ctl(settings.hub_dir, args.services_command, *([args.name] if args.name else []))
    text = (out.stdout + out.stderr).rstrip()
    print(text)
    if "no such process" in text.lower():
        raise InvalidInput(f"no program named {args.name!r} (spe services status lists them)", field="name")
    return 0 if out.returncode == 0 else 1
