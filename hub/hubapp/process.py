"""Run JupyterHub (with its proxy and services as its children) as a background process, and clean up after it.

Used by the spawn benchmark and the test fixture; `spe hub start` (`make demo`) runs the hub under
supervisord instead (hub.hubapp.supervisor_run), and shares `hub_env` and `wait_for_hub` from here.
Must not import `egress`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from hub.exceptions import Failure
from hub.netfw import FirewallPlan, remove_firewall

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = REPO_ROOT / "hub" / "jupyterhub_config.py"


def hub_env(base: dict, **spe_vars: str) -> dict:
    """Environment for the hub: `base` plus SPE_* variables; the venv's bin first on PATH (for CHP lookup too)."""
    env = {**base, **{k: str(v) for k, v in spe_vars.items()}}
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + base["PYTHONPATH"] if base.get("PYTHONPATH") else "")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}"
    return env


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the session recorder's default; test and bench ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_hub(env: dict, log_file: Path, cwd: Path, config_file: Path = CONFIG_FILE) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config_file)], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_hub(url: str, proc: subprocess.Popen | None, log_file: Path, timeout_seconds: float = 90) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        if proc is not None and proc.poll() is not None:
            raise Failure(f"the hub exited with {proc.returncode}; last log lines:\n{tail(log_file)}")
        try:
            if requests.get(f"{url.rstrip('/')}/hub/api/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise Failure(f"the hub did not answer at {url} within {timeout_seconds} s:\n{tail(log_file)}")
        time.sleep(0.3)


def stop_pid(pid: int, timeout_seconds: float = 60) -> bool:
    """SIGTERM the hub's process group (hub, proxy, services); SIGKILL after the timeout. True if it ran."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def remove_run_resources(docker_client, network: str, bridge: str, chain: str, volumes: bool = True) -> None:
    """Remove the containers (and optionally volumes) labelled with `network`, the network and its firewall."""
    import docker.errors

    for ctr in docker_client.containers.list(all=True, filters={"label": f"spe.network={network}"}):
        ctr.remove(force=True)
    if volumes:
        for vol in docker_client.volumes.list(filters={"label": f"spe.network={network}"}):
            vol.remove(force=True)
    try:
        docker_client.networks.get(network).remove()
    except docker.errors.NotFound:
        pass
    # the rules name only the bridge and the chain; the address is irrelevant for removal
    remove_firewall(FirewallPlan(bridge=bridge, gateway_ip="127.0.0.1", allowed_tcp_ports=(1,), chain=chain))


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
