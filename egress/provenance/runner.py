"""Run accepted provenance SQL on the permit's extract, in the egress DuckDB sandbox.

`Sandbox` is one provenance check's session on the extract (`egress.sandbox`: read-only
views of the extract's tables, no other file, no extensions, locked settings, memory limit
with spill, a time budget for everything the check runs). It adds what provenance needs on
top: a row limit on results, the sandbox's refusals worded as `ProvenanceRefused` /
`ProvenanceLimit`, and whether an extract table has one row per person (from the manifest
when it says so, else learnt once per extract file). `shared=True` takes a session on the
pooled database of the extract version; `shared=False` (default) opens a database of its
own, closed with the sandbox.

`reexecute(sql, extract_dir)` is the one-shot form: accept (`gate.check_sql`), run, return
the result. Must not import the web layer.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from egress import sandbox as extract_sandbox
from egress.exceptions import ProvenanceLimit, ProvenanceRefused, SandboxLimit, SandboxRefused, first_line
from egress.provenance import gate
from egress.provenance.evidence import PERSON_KEY

MAX_RESULT_ROWS = 1_000_000
_ONE_ROW_PER_PERSON: dict[tuple[str, int, int], bool] = {}  # (file, mtime, size) -> bool; see Sandbox


class Sandbox:
    """A provenance check's read-only, bounded session on one extract (context manager)."""

    def __init__(self, extract_dir: Path | str, *, memory_limit: str | None = None, threads: int | None = None,
                 timeout_seconds: float | None = None, max_rows: int = MAX_RESULT_ROWS, shared: bool = False):
        self.extract_dir = Path(extract_dir)
        self.max_rows = max_rows
        self.session = extract_sandbox.open_session(self.extract_dir, memory_limit=memory_limit, threads=threads,
                                                    timeout_seconds=timeout_seconds, shared=shared)
        self.timeout_seconds = self.session.timeout_seconds
        self.manifest, self.tables = self.session.extract.manifest, self.session.extract.tables
        self.con = self.session.con          # the DuckDB cursor (tests attack it directly)
        self._database = self.session.database

    @property
    def persons(self) -> int | None:
        return self.session.extract.persons

    def one_row_per_person(self, table: str) -> bool:
        """Does every row of extract `table` belong to a different person (unique, non-null
        `person_id`)? Then per-person contributions are the row values and evidence needs no
        per-(cell, person) aggregation. From the manifest (`tables.<t>.persons == rows`) when
        it says so, else computed once per extract file and cached (extracts are immutable)."""
        info = self.session.extract.table_info(table)
        if isinstance(info.get("persons"), int) and isinstance(info.get("rows"), int):
            return info["persons"] == info["rows"]
        path = self.tables[table]
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _ONE_ROW_PER_PERSON:
            try:
                unique = self.run(f'SELECT count(*) = count(DISTINCT {PERSON_KEY}) AND count(*) = count({PERSON_KEY}) '
                                  f'AS unique_persons FROM "{table}"').column(0)[0].as_py()
            except ProvenanceRefused:  # the table has no person_id column
                unique = False
            _ONE_ROW_PER_PERSON[key] = bool(unique)
        return _ONE_ROW_PER_PERSON[key]

    def run(self, sql: str) -> pa.Table:
        """Run one already-accepted SELECT under the time and row limits."""
        try:
            table = self.session.arrow(gate.bounded(sql, self.max_rows))
        except SandboxLimit as err:
            raise ProvenanceLimit(f"the provenance query {err.reason}") from None
        except SandboxRefused as err:
            raise ProvenanceRefused(f"the provenance query {err.reason}") from None
        except duckdb.Error as err:
            raise ProvenanceRefused(f"the provenance query failed: {first_line(err)}") from None
        if table.num_rows > self.max_rows:
            raise ProvenanceLimit(f"the provenance query returns more than {self.max_rows} rows")
        return table

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reexecute(sql: str, extract_dir: Path | str, *, memory_limit: str | None = None,
              timeout_seconds: float | None = None, threads: int | None = None, max_rows: int = MAX_RESULT_ROWS,
              shared: bool = False) -> pa.Table:
    """Re-run the provenance SELECT against the extract and return its result."""
    query = gate.check_sql(sql)
    with Sandbox(extract_dir, memory_limit=memory_limit, threads=threads, timeout_seconds=timeout_seconds,
                 max_rows=max_rows, shared=shared) as sandbox:
        return sandbox.run(query)


def clear_caches() -> None:
    """Forget which extract tables have one row per person (benchmarks measure a cold start)."""
    _ONE_ROW_PER_PERSON.clear()
