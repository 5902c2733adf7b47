"""Benchmark: concurrent submissions to the egress service behind a real JupyterHub.

`python -m bench.egress_service [--full] [--concurrent N]` starts a real JupyterHub with the
egress service (as the integration tests do), then submits a suppressed count table with its
provenance SQL (so every submission re-executes the query on the Eunomia extract):
- baseline: `sequential` submissions one after another (same run, same machine);
- load: `concurrent` submissions at once (default 100; `--full` 400).
Reports latency percentiles, throughput, and the integrity checks: every submission answered
201 with a distinct id, exactly that many requests stored, every file in the store, the audit
chain intact. Writes bench/results/egress_service.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import sqlalchemy as sa

from bench.common import percentile, write_report


def _submit(url: str, token: str, payload: bytes, sql: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    r = requests.post(url + "api/requests", headers={"Authorization": f"token {token}"},
                      data={"description": "bench: persons by sex and year of birth", "kind": "frequency",
                            "provenance_sql": sql},
                      files=[("file", ("by_sex_year.parquet", payload, "application/octet-stream"))], timeout=600)
    seconds = time.perf_counter() - started
    return seconds, r.status_code, (r.json().get("id", "") if r.status_code == 201 else r.text[:200])


def _summary(latencies: list[float], wall: float) -> dict:
    return {"n": len(latencies), "wall_seconds": round(wall, 3),
            "throughput_per_second": round(len(latencies) / wall, 2) if wall else None,
            "p50_seconds": round(percentile(latencies, 50), 4), "p95_seconds": round(percentile(latencies, 95), 4),
            "max_seconds": round(max(latencies), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="400 concurrent submissions")
    parser.add_argument("--concurrent", type=int, default=None)
    parser.add_argument("--sequential", type=int, default=10)
    args = parser.parse_args(argv)
    concurrent = args.concurrent or (400 if args.full else 100)

    from egress.tables import egress_files, egress_requests
    from egress.store import BlobStore
    from hub.audit import verify
    from hub.db import make_engine
    from tests.integration.egress_hub import COUNT_SQL, count_table, parquet_bytes, start_hub, stop_hub, suppressed

    hub = start_hub(Path(tempfile.mkdtemp(prefix="spe-bench-egress-")))
    try:
        token = hub.workspace_token("alice")
        payload = parquet_bytes(suppressed(count_table(hub.extract_dir)))
        _submit(hub.egress_url, token, payload, COUNT_SQL)  # warm-up (token cache, DuckDB import)

        started = time.perf_counter()
        seq = [_submit(hub.egress_url, token, payload, COUNT_SQL) for _ in range(args.sequential)]
        seq_wall = time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrent) as pool:
            results = list(pool.map(lambda _: _submit(hub.egress_url, token, payload, COUNT_SQL), range(concurrent)))
        wall = time.perf_counter() - started

        engine = make_engine(hub.db_url)
        ids = [r[2] for r in results if r[1] == 201]
        with engine.connect() as conn:
            stored = {row.id for row in conn.execute(sa.select(egress_requests.c.id).where(
                egress_requests.c.id.in_(ids)))}
            shas = {row.sha256 for row in conn.execute(sa.select(egress_files.c.sha256).where(
                egress_files.c.request_id.in_(ids)))}
        store = BlobStore(hub.home / "egress-store")
        report = {
            "parameters": {"concurrent": concurrent, "sequential": args.sequential,
                           "payload_bytes": len(payload), "provenance_reexecution": True},
            "baseline_sequential": _summary([r[0] for r in seq], seq_wall),
            "concurrent": _summary([r[0] for r in results], wall),
            "integrity": {
                "answered_201": len(ids), "errors": [r[1:] for r in results if r[1] != 201][:5],
                "distinct_ids": len(set(ids)), "stored": len(stored), "lost": concurrent - len(stored),
                "blobs_present": all(store.has(s) for s in shas), "audit_chain_intact": verify(engine).ok,
            },
        }
        report["concurrent"]["p95_vs_sequential_p95"] = round(
            report["concurrent"]["p95_seconds"] / report["baseline_sequential"]["p95_seconds"], 2)
        write_report("egress_service", report)
        return 0 if report["integrity"]["lost"] == 0 and len(ids) == concurrent else 1
    finally:
        stop_hub(hub)


if __name__ == "__main__":
    raise SystemExit(main())
