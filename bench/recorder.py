"""Session recorder benchmark: what the hub-side path (hub.sessionlog) costs against the same workspace
reached directly, in the same run.

`python -m bench.recorder` (modest sizes) or `--full` (1 GiB streamed). One plain `jupyter server`
on loopback (the workspace) and the recorder as its own process (`python -m hub.sessionlog.proxy`)
in front of it, its routing table and meter in a fresh SQLite registry (budget set high so that
nothing is withheld). Measured, alternating direct and recorded so drift hits both:

* per-cell latency of a trivial cell (`1`): p50 and p90, and the ratio recorded / direct
  (goal <= 1.1x p50);
* output throughput: a cell printing N MiB in 64 KiB lines, MiB/s and the ratio (goal >= 0.8x);
* the recorder's peak RSS (VmHWM) while a growing file is streamed through it over HTTP (a
  kernel-spec resource, a metered non-contents response): flat as the size grows is the goal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import percentile, write_report

PREFIX = "/user/bench/P-BENCH/"
TOKEN = uuid.uuid4().hex
LATENCY_GOAL, THROUGHPUT_GOAL = 1.1, 0.8


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, what: str, seconds: float = 120) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if requests.get(url, headers={"Authorization": f"token {TOKEN}"}, timeout=2).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not start")


def start_workspace(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    (tmp / "work").mkdir()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_CONFIG_DIR": str(tmp / "config"), "IPYTHONDIR": str(tmp / "ipython")}
    log = open(tmp / "jupyter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", f"--ServerApp.base_url={PREFIX}",
                             f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False",
                             f"--ServerApp.root_dir={tmp / 'work'}", "--allow-root",
                             # the server's own IOPub rate limit (1 MB/s) would cap both paths alike
                             "--ZMQChannelsWebsocketConnection.limit_rate=False"], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}{PREFIX}api/status", proc, "jupyter server")
    return proc, url


def start_recorder(tmp: Path, workspace_url: str) -> tuple[subprocess.Popen, str]:
    from hub.audit.store import utc_now_iso
    from hub.db import make_engine
    from hub.registry_tables import permits
    from hub.sessionlog.routes import register_target

    db_url = f"sqlite:///{tmp / 'registry.db'}"
    engine = make_engine(db_url)
    doc = {"id": "P-BENCH", "browser": {"daily_budget_bytes": 10 * 1024 ** 3}}
    with engine.begin() as conn:
        conn.execute(permits.insert().values(id="P-BENCH", version=1, status="active", document_json=json.dumps(doc),
                                             updated_at=utc_now_iso()))
    register_target(engine, PREFIX, workspace_url, user="bench", permit_id="P-BENCH")
    port = _free_port()
    log = open(tmp / "recorder.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "hub.sessionlog.proxy", "--port", str(port), "--home", str(tmp),
                             "--db-url", db_url], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}{PREFIX}api/status", proc, "recorder")
    return proc, url


class Kernel:
    def __init__(self, base: str, kernel_id: str):
        import websocket

        self.ws = websocket.create_connection(base.replace("http", "ws", 1) + f"{PREFIX}api/kernels/{kernel_id}/channels",
                                              header=[f"Authorization: token {TOKEN}"], timeout=600)

    def run(self, code: str) -> int:
        """Execute; returns the stdout bytes received. Waits for both the reply and idle."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "bench", "session": "s", "version": "5.3",
                                            "msg_type": "execute_request"}, "parent_header": {}, "metadata": {},
                                 "channel": "shell", "content": {"code": code, "silent": False, "store_history": False,
                                                                 "user_expressions": {}, "allow_stdin": False,
                                                                 "stop_on_error": True}}))
        received, replied, idle = 0, False, False
        while not (replied and idle):
            m = json.loads(self.ws.recv())
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            kind = m["header"]["msg_type"]
            if kind == "stream":
                received += len(m["content"]["text"])
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and m["content"]["execution_state"] == "idle":
                idle = True
        return received

    def close(self):
        self.ws.close()


def _hwm_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> int:
    import requests

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="stream up to 1 GiB (default: up to 256 MiB)")
    ap.add_argument("--cells", type=int, default=60, help="trivial cells per path (default 60)")
    ap.add_argument("--output-mib", type=int, default=16, help="MiB printed by the throughput cell (default 16)")
    args = ap.parse_args(argv)
    sizes_mib = [1, 16, 256, 1024] if args.full else [1, 16, 256]
    with tempfile.TemporaryDirectory(prefix="spe-bench-recorder-") as d:
        tmp = Path(d)
        ws_proc, ws_url = start_workspace(tmp)
        rec_proc = None
        try:
            rec_proc, rec_url = start_recorder(tmp, ws_url)
            auth = {"Authorization": f"token {TOKEN}"}
            kid = requests.post(f"{ws_url}{PREFIX}api/kernels", headers=auth, json={"name": "python3"},
                                timeout=120).json()["id"]
            direct, recorded = Kernel(ws_url, kid), Kernel(rec_url, kid)
            for k in (direct, recorded):
                k.run("1")  # warm up
            lat = {"direct": [], "recorded": []}
            print(f"bench.recorder: {args.cells} trivial cells per path", file=sys.stderr)
            for _ in range(args.cells):
                for name, k in (("direct", direct), ("recorded", recorded)):
                    t = time.perf_counter()
                    k.run("1")
                    lat[name].append(time.perf_counter() - t)
            code = f"line = 'x' * 65535\nfor _ in range({args.output_mib * 16}): print(line, flush=True)"
            thr = {}
            for name, k in (("direct", direct), ("recorded", recorded)):
                print(f"bench.recorder: {args.output_mib} MiB of output, {name}", file=sys.stderr)
                t = time.perf_counter()
                got = k.run(code)
                if got < args.output_mib * 1024 * 1024 - 65536:
                    raise RuntimeError(f"{name}: received {got} bytes of {args.output_mib} MiB")
                thr[name] = got / (1024 * 1024) / (time.perf_counter() - t)
            direct.close()
            recorded.close()

            resources = tmp / "data" / "kernels" / "bench"
            resources.mkdir(parents=True)
            (resources / "kernel.json").write_text(json.dumps({"argv": ["python3"], "display_name": "bench",
                                                              "language": "python"}))
            memory = []
            for mib in sizes_mib:
                print(f"bench.recorder: streaming {mib} MiB through the recorder", file=sys.stderr)
                with open(resources / "big.bin", "wb") as f:
                    block = os.urandom(1024 * 1024)
                    for _ in range(mib):
                        f.write(block)
                t, got = time.perf_counter(), 0
                with requests.get(f"{rec_url}{PREFIX}kernelspecs/bench/big.bin", headers=auth, stream=True,
                                  timeout=600) as r:
                    r.raise_for_status()
                    for chunk in r.iter_content(1024 * 1024):
                        got += len(chunk)
                memory.append({"size_mib": mib, "received_bytes": got, "seconds": time.perf_counter() - t,
                               "recorder_peak_rss_bytes": _hwm_bytes(rec_proc.pid)})
        finally:
            for p in (rec_proc, ws_proc):
                if p is not None:
                    p.terminate()
                    p.wait(30)
    p50 = {k: percentile(v, 50) for k, v in lat.items()}
    report = {
        "cells": args.cells,
        "latency_seconds": {k: {"p50": p50[k], "p90": percentile(v, 90)} for k, v in lat.items()},
        "latency_ratio_p50": p50["recorded"] / p50["direct"],
        "latency_goal_ratio": LATENCY_GOAL,
        "output_mib": args.output_mib,
        "throughput_mib_per_second": thr,
        "throughput_ratio": thr["recorded"] / thr["direct"],
        "throughput_goal_ratio": THROUGHPUT_GOAL,
        "streamed": memory,
        "recorder_peak_rss_growth_bytes": memory[-1]["recorder_peak_rss_bytes"] - memory[0]["recorder_peak_rss_bytes"],
    }
    report["meets_latency_goal"] = report["latency_ratio_p50"] <= LATENCY_GOAL
    report["meets_throughput_goal"] = report["throughput_ratio"] >= THROUGHPUT_GOAL
    write_report("recorder", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
