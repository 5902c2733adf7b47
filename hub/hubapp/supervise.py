"""The single-host services of SPE as programs of one supervisor (supervisord): pure builders.

On one host `spe hub start` runs configurable-http-proxy, JupyterHub and every SPE service
(idle culler, lifecycle, session recorder, package mirror, front office, egress) as programs
of supervisord (the `supervisor` package), so that:
- the proxy and the workspaces outlive the hub: the hub does not start the proxy
  (`ConfigurableHTTPProxy.should_start = False`) nor the services (each is an external
  JupyterHub service with its own API token), and does not stop the workspaces when it stops;
  on start it adopts the running ones (hub.spawner.docker);
- a crashed program is restarted alone, `spe hub stop` stops them all, `spe services status`
  is true.

`make_programs` turns the services the hub would have started itself (hub.hubapp.config_docker.
make_services) into programs plus the service entries JupyterHub gets instead (`externalize`);
`render_config` writes supervisord's INI file. Nothing here starts a process or reads the
environment (hub.hubapp.supervisor_run does the I/O). Must not import `egress`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from hub.exceptions import InvalidInput

PROXY, HUB = "proxy", "hub"
PRIORITY = {PROXY: 10, HUB: 20}  # supervisord starts lower first and stops in reverse order
SERVICE_PRIORITY = 30


@dataclass(frozen=True)
class Program:
    name: str
    command: tuple[str, ...]
    cwd: str
    environment: Mapping[str, str] = field(default_factory=dict)
    priority: int = SERVICE_PRIORITY
    stop_wait_seconds: int = 30


def service_environment(service: dict, token: str, hub_api_url: str) -> dict[str, str]:
    """What JupyterHub would give a service it starts itself (jupyterhub.services.service):
    its name, API token and OAuth client, and, for one with a URL, where it listens and its prefix."""
    name = service["name"]
    env = {"JUPYTERHUB_SERVICE_NAME": name, "JUPYTERHUB_API_TOKEN": token, "JUPYTERHUB_API_URL": hub_api_url,
           "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_CLIENT_ID": f"service-{name}"}
    if service.get("url"):
        prefix = f"/services/{name}/"
        env.update({"JUPYTERHUB_SERVICE_URL": service["url"], "JUPYTERHUB_SERVICE_PREFIX": prefix,
                    "JUPYTERHUB_OAUTH_CALLBACK_URL": prefix + "oauth_callback"})
    return env


def externalize(services: list[dict], tokens: Mapping[str, str], hub_api_url: str,
                cwd: str) -> tuple[list[dict], list[Program]]:
    """Split the hub-started services into JupyterHub's entries (no `command`: an `api_token`
    instead) and supervisord's programs (the command, with the environment JupyterHub would
    have given it). A service without a token in `tokens` is refused: one missing token
    would leave a service unable to call the hub."""
    hub_services, programs = [], []
    for service in services:
        name = service["name"]
        if name not in tokens:
            raise InvalidInput(f"no API token for service {name!r} (service-tokens.json is incomplete)")
        entry = {k: v for k, v in service.items() if k not in ("command", "cwd", "environment")}
        hub_services.append({**entry, "api_token": tokens[name]})
        if "command" in service:
            env = {**service.get("environment", {}), **service_environment(service, tokens[name], hub_api_url)}
            programs.append(Program(name=name, command=tuple(service["command"]),
                                    cwd=service.get("cwd", cwd), environment=env))
    return hub_services, programs


def proxy_program(chp: str, public_ip: str, public_port: int, api_port: int, hub_url: str,
                  auth_token: str, cwd: str) -> Program:
    """configurable-http-proxy on its own (as zero-to-jupyterhub runs it): requests for which it
    has no route go to the hub (`--default-target`), so a proxy restarted before the hub has
    re-added the routes still answers; the hub re-adds them within seconds (hub.hubapp.proxy)."""
    command = (chp, "--ip", public_ip, "--port", str(public_port), "--api-ip", "127.0.0.1",
               "--api-port", str(api_port), "--default-target", hub_url,
               "--error-target", hub_url.rstrip("/") + "/hub/error", "--log-level", "warn")
    return Program(name=PROXY, command=command, cwd=cwd, environment={"CONFIGPROXY_AUTH_TOKEN": auth_token},
                   priority=PRIORITY[PROXY], stop_wait_seconds=10)


def hub_program(python: str, config_file: str, environment: Mapping[str, str], cwd: str) -> Program:
    return Program(name=HUB, command=(python, "-m", "jupyterhub", "-f", config_file), cwd=cwd,
                   environment=dict(environment), priority=PRIORITY[HUB], stop_wait_seconds=60)


def _escape(value: str, what: str) -> str:
    """supervisord reads its file with ConfigParser interpolation (`%` doubles) and splits
    `environment` on commas outside quotes: a value with a quote or newline is refused."""
    if any(ch in value for ch in '"\n\r'):
        raise InvalidInput(f"{what}: a value with a quote or a line break cannot be passed to supervisord: {value[:40]!r}")
    return value.replace("%", "%%")


def render_config(programs: list[Program], state_dir: Path) -> str:
    """supervisord.conf for `programs` (pure): socket, pid file and logs under `state_dir`
    (`<SPE_HOME>/hub`, mode 0700: the file holds the services' tokens)."""
    sock, logs = state_dir / "supervisor.sock", state_dir / "logs"
    lines = [
        "; generated by `spe hub start` (hub.hubapp.supervise); edits are overwritten",
        "[unix_http_server]", f"file={sock}", "chmod=0700", "",
        "[supervisord]", f"logfile={logs / 'supervisord.log'}", f"pidfile={state_dir / 'supervisord.pid'}",
        f"childlogdir={logs}", f"directory={state_dir}", "logfile_maxbytes=10MB", "logfile_backups=3", "",
        "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "", "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    for p in sorted(programs, key=lambda p: (p.priority, p.name)):
        command = " ".join(shlex.quote(_escape(part, p.name)) for part in p.command)
        env = ",".join(f'{k}="{_escape(v, f"{p.name} {k}")}"' for k, v in sorted(p.environment.items()))
        lines += [f"[program:{p.name}]", f"command={command}", f"directory={_escape(p.cwd, p.name)}",
                  f"priority={p.priority}", "autostart=true", "autorestart=true",
                  # a program that exits within 2 s counts as a failed start; retried with a growing delay
                  "startsecs=2", "startretries=30", "stopsignal=TERM", f"stopwaitsecs={p.stop_wait_seconds}",
                  "stopasgroup=true", "killasgroup=true", "redirect_stderr=true",
                  f"stdout_logfile={logs / (p.name + '.log')}", "stdout_logfile_maxbytes=10MB",
                  "stdout_logfile_backups=3"]
        if env:
            lines.append(f"environment={env}")
        lines.append("")
    return "\n".join(lines)
