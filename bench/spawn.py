"""Spawn-to-ready latency of permit workspaces vs a plain DockerSpawner, same image, same run.

`python -m bench.spawn [--full] [--image IMAGE]`: starts the real SPE hub (PermitSpawner,
internal network, firewall, provisioned bench permit) and then a plain DockerSpawner hub
on the same image and network; for each it measures, through the hub REST API, the time
from `POST /users/<u>/servers/<s>` to the server being ready, for 1 workspace at a time
(`rounds` times) and for 10 at once. Reports p50/p95, the ratio SPE/plain (goal ≤ 1.2),
p50 ≤ 3 s, and the memory of an idle workspace (docker stats). JSON to stdout and
bench/results/spawn.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import requests

from bench.common import percentile, write_report
from hub.cli import main as spe
from hub.hubapp.process import REPO_ROOT, hub_env, remove_run_resources, start_hub, stop_pid, tail, wait_for_hub
from hub.hubapp.process import free_loopback_port as free_port
from hub.naming import server_name_for
from hub.netfw import ensure_network

BENCH_PERMIT_ID = "BENCH-SPAWN-1"
USERS = [f"bench{i:02d}" for i in range(1, 11)]


def bench_permit_yaml() -> str:
    members = "\n".join(f"  - {{username: {u}, role: researcher}}" for u in USERS)
    return f"""id: {BENCH_PERMIT_ID}
title: Spawn benchmark permit
purpose: scientific_research
purpose_description: Benchmark of workspace spawn latency.
organisation: Example University Hospital
principal_investigator: {USERS[0]}
members:
{members}
dataset: eunomia
tables:
  person: [person_id, gender_concept_id, year_of_birth]
generalise:
  person.year_of_birth: {{band: 5}}
valid_from: "2026-01-01"
valid_until: "2030-12-31"
"""


class Api:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/") + "/hub/api"
        self.headers = {"Authorization": f"token {token}"}

    def call(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, timeout=180, **kw)

    def ensure_user(self, name: str) -> None:
        if self.call("GET", f"/users/{name}").status_code == 404:
            self.call("POST", f"/users/{name}").raise_for_status()

    def server(self, user: str, server: str) -> dict | None:
        return (self.call("GET", f"/users/{user}").json().get("servers") or {}).get(server)

    def spawn_seconds(self, user: str, server: str) -> float:
        started = time.perf_counter()
        resp = self.call("POST", f"/users/{user}/servers/{server}", json={})
        if resp.status_code >= 400:
            raise RuntimeError(f"spawn {user}/{server}: {resp.status_code} {resp.text[:300]}")
        while resp.status_code != 201:
            info = self.server(user, server)
            if info and info.get("ready"):
                break
            if not info or not info.get("pending"):
                raise RuntimeError(f"spawn {user}/{server} failed: {info}")
            time.sleep(0.05)
        return time.perf_counter() - started

    def stop(self, user: str, server: str) -> None:
        self.call("DELETE", f"/users/{user}/servers/{server}")
        deadline = time.monotonic() + 120
        while self.server(user, server) is not None and time.monotonic() < deadline:
            time.sleep(0.2)


def idle_memory_bytes(client, network: str) -> list[int]:
    out = []
    for ctr in client.containers.list(filters={"label": f"spe.network={network}"}):
        stats = ctr.stats(stream=False)
        mem = stats.get("memory_stats", {})
        cache = (mem.get("stats") or {}).get("inactive_file", (mem.get("stats") or {}).get("cache", 0))
        out.append(int(mem.get("usage", 0) - cache))
    return out


def measure(api: Api, server: str, rounds: int, concurrent_rounds: int, client, network: str) -> dict:
    for u in USERS:
        api.ensure_user(u)
    api.spawn_seconds(USERS[0], server)  # warm-up: page cache, image layers
    api.stop(USERS[0], server)
    single = []
    for _ in range(rounds):
        single.append(api.spawn_seconds(USERS[0], server))
        api.stop(USERS[0], server)
    concurrent, memory = [], []
    for r in range(concurrent_rounds):
        with ThreadPoolExecutor(len(USERS)) as pool:
            concurrent.extend(pool.map(lambda u: api.spawn_seconds(u, server), USERS))
        if r == 0:
            time.sleep(10)  # let kernels-less servers settle to idle
            memory = idle_memory_bytes(client, network)
        with ThreadPoolExecutor(len(USERS)) as pool:
            list(pool.map(lambda u: api.stop(u, server), USERS))
    return {
        "single": {"n": len(single), "p50_seconds": round(percentile(single, 50), 3),
                   "p95_seconds": round(percentile(single, 95), 3), "samples": [round(x, 3) for x in single]},
        "concurrent_10": {"n": len(concurrent), "p50_seconds": round(percentile(concurrent, 50), 3),
                          "p95_seconds": round(percentile(concurrent, 95), 3)},
        "idle_memory_mib": {"n": len(memory),
                            "mean": round(statistics.mean(memory) / 2**20, 1) if memory else None,
                            "max": round(max(memory) / 2**20, 1) if memory else None},
    }


def run_hub(kind: str, home: Path, env_vars: dict, ports: dict, rounds: int, concurrent_rounds: int, client,
            network: str) -> dict:
    token = uuid.uuid4().hex
    env = hub_env(dict(os.environ), **env_vars, **ports, SPE_BENCH_TOKEN=token, SPE_REPO=str(REPO_ROOT),
                  CONFIGPROXY_AUTH_TOKEN=uuid.uuid4().hex)
    config = REPO_ROOT / "bench" / "hubconfig" / ("spe_bench.py" if kind == "spe" else "plain.py")
    log_file = home / f"{kind}-hub.log"
    proc = start_hub(env, log_file, home, config)
    url = f"http://127.0.0.1:{ports['SPE_PUBLIC_PORT']}"
    try:
        wait_for_hub(url, proc, log_file)
        server = server_name_for(BENCH_PERMIT_ID)
        return measure(Api(url, token), server, rounds, concurrent_rounds, client, network)
    except Exception:
        print(tail(log_file, 60), file=sys.stderr)
        raise
    finally:
        stop_pid(proc.pid)
        for ctr in client.containers.list(all=True, filters={"label": f"spe.network={network}"}):
            ctr.remove(force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spawn", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 single rounds and 3 rounds of 10 (default 3 and 1)")
    parser.add_argument("--image", default=os.environ.get("SPE_IMAGE", "spe/workspace:latest"))
    args = parser.parse_args(argv)
    rounds, concurrent_rounds = (10, 3) if args.full else (3, 1)
    client = docker.from_env()
    client.images.get(args.image)
    run = uuid.uuid4().hex[:6]
    network, bridge, chain = f"spe-b{run}", f"speb{run}", f"SPE-B{run.upper()}"
    home = Path(tempfile.mkdtemp(prefix="spe-bench-spawn-"))
    try:
        for cmd in (["dataset", "add-example"], ["permit", "apply", str(home / "bench.yaml")],
                    ["permit", "provision", BENCH_PERMIT_ID]):
            if cmd[0] == "permit" and cmd[1] == "apply":
                (home / "bench.yaml").write_text(bench_permit_yaml())
            if spe(["--home", str(home), "--actor", "bench", *cmd]) != 0:
                raise SystemExit(f"spe {' '.join(cmd)} failed")
        gateway = ensure_network(client, network, bridge)
        # the same ports for both hubs: the workspace firewall admits exactly the hub API port
        ports = {"SPE_PUBLIC_PORT": free_port(), "SPE_PROXY_API_PORT": free_port(), "SPE_HUB_PORT": free_port(),
                 "SPE_EGRESS_PORT": free_port()}
        common = {"SPE_HOME": str(home), "SPE_IMAGE": args.image, "SPE_NETWORK": network, "SPE_BRIDGE": bridge,
                  "SPE_FIREWALL_CHAIN": chain, "SPE_BENCH_GATEWAY": gateway,
                  "SPE_NAME_PREFIX": f"spe-b{run}"}
        spe_result = run_hub("spe", home, common, ports, rounds, concurrent_rounds, client, network)
        plain_result = run_hub("plain", home, common, ports, rounds, concurrent_rounds, client, network)
    finally:
        remove_run_resources(client, network, bridge, chain)
    ratio_single = spe_result["single"]["p50_seconds"] / plain_result["single"]["p50_seconds"]
    ratio_conc = spe_result["concurrent_10"]["p50_seconds"] / plain_result["concurrent_10"]["p50_seconds"]
    write_report("spawn", {
        "image": args.image, "full": args.full,
        "permit_spawner": spe_result, "plain_dockerspawner": plain_result,
        "ratio_p50_single": round(ratio_single, 3), "ratio_p50_concurrent_10": round(ratio_conc, 3),
        "goals": {"ratio_le_1_2": ratio_single <= 1.2 and ratio_conc <= 1.2,
                  "p50_single_le_3s": spe_result["single"]["p50_seconds"] <= 3.0},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
