"""Shared benchmark helpers: JSON reports, peak memory of a child, percentiles."""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import os

    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "platform": platform.platform()}


def write_report(name: str, report: dict) -> dict:
    report = {"benchmark": name, "machine": machine(), **report}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report


def _child(queue, fn, args):
    started = time.perf_counter()
    value = fn(*args)
    queue.put((value, time.perf_counter() - started,
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))


def run_measured(fn, *args) -> dict:
    """Run fn(*args) in a fresh process: its result, wall seconds and peak RSS (self + children)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    value, seconds, rss, child_rss = queue.get()
    proc.join()
    return {"value": value, "seconds": seconds, "peak_rss_bytes": max(rss, child_rss)}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(p) - 1]
