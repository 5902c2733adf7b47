"""`spe synth` I/O: checks the request, then writes one Parquet file per table, each file
streamed part by part in person order by exactly one process.

Parallelism is across tables: with W workers the tables are split into W groups of about
equal cost (`assign_tables`), and each of W processes (this one and W - 1 spawned workers)
generates and writes only its group's tables for all parts. No table data crosses a process
boundary (sending ~100 MB per part through a pipe cost more than generating it), and each
file still has a single writer.

Determinism contract ("identical"): for the same persons, seed and part size (and the same
SPE, numpy and pyarrow versions on the same CPU family: numpy's log/cos may differ in the
last bit between SIMD implementations) every file written under the output directory has the
same bytes, whatever `workers` and `chunk_persons` are. Part boundaries depend only on the number of
persons and `part_persons`; each part is one Parquet row group per table (split only at
`ROW_GROUP_ROWS` within a part); values are counter-based hashes of (seed, table,
person_id, event index, field), never a random stream; `chunk_persons` only sets how many
persons are generated at once inside a part.

Layout: `OUT/<table>.parquet` for every table of `parts.SCHEMAS`, and `OUT/synth.json`
(parameters, rows and SHA-256 per file; nothing run-dependent such as time or workers).
This module does I/O; the generators it calls must not.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import queue as queue_module
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hub.exceptions import Failure, InvalidInput
from hub.synth.events import ID_STRIDE
from hub.synth.parts import SCHEMAS, TABLES, arrow_schema, delta_columns, dictionary_columns, make_part

GENERATOR_VERSION = 1          # bump when any generated value changes for a given seed
PART_PERSONS = 10_000          # persons per part (one row group per table): fixes the bytes
ROW_GROUP_ROWS = 1 << 20
MAX_PERSONS = 10_000_000       # national-ID serials are unique below 10**7 persons
MAX_WORKERS = 64
MANIFEST = "synth.json"
# store_schema=False: dictionary-typed string columns read back as plain strings.
# write_batch_size: fewer, larger encoder batches (measured ~10 % faster than 1024).
_WRITE_OPTIONS = dict(compression="snappy", store_schema=False, version="2.6", write_statistics=True,
                      write_batch_size=8192)
# relative CPU cost per part (generation + Parquet encoding, measured at 10 k persons)
TABLE_COST = {"measurement": 15, "condition_occurrence": 12, "drug_exposure": 10.5, "visit_occurrence": 3.5,
              "person": 2, "observation_period": 0.5, "death": 0.5}


@dataclass(frozen=True)
class Progress:
    parts_done: int
    parts_total: int
    rows_written: int


@dataclass
class SynthResult:
    out: Path
    rows: dict[str, int]
    seconds: float
    files: dict[str, str] = field(default_factory=dict)  # table -> sha256

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def plan_parts(persons: int, part_persons: int = PART_PERSONS) -> list[tuple[int, int]]:
    """[(first person_id, stop person_id)] of each part; depends on nothing but its arguments."""
    return [(lo, min(lo + part_persons, persons + 1)) for lo in range(1, persons + 1, part_persons)]


def assign_tables(workers: int) -> list[tuple[str, ...]]:
    """Split the tables into at most `workers` groups of about equal cost (longest first,
    each to the least loaded group). Only speed depends on this, never the bytes."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(TABLES))))]
    load = [0.0] * len(groups)
    for table in sorted(TABLES, key=lambda t: -TABLE_COST[t]):
        i = load.index(min(load))
        groups[i].append(table)
        load[i] += TABLE_COST[table]
    return [tuple(t for t in TABLES if t in g) for g in groups]


def _check_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"must be a whole number, got {value!r}", field=name)
    if not low <= value <= high:
        raise InvalidInput(f"must be between {low:,} and {high:,}, got {value:,}", field=name)
    return value


def check_request(persons, seed, workers, chunk_persons, part_persons) -> None:
    _check_int(persons, "persons", 1, MAX_PERSONS)
    _check_int(seed, "seed", 0, 2**63 - 1)
    _check_int(workers, "workers", 1, MAX_WORKERS)
    _check_int(part_persons, "part_persons", 1, MAX_PERSONS)
    _check_int(chunk_persons, "chunk_persons", 1, MAX_PERSONS)
    assert MAX_PERSONS * ID_STRIDE < 2**62  # event ids stay far inside int64


def our_files() -> set[str]:
    return {f"{t}.parquet" for t in SCHEMAS} | {MANIFEST}


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to write over anything we did not write ourselves (fail closed)."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"{out} exists and is not a directory", field="out")
    if not out.exists():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not force:
        raise InvalidInput(f"{out} is not empty; choose an empty directory or pass --force to replace "
                           f"a previous synthetic dataset", field="out")
    foreign = [e for e in entries if e not in our_files()]
    if foreign:
        raise InvalidInput(f"{out} holds {foreign[0]!r}, which spe synth did not write; --force only "
                           f"replaces a previous synthetic dataset", field="out")


def write_tables(seed: int, jobs: list[tuple[int, int]], tables: tuple[str, ...], directory: str,
                 chunk_persons: int, report: Callable[[int, int], None]) -> dict[str, int]:
    """Generate `tables` for every part in order, appending one row group per part to
    `directory/<table>.parquet`; report(part index, rows) after each part."""
    rows = {t: 0 for t in tables}
    writers = {t: pq.ParquetWriter(os.path.join(directory, f"{t}.parquet"), arrow_schema(t),
                                   use_dictionary=dictionary_columns(t), column_encoding=delta_columns(t),
                                   **_WRITE_OPTIONS)
               for t in tables}
    try:
        for part_no, (first, stop) in enumerate(jobs):
            part = make_part(seed, first, stop, chunk_persons, tables)
            for table, data in part.items():
                if data.num_rows:  # an empty part adds no (empty) row group
                    writers[table].write_table(data, row_group_size=ROW_GROUP_ROWS)
                rows[table] += data.num_rows
            part_rows = sum(data.num_rows for data in part.values())
            del part, data  # free this part before generating the next
            report(part_no, part_rows)
    finally:
        for w in writers.values():
            w.close()
    return rows


_progress_queue = None


def _init_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _worker_job(group_no: int, seed: int, jobs, tables, directory: str, chunk_persons: int) -> dict[str, int]:
    """Process-pool entry point (top level, so it works with the spawn start method)."""
    return write_tables(seed, jobs, tables, directory, chunk_persons,
                        lambda part_no, rows: _progress_queue.put((group_no, part_no, rows)))


class _Tally:
    """Parts are done when every group has written them; rows are summed as they come."""

    def __init__(self, groups: int, parts: int, progress):
        self.done = [0] * groups
        self.parts, self.rows, self.reported, self.progress = parts, 0, 0, progress

    def add(self, group_no: int, part_no: int, rows: int) -> None:
        self.done[group_no] = part_no + 1
        self.rows += rows
        parts_done = min(self.done)
        if self.progress and parts_done > self.reported:
            self.reported = parts_done
            self.progress(Progress(parts_done, self.parts, self.rows))


def _drain(progress_queue, tally: _Tally, timeout_seconds: float | None) -> bool:
    """Move queued progress reports into the tally; False when the queue stayed empty."""
    try:
        if timeout_seconds is None:
            tally.add(*progress_queue.get_nowait())
        else:
            tally.add(*progress_queue.get(timeout=timeout_seconds))
    except queue_module.Empty:
        return False
    return True


def _raise_failed(futures) -> None:
    for f in futures:
        if f.done() and f.exception() is not None:
            for other in futures:
                other.cancel()
            raise f.exception()


def _run_pool(seed, jobs, groups, directory: str, chunk_persons: int, tally: _Tally) -> dict[str, int]:
    """Group 0 (the heaviest) runs in this process while len(groups) - 1 spawned workers
    write the others: starting a worker costs ~0.6 CPU seconds of imports, so the parent,
    which has them already, does a full share of the work."""
    # spawn: forking a process that may hold Arrow thread pools is not safe
    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.Queue()
    with cf.ProcessPoolExecutor(max_workers=len(groups) - 1, mp_context=ctx, initializer=_init_worker,
                                initargs=(progress_queue,)) as pool:
        futures = [pool.submit(_worker_job, g, seed, jobs, tables, directory, chunk_persons)
                   for g, tables in enumerate(groups) if g > 0]

        def report(part_no: int, rows: int) -> None:
            tally.add(0, part_no, rows)
            while _drain(progress_queue, tally, None):
                pass
            _raise_failed(futures)

        rows = write_tables(seed, jobs, groups[0], directory, chunk_persons, report)
        while not all(f.done() for f in futures):
            _drain(progress_queue, tally, 0.2)
            _raise_failed(futures)
        _raise_failed(futures)
        while _drain(progress_queue, tally, 0.05):  # reports sent just before a worker finished
            pass
        for f in futures:
            rows.update(f.result())
    return rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def generate(out: Path | str, persons: int, seed: int, workers: int = 1, chunk_persons: int | None = None,
             part_persons: int = PART_PERSONS, force: bool = False,
             progress: Callable[[Progress], None] | None = None) -> SynthResult:
    """Write the synthetic dataset to `out`; returns rows per table and wall seconds."""
    chunk_persons = part_persons if chunk_persons is None else chunk_persons
    check_request(persons, seed, workers, chunk_persons, part_persons)
    out = Path(out)
    check_out_dir(out, force)
    started = time.perf_counter()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_parts(persons, part_persons)
    groups = assign_tables(workers)
    tally = _Tally(len(groups), len(jobs), progress)
    chunk = min(chunk_persons, part_persons)
    # build beside the target and move in at the end: a failed run leaves `out` as it was
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    try:
        if len(groups) == 1:
            rows = write_tables(seed, jobs, groups[0], str(tmp), chunk, lambda p, r: tally.add(0, p, r))
        else:
            rows = _run_pool(seed, jobs, groups, str(tmp), chunk, tally)
        if set(rows) != set(TABLES):
            raise Failure(f"synthetic data incomplete: tables {sorted(set(TABLES) - set(rows))} missing")
        files = {t: _sha256(tmp / f"{t}.parquet") for t in TABLES}
        manifest = {
            "generator": "spe synth", "generator_version": GENERATOR_VERSION, "pyarrow_version": pa.__version__,
            "numpy_version": np.__version__,
            "persons": persons, "seed": seed, "part_persons": part_persons,
            "tables": {t: {"file": f"{t}.parquet", "rows": rows[t], "sha256": files[t]} for t in TABLES},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for name in sorted(our_files()):
            os.replace(tmp / name, out / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()  # leave no trace of a failed run
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = {t: rows[t] for t in TABLES}
    return SynthResult(out=out, rows=rows, seconds=time.perf_counter() - started, files=files)
