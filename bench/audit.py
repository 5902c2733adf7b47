"""Audit trail benchmark: concurrent append throughput, verify time, export memory.

`python -m bench.audit` (modest sizes) or `python -m bench.audit --full` (the issue's sizes:
1 M events for verify and export). Goals: >= 5,000 events/s with 4 concurrent writers on
SQLite; verify of 1 M events <= 10 s; export of 1 M events with bounded peak RSS. Baselines
measured in the same run: one writer alone, a bare SELECT over the table, an idle process.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import run_measured, write_report

SQLITE_GOAL_EVENTS_PER_SECOND = 5000
VERIFY_GOAL_SECONDS = 10.0


def _writer(url: str, who: str, n: int, barrier, per_transaction: int) -> None:
    from hub.audit.store import record, record_many
    from hub.db import make_engine

    engine = make_engine(url)
    barrier.wait()

    def event(i):
        return dict(actor=who, role="researcher", action="session.cell", permit_id="P-bench", object_id=f"k-{who}",
                    detail={"kernel_id": f"k-{who}", "code": f"x = {i}", "code_bytes": 5})

    for start in range(0, n, per_transaction):
        with engine.begin() as conn:
            if per_transaction == 1:
                record(conn, **event(start))
            else:
                record_many(conn, [event(i) for i in range(start, min(n, start + per_transaction))])
    engine.dispose()


def append_throughput(url: str, writers: int, per_writer: int, per_transaction: int = 1) -> dict:
    from hub.db import make_engine

    make_engine(url)  # tables and head exist before the writers race
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(writers + 1)
    procs = [ctx.Process(target=_writer, args=(url, f"w{i}", per_writer, barrier, per_transaction)) for i in range(writers)]
    for p in procs:
        p.start()
    barrier.wait()
    started = time.perf_counter()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - started
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a writer failed")
    total = writers * per_writer
    from hub.audit import verify

    result = verify(make_engine(url))
    if not result.ok or result.events != total:
        raise RuntimeError(f"concurrent writers broke the chain: {result.describe()}")
    return {"writers": writers, "events": total, "events_per_transaction": per_transaction,
            "seconds": round(seconds, 3), "chain_verified": True,
            "events_per_second": round(total / seconds, 1)}


def build_chain(path: Path, n: int) -> None:
    """A valid n-event chain written in bulk (the hashes are computed exactly as `record` does)."""
    from hub.audit.chain import GENESIS, SCHEMA_VERSION, content_hash_values, link_hash
    from hub.db import make_engine

    url = f"sqlite:///{path}"
    make_engine(url).dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    prev = GENESIS
    batch = []
    for seq in range(1, n + 1):
        values = (SCHEMA_VERSION, f"2026-01-01T00:00:{seq % 60:02d}.{seq:06d}Z"[:27] + "Z", f"user{seq % 50}",
                  "researcher", "session.cell", f"P-{seq % 7}", f"k{seq % 100}", "ok",
                  f'{{"code":"x = {seq}","code_bytes":8,"kernel_id":"k{seq % 100}"}}')
        h = link_hash(prev, content_hash_values(values))
        batch.append((seq, prev, h, *values))
        prev = h
        if len(batch) == 50000 or seq == n:
            con.executemany("INSERT INTO audit_events (seq, prev_hash, hash, schema_version, ts, actor, role, action,"
                            " permit_id, object_id, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch = []
    con.execute("UPDATE audit_head SET seq = ?, hash = ?", (n, prev))
    con.commit()
    con.close()


def _hwm_bytes() -> int:
    """Peak RSS of this process image (VmHWM). Unlike getrusage's ru_maxrss, it restarts at
    exec, so a fresh child does not inherit the parent's high-water mark."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _verify(path: str) -> dict:
    from hub.audit import verify
    from hub.db import make_engine

    started = time.perf_counter()
    result = verify(make_engine(f"sqlite:///{path}"))
    return {"ok": result.ok, "events": result.events, "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_bytes": _hwm_bytes()}


def _verify_parallel(path: str, workers: int) -> dict:
    from hub.audit import verify
    from hub.db import make_engine

    started = time.perf_counter()
    result = verify(make_engine(f"sqlite:///{path}"), workers=workers)
    return {"ok": result.ok, "events": result.events, "workers": workers,
            "seconds": round(time.perf_counter() - started, 3)}


def _bare_select(path: str) -> dict:
    started = time.perf_counter()
    con = sqlite3.connect(path)
    n = sum(1 for _ in con.execute("SELECT * FROM audit_events ORDER BY seq"))
    con.close()
    return {"rows": n, "seconds": round(time.perf_counter() - started, 3)}


def _export(path: str, keys: str, out: str) -> dict:
    from hub.audit.checkpoint import load_or_create_signer
    from hub.audit.pack import ExportFilter, export_pack
    from hub.db import make_engine

    with open(out, "w") as fh:
        counts = export_pack(make_engine(f"sqlite:///{path}"), fh, signer=load_or_create_signer(Path(keys)),
                             actor="bench", flt=ExportFilter())
    return {**counts, "peak_rss_bytes": _hwm_bytes()}


def _verify_pack(out: str) -> dict:
    from hub.audit.pack import verify_pack

    started = time.perf_counter()
    with open(out) as fh:
        r = verify_pack(fh)
    return {"ok": r.ok, "events": r.events, "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_bytes": _hwm_bytes()}


def _idle() -> dict:
    import hub.audit.pack  # noqa: F401  (same imports as the export child)
    from hub.db import make_engine  # noqa: F401

    return {"peak_rss_bytes": _hwm_bytes()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="1 M events for verify/export")
    ap.add_argument("--events", type=int, help="events for verify/export (default 100k, --full 1M)")
    ap.add_argument("--per-writer", type=int, default=None, help="events per writer (default 2,500)")
    args = ap.parse_args(argv)
    n = args.events or (1_000_000 if args.full else 100_000)
    per_writer = args.per_writer or (5000 if args.full else 2500)
    report: dict = {"events": n}
    with tempfile.TemporaryDirectory(prefix="spe-bench-audit-") as tmp:
        tmp = Path(tmp)
        report["append_single_writer"] = append_throughput(f"sqlite:///{tmp / 'one.db'}", 1, per_writer)
        report["append_4_writers"] = append_throughput(f"sqlite:///{tmp / 'four.db'}", 4, per_writer)
        # Buffered writers (the session recorder flushes every 100 ms) append with record_many.
        report["append_4_writers_batched"] = append_throughput(f"sqlite:///{tmp / 'four-b.db'}", 4, per_writer, 25)
        for key in ("append_4_writers", "append_4_writers_batched"):
            report[key]["goal_events_per_second"] = SQLITE_GOAL_EVENTS_PER_SECOND
            report[key]["meets_goal"] = report[key]["events_per_second"] >= SQLITE_GOAL_EVENTS_PER_SECOND
        report["load_average_1min"] = os.getloadavg()[0]

        db = tmp / "big.db"
        t = time.perf_counter()
        build_chain(db, n)
        report["build_seconds"] = round(time.perf_counter() - t, 2)
        report["db_bytes"] = os.path.getsize(db)
        bare = run_measured(_bare_select, str(db))
        ver = run_measured(_verify, str(db))
        report["verify"] = {**ver["value"], "baseline_bare_select_seconds": bare["value"]["seconds"],
                            "verify_over_bare_select": round(ver["value"]["seconds"] / bare["value"]["seconds"], 2),
                            "goal_seconds_for_1M": VERIFY_GOAL_SECONDS,
                            "projected_seconds_for_1M": round(ver["value"]["seconds"] * 1_000_000 / n, 2)}
        report["verify"]["meets_goal"] = report["verify"]["projected_seconds_for_1M"] <= VERIFY_GOAL_SECONDS
        par = run_measured(_verify_parallel, str(db), os.cpu_count() or 2)
        report["verify_parallel"] = {**par["value"],
                                     "projected_seconds_for_1M": round(par["value"]["seconds"] * 1_000_000 / n, 2)}
        idle = run_measured(_idle)
        out = tmp / "pack.jsonl"
        exp = run_measured(_export, str(db), str(tmp / "keys"), str(out))
        vp = run_measured(_verify_pack, str(out))
        idle_rss = idle["value"]["peak_rss_bytes"]
        report["export"] = {**exp["value"], "seconds": round(exp["seconds"], 3), "pack_bytes": out.stat().st_size,
                            "baseline_idle_process_rss_bytes": idle_rss,
                            "rss_over_baseline_bytes": exp["value"]["peak_rss_bytes"] - idle_rss}
        report["verify_pack"] = {**vp["value"], "rss_over_baseline_bytes": vp["value"]["peak_rss_bytes"] - idle_rss}
    write_report("audit", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
