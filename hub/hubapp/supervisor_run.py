"""Run SPE's single-host services under supervisord: write its config, start it, ask it.

`spe hub start|stop|status` and `spe services …` call these; the programs and the config file
come from hub.hubapp.supervise (pure). State in `<SPE_HOME>/hub` (mode 0700): supervisord.conf,
supervisor.sock, supervisord.pid, logs/<program>.log, service-tokens.json (the services' hub API
tokens and the proxy's token, 0600; kept across restarts so that running services stay valid)
and supervised-ports.json (the loopback ports chosen once for the recorder and the front office,
kept so that an adopted workspace's route keeps its address). Must not import `egress`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hub.exceptions import Failure, InvalidInput
from hub.hubapp.config_docker import hub_api_url, make_services
from hub.hubapp.options import SpeDockerHub
from hub.hubapp.process import CONFIG_FILE, REPO_ROOT, free_loopback_port, hub_env
from hub.hubapp.supervise import externalize, hub_program, proxy_program, render_config
from hub.settings import Settings

TOKENS_FILE = "service-tokens.json"
LOOPBACK_SERVICES = ("recorder", "frontoffice", "citizens")  # each with a SpeDockerHub.<name>_port
PORTS_FILE = "supervised-ports.json"
PROXY_TOKEN_KEY = "configurable-http-proxy"


def config_path(hub_dir: Path) -> Path:
    return hub_dir / "supervisord.conf"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def load_service_tokens(hub_dir: Path) -> dict[str, str]:
    path = hub_dir / TOKENS_FILE
    try:
        tokens = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{path} is missing: start the hub with `spe hub start`") from None
    except ValueError:
        raise InvalidInput(f"{path} is not JSON; remove it and run `spe hub start` again") from None
    if not isinstance(tokens, dict) or not all(isinstance(v, str) and v for v in tokens.values()):
        raise InvalidInput(f"{path} must map service names to tokens")
    return tokens


def ensure_service_tokens(hub_dir: Path, names: list[str]) -> dict[str, str]:
    """The tokens of `names` (and the proxy's), creating the missing ones; existing ones are kept."""
    path = hub_dir / TOKENS_FILE
    tokens = load_service_tokens(hub_dir) if path.exists() else {}
    missing = [n for n in [*names, PROXY_TOKEN_KEY] if n not in tokens]
    if missing or not path.exists():
        tokens.update({n: secrets.token_hex(32) for n in missing})
        _write_private(path, json.dumps(tokens, indent=1, sort_keys=True))
    return tokens


def ensure_ports(hub_dir: Path, spe: SpeDockerHub) -> dict[str, int]:
    """The loopback ports of the recorder, the front office and the citizens' service: the
    configured ones, else the ones chosen on an earlier start, else free ones now (then kept)."""
    path = hub_dir / PORTS_FILE
    try:
        kept = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        kept = {}
    ports = {name: getattr(spe, f"{name}_port") or int(kept.get(name) or 0) or free_loopback_port()
             for name in LOOPBACK_SERVICES}
    if ports != kept:
        _write_private(path, json.dumps(ports))
    return ports


def write_config(spe: SpeDockerHub, settings: Settings, gateway_ip: str, egress_available: bool,
                 environ: dict) -> tuple[Path, dict]:
    """Write supervisord.conf for this host; return it and the environment to start supervisord with."""
    hub_dir = settings.hub_dir
    (hub_dir / "logs").mkdir(parents=True, exist_ok=True)
    ports = ensure_ports(hub_dir, spe)
    for name in LOOPBACK_SERVICES:
        setattr(spe, f"{name}_port", ports[name])
    services = make_services(spe, settings, gateway_ip, egress_available, ports["recorder"])
    tokens = ensure_service_tokens(hub_dir, [s["name"] for s in services])
    _, programs = externalize(services, tokens, hub_api_url(spe, gateway_ip), str(REPO_ROOT))
    chp = shutil.which("configurable-http-proxy", path=hub_env(environ)["PATH"])
    if chp is None:
        raise Failure("configurable-http-proxy is not installed (scripts/system-deps.sh installs it)")
    hub_url = f"http://{gateway_ip}:{spe.hub_port}"
    programs.append(proxy_program(chp, spe.public_ip, spe.public_port, spe.proxy_api_port, hub_url,
                                  tokens[PROXY_TOKEN_KEY], str(hub_dir)))
    programs.append(hub_program(sys.executable, str(CONFIG_FILE), {
        "SPE_SUPERVISED": "1", "CONFIGPROXY_AUTH_TOKEN": tokens[PROXY_TOKEN_KEY],
        **{f"SPE_{name.upper()}_PORT": str(ports[name]) for name in LOOPBACK_SERVICES}}, str(hub_dir)))
    path = config_path(hub_dir)
    _write_private(path, render_config(programs, hub_dir))
    env = hub_env(environ, SPE_HOME=str(settings.home), SPE_DB_URL=settings.db_url)
    return path, env


def supervisord_pid(hub_dir: Path) -> int | None:
    """The pid of this SPE_HOME's supervisord if it runs, else None."""
    try:
        pid = int((hub_dir / "supervisord.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def start_supervisord(conf: Path, env: dict) -> None:
    """Start supervisord (it daemonizes; this returns once it has)."""
    proc = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], env=env,
                          cwd=str(conf.parent), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise Failure(f"supervisord did not start: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


def ctl(hub_dir: Path, *args: str, timeout_seconds: float = 180) -> subprocess.CompletedProcess:
    """`supervisorctl -c <hub_dir>/supervisord.conf ARGS` (its output as text)."""
    return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(config_path(hub_dir)), *args],
                          capture_output=True, text=True, timeout=timeout_seconds)


def program_pids(hub_dir: Path) -> dict[str, int]:
    """{program: pid} of the running programs (0 for one that does not run)."""
    out = {}
    for line in ctl(hub_dir, "status").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = 0
            if parts[1] == "RUNNING" and "pid" in parts:
                pid = int(parts[parts.index("pid") + 1].rstrip(","))
            out[parts[0]] = pid
    return out


def shutdown(hub_dir: Path, timeout_seconds: float = 180) -> bool:
    """Stop every program and supervisord itself; True if it ran. Workspaces keep running."""
    pid = supervisord_pid(hub_dir)
    if pid is None:
        return False
    ctl(hub_dir, "shutdown")
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise Failure(f"supervisord (pid {pid}) did not stop within {timeout_seconds} s; see {hub_dir / 'logs'}")
