"""The one way egress opens a permit's extract in DuckDB: a locked-down, bounded sandbox.

Provenance re-execution (`egress.provenance`) and the DP gateway (`egress.dp.compute`) both
read the extract through here. A sandbox database covers one extract version and is built
like this (`Database`), in this order:

- the extract's manifest is read once (`read_extract`: which tables, which Parquet file each,
  only files directly inside the version directory);
- a DuckDB catalog file holding one VIEW per table over its Parquet file is written into a
  private directory (mode 0700, one per database), then opened READ_ONLY and unlinked: no
  statement can create, replace or drop a table, view or macro in it, and nothing can ATTACH
  it again (`ATTACH ':memory:'` is refused too, the instance is read-only);
- a caller that keeps derived tables (the DP gateway's per-person truncation) asks for a
  writable `spe_scratch` catalog, a second file in the same private directory; it never holds
  or reads anything but what that caller's own SQL put there, and untrusted SQL never runs on
  such a database (provenance opens its own, without scratch);
- `memory_limit` and `threads` bound the database; what does not fit spills into
  `<private>/spill` (at most `max_spill`) instead of failing;
- extensions off: no autoinstall, no autoload, no community extensions (with external access
  off DuckDB loads only what is statically linked: parquet, json, icu, core functions);
  persistent secrets off;
- `allowed_paths` = exactly the extract's Parquet files, then `enable_external_access=false`:
  no other file, directory, glob or URL can be read or written (`read_csv('/etc/passwd')`,
  another permit's extract, `COPY ... TO`, `EXPORT DATABASE`, `ATTACH 'file'`, `INSTALL`), and
  no Python replacement scan (a query cannot read a DataFrame of the calling frame: DuckDB's
  `python_enable_replacements` is per cursor and on by default, external access is what stops it);
- `lock_configuration=true` last, so no `SET`/`RESET`/`PRAGMA` changes any of the above, and
  the result is read back (fail closed if DuckDB did not take a setting).

What a raw DuckDB cursor could still do, by DuckDB's design: read and write its own temp
directory (here the private spill directory), write an allowed file as well as read it, and,
on a database with a scratch catalog, write there and DETACH/USE catalogs. The extract's files
are protected by the file system (provisioning leaves them 0444 in a 0555 directory; the
service runs as a non-root user), untrusted SQL reaches a sandbox only as one SELECT statement
(`egress.provenance.gate`), and only the DP gateway's own SQL runs on a scratch database.

Each use is a `Session`: its own cursor with a time budget; a watchdog thread interrupts the
cursor when the budget is spent (and again every 50 ms until the statement stops). Open
databases are kept in an LRU (`SandboxPool`) keyed by extract version (path + manifest
identity) and limits, bounded by `max_open_extracts`; an evicted database closes (and its
private directory is removed) when its last session ends. Settings (`SandboxSettings`) are
read once at the entry point (`egress.app`, `configure`), never from the environment here.

I/O edge: DuckDB, the extract directory and the private temp directory. Imports only
`egress.exceptions` and hub's SQL quoting; must not import the web layer or the registry.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hub.datasets.source import quote_ident, sql_literal

from egress.exceptions import ExtractUnavailable, SandboxLimit, SandboxRefused, first_line

log = logging.getLogger("spe.egress.sandbox")

MANIFEST = "manifest.json"
SCRATCH = "spe_scratch"  # the writable catalog of a database opened with scratch=True
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*[KMGT]i?B$", re.I)


# --- settings --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SandboxSettings:
    """Resource bounds of every sandbox database; built once at the entry point.

    memory_limit: DuckDB memory limit per open extract ("2GB"); beyond it queries spill.
    threads: DuckDB threads per open extract; 0 = one per CPU core (DuckDB's default).
    timeout_seconds: time budget of one session (a provenance check, a DP query).
    max_spill: largest spill directory per open extract ("20GB"); beyond it a query fails.
    temp_dir: parent of the private directories; "" = the system's temp directory.
    max_open_extracts: open databases kept for reuse (least recently used closed first).
    """

    memory_limit: str = "2GB"
    threads: int = 0
    timeout_seconds: float = 30.0
    max_spill: str = "20GB"
    temp_dir: str = ""
    max_open_extracts: int = 8

    def __post_init__(self):
        check_size("memory_limit", self.memory_limit)
        check_size("max_spill", self.max_spill)
        if int(self.threads) < 0:
            raise ValueError(f"threads must be 0 (one per core) or more, not {self.threads}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, not {self.timeout_seconds}")
        if int(self.max_open_extracts) < 1:
            raise ValueError(f"max_open_extracts must be at least 1, not {self.max_open_extracts}")


def check_size(name: str, value: str) -> str:
    """A DuckDB size like '512MB' or '2 GiB'; ValueError naming the setting otherwise."""
    if not isinstance(value, str) or not _SIZE.match(value.strip()):
        raise ValueError(f"{name} {value!r} is not a size like '512MB' or '2GiB'")
    return value.strip()


@dataclass(frozen=True)
class Limits:
    """What makes two databases of one extract different (DuckDB settings are per database)."""

    memory_limit: str
    threads: int
    max_spill: str

    def __post_init__(self):
        check_size("memory_limit", self.memory_limit)
        check_size("max_spill", self.max_spill)


# --- the extract (one manifest reader) -------------------------------------------------------

@dataclass(frozen=True)
class Extract:
    """One extract version: its manifest and the Parquet file of each table."""

    root: Path
    manifest: dict = field(repr=False)
    tables: dict[str, Path] = field(default_factory=dict)

    @property
    def persons(self) -> int | None:
        """Distinct persons of the extract (the manifest's `persons`), if it says."""
        value = self.manifest.get("persons")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def table_info(self, table: str) -> dict:
        """The manifest's entry for `table` ({} when the manifest does not describe it)."""
        info = (self.manifest.get("tables") or {}).get(table)
        return info if isinstance(info, dict) else {}


def read_extract(extract_dir: Path | str) -> Extract:
    """The extract in `extract_dir`: its tables from `manifest.json` (each `tables.<t>.file`,
    default `<t>.parquet`) or, without a manifest, every `*.parquet` in the directory. A table
    must be a plain identifier and its file a regular file directly inside the directory (no
    symlink out, no sub-directory); ExtractUnavailable otherwise."""
    directory = Path(extract_dir)
    if not directory.is_dir():
        raise ExtractUnavailable(f"extract directory {directory} does not exist")
    root = directory.resolve()
    manifest: dict = {}
    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ExtractUnavailable(f"unreadable manifest {manifest_path}: {err}") from err
        if not isinstance(manifest, dict):
            raise ExtractUnavailable(f"manifest {manifest_path} is not a JSON object")
    entries = manifest.get("tables") if isinstance(manifest.get("tables"), dict) else None
    found: dict[str, Path] = {}
    if entries:
        for name, info in entries.items():
            file_name = (info or {}).get("file") if isinstance(info, dict) else None
            found[name] = root / str(file_name or f"{name}.parquet")
    else:
        found = {path.stem: path for path in sorted(root.glob("*.parquet"))}
    tables: dict[str, Path] = {}
    for name, path in found.items():
        resolved = path.resolve()
        if not _IDENTIFIER.match(str(name)) or resolved.parent != root or not resolved.is_file():
            raise ExtractUnavailable(f"extract table {name!r} ({path.name}) is not a Parquet file of the extract")
        tables[name] = resolved
    if not tables:
        raise ExtractUnavailable(f"extract directory {directory} holds no Parquet tables")
    return Extract(root, manifest, tables)


def _version_key(root: Path) -> tuple:
    """Identity of an extract version without reading it: the manifest's inode, size and
    mtime (versions are immutable directories; a re-provisioned path gets a new manifest), or,
    without a manifest, the Parquet files' names, sizes and mtimes."""
    try:
        st = (root / MANIFEST).stat()
        return ("manifest", st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        pass
    files = []
    for path in sorted(root.glob("*.parquet")):
        try:
            st = path.stat()
        except FileNotFoundError:  # removed meanwhile: read_extract decides what is left
            continue
        files.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return ("files", *files)


# --- the time limit --------------------------------------------------------------------------

class _Watchdog:
    """One daemon thread interrupts the DuckDB statements that outlive their deadline.

    `watch` registers a running statement, `done` unregisters it and says whether it was
    interrupted. Cheaper than a timer thread per statement; an interrupt is repeated every
    `REPEAT_SECONDS` until the statement returns, so an interrupt that lands just before
    DuckDB starts the statement cannot be lost."""

    REPEAT_SECONDS = 0.05

    def __init__(self):
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._running: dict[int, list] = {}  # token -> [cursor, fired]
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, cursor, deadline: float) -> int:
        with self._cv:
            token = next(self._tokens)
            self._running[token] = [cursor, False]
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="spe-sandbox-watchdog", daemon=True)
                self._thread.start()
            elif earliest is None or deadline < earliest:
                self._cv.notify()
            return token

    def done(self, token: int) -> bool:
        with self._cv:
            return self._running.pop(token)[1]

    def _loop(self) -> None:
        with self._cv:
            while True:
                while self._heap and self._heap[0][1] not in self._running:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._cv.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heapreplace(self._heap, (time.monotonic() + self.REPEAT_SECONDS, token))
                entry = self._running[token]
                entry[1] = True
                try:
                    entry[0].interrupt()
                except duckdb.Error:  # the cursor closed meanwhile: nothing left to stop
                    pass
                except Exception:  # never let the one watchdog die
                    log.exception("interrupting a sandbox statement failed")


_WATCHDOG = _Watchdog()


# --- one database per extract version --------------------------------------------------------

class Database:
    """A locked-down DuckDB over one extract version (module docstring); sessions share it."""

    def __init__(self, extract: Extract, limits: Limits, *, scratch: bool = False, temp_dir: str = ""):
        self.extract = extract
        self.limits = limits
        self.scratch = SCRATCH if scratch else None
        # Per-database state of a caller (e.g. the DP gateway's truncation tables in the
        # scratch catalog); lives and dies with this database.
        self.state: dict[str, Any] = {}
        self.state_lock = threading.Lock()
        self._lock = threading.Lock()
        self._sessions = 0
        self._retired = False
        self._closed = False
        self.private_dir = Path(tempfile.mkdtemp(prefix="spe-sandbox-", dir=temp_dir or None))  # 0700
        # removed on close, or when this object is collected, or at exit, whichever comes first
        self._remove_private_dir = weakref.finalize(self, shutil.rmtree, str(self.private_dir), True)
        try:
            self._con = self._open()
        except BaseException:
            self._remove_private_dir()
            raise
        log.info("opened the extract sandbox of %s (%s, %s threads%s) in %s", extract.root, limits.memory_limit,
                 limits.threads or "all", ", scratch" if scratch else "", self.private_dir)

    def _open(self) -> duckdb.DuckDBPyConnection:
        catalog = self.private_dir / "extract.duckdb"
        files = [str(path) for path in self.extract.tables.values()]
        try:
            writer = duckdb.connect(str(catalog), config={"autoinstall_known_extensions": False,
                                                          "autoload_known_extensions": False})
            try:
                for name, path in self.extract.tables.items():
                    # `name` is a plain identifier (read_extract), the path a quoted literal
                    writer.execute(f"CREATE VIEW {quote_ident(name)} AS SELECT * FROM read_parquet({sql_literal(path)})")
            finally:
                writer.close()
            con = duckdb.connect(str(catalog), read_only=True)
        except duckdb.Error as err:
            raise ExtractUnavailable(f"cannot open the extract in {self.extract.root}: {first_line(err)}") from err
        try:
            if self.scratch:
                con.execute(f"ATTACH {sql_literal(self.private_dir / 'scratch.duckdb')} AS {self.scratch} (READ_WRITE)")
            settings: list[tuple[str, Any]] = [
                ("memory_limit", self.limits.memory_limit),
                ("temp_directory", str(self.private_dir / "spill")),
                ("max_temp_directory_size", self.limits.max_spill),
                ("autoinstall_known_extensions", False),
                ("autoload_known_extensions", False),
                ("allow_community_extensions", False),
                ("allow_persistent_secrets", False),
                ("allowed_directories", []),
                ("allowed_paths", files),
                # Order matters: from here on only the files above are readable, and then no
                # setting can be changed back.
                ("enable_external_access", False),
                ("lock_configuration", True),
            ]
            if self.limits.threads:
                settings.insert(1, ("threads", int(self.limits.threads)))
            for name, value in settings:
                con.execute(f"SET {name} = $v", {"v": value})
            got = con.execute("SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
                              "current_setting('autoload_known_extensions'), "
                              "current_setting('autoinstall_known_extensions')").fetchone()
            if tuple(got) != (False, True, False, False):
                raise ExtractUnavailable(f"the DuckDB sandbox did not take its settings: {got}")
        except BaseException as err:
            con.close()
            if isinstance(err, duckdb.Error):
                raise ExtractUnavailable(f"cannot lock down the extract sandbox: {first_line(err)}") from err
            raise
        finally:
            catalog.unlink(missing_ok=True)  # held open read-only; nothing can open it again
        return con

    def session(self, timeout_seconds: float) -> "Session":
        with self._lock:
            if self._closed:
                raise ExtractUnavailable("the extract sandbox was closed")
            cursor = self._con.cursor()
            self._sessions += 1
        return Session(self, cursor, timeout_seconds)

    def _session_ended(self) -> None:
        with self._lock:
            self._sessions -= 1
            close = self._retired and self._sessions == 0
        if close:
            self._close()

    def retire(self) -> None:
        """No new sessions from the pool; close as soon as the last session ends."""
        with self._lock:
            self._retired = True
            close = self._sessions == 0
        if close:
            self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._con.close()
        finally:
            self._remove_private_dir()
            log.info("closed the extract sandbox of %s", self.extract.root)


# --- a session: one cursor, one time budget --------------------------------------------------

class Session:
    """One cursor on a sandbox database with a time budget for everything it runs.

    `execute` is for SQL the caller built itself (identifiers checked, values bound); untrusted
    SQL goes through `egress.provenance.gate` first. Errors that are the sandbox's own become
    `SandboxLimit` (time, memory) and `SandboxRefused` (a file outside the extract); any other
    DuckDB error is raised as DuckDB raised it, for the caller to word.
    """

    def __init__(self, database: Database, cursor: duckdb.DuckDBPyConnection, timeout_seconds: float):
        self.database = database
        self.extract = database.extract
        self.scratch = database.scratch
        self.con = cursor
        self.timeout_seconds = float(timeout_seconds)
        self.deadline = time.monotonic() + self.timeout_seconds
        self._closed = False

    def execute(self, sql: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        """Run one statement under the time budget; the cursor, to fetch the (materialised) result."""
        return self._limited(lambda: self.con.execute(sql, params) if params is not None else self.con.execute(sql))

    def arrow(self, sql: str, params: Any = None) -> pa.Table:
        """Run one SELECT under the time budget; its result as an Arrow table."""
        return self._limited(lambda: self.con.sql(sql, params=params).to_arrow_table())

    def _limited(self, run):
        if self._closed:
            raise ExtractUnavailable("the sandbox session is closed")
        if self.deadline - time.monotonic() <= 0:
            raise self._too_slow()
        token = _WATCHDOG.watch(self.con, self.deadline)
        error = None
        try:
            result = run()
        except duckdb.Error as err:
            error = err
        finally:
            fired = _WATCHDOG.done(token)
        if error is not None:
            raise self._translate(error, fired) from None
        if fired:
            # The interrupt came as the statement finished: it may still be pending on the
            # cursor, and the budget is spent anyway.
            raise self._too_slow()
        return result

    def _translate(self, err: duckdb.Error, fired: bool) -> Exception:
        if fired or isinstance(err, duckdb.InterruptException):
            return self._too_slow()
        if isinstance(err, duckdb.OutOfMemoryException):
            limits = self.database.limits
            return SandboxLimit(f"needs more memory than the sandbox's {limits.memory_limit} "
                                f"(and {limits.max_spill} of spill): {first_line(err)}")
        if isinstance(err, duckdb.PermissionException):
            return SandboxRefused(f"reads or writes outside the extract: {first_line(err)}")
        return err

    def _too_slow(self) -> SandboxLimit:
        return SandboxLimit(f"ran longer than {self.timeout_seconds:g} s, its time limit")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.con.close()
        finally:
            self.database._session_ended()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the pool --------------------------------------------------------------------------------

class SandboxPool:
    """Open sandbox databases, reused per (extract version, limits, scratch); LRU-bounded."""

    def __init__(self, settings: SandboxSettings | None = None):
        self.settings = settings or SandboxSettings()
        self._lock = threading.Lock()
        self._open: "OrderedDict[tuple, Database]" = OrderedDict()

    def limits(self, memory_limit: str | None = None, threads: int | None = None) -> Limits:
        s = self.settings
        return Limits(memory_limit or s.memory_limit, int(s.threads if threads is None else threads), s.max_spill)

    def session(self, extract_dir: Path | str, *, memory_limit: str | None = None, threads: int | None = None,
                timeout_seconds: float | None = None, scratch: bool = False, shared: bool = True) -> Session:
        """A session on the extract in `extract_dir`: on the pooled database of that extract
        version (`shared`), or on a database of its own, closed with the session."""
        limits = self.limits(memory_limit, threads)
        timeout = self.settings.timeout_seconds if timeout_seconds is None else timeout_seconds
        if not shared:
            database = Database(read_extract(extract_dir), limits, scratch=scratch, temp_dir=self.settings.temp_dir)
            try:
                return database.session(timeout)
            finally:
                database.retire()  # closes when that session ends
        directory = Path(extract_dir)
        if not directory.is_dir():
            raise ExtractUnavailable(f"extract directory {directory} does not exist")
        root = directory.resolve()
        key = (str(root), _version_key(root), limits, bool(scratch))
        with self._lock:
            database = self._open.get(key)
            if database is not None:
                self._open.move_to_end(key)
                return database.session(timeout)
        # Opened outside the lock (tens of milliseconds); if another thread opened the same
        # version meanwhile, this one is closed and theirs is used.
        fresh = Database(read_extract(root), limits, scratch=scratch, temp_dir=self.settings.temp_dir)
        evicted = []
        with self._lock:
            database = self._open.get(key)
            if database is None:
                database = self._open[key] = fresh
                while len(self._open) > self.settings.max_open_extracts:
                    evicted.append(self._open.popitem(last=False)[1])
            else:
                evicted.append(fresh)
            self._open.move_to_end(key)
            session = database.session(timeout)
        for old in evicted:
            old.retire()  # closed once its running sessions end
        return session

    def close(self) -> None:
        """Retire every pooled database (each closes when its last session ends)."""
        with self._lock:
            databases = list(self._open.values())
            self._open.clear()
        for database in databases:
            database.retire()


_POOL = SandboxPool()


def configure(settings: SandboxSettings) -> SandboxPool:
    """Install the settings of this process's sandboxes (called once by the entry point)."""
    global _POOL
    old, _POOL = _POOL, SandboxPool(settings)
    old.close()
    return _POOL


def settings() -> SandboxSettings:
    return _POOL.settings


def open_session(extract_dir: Path | str, **kw) -> Session:
    """A session on the process's pool (`SandboxPool.session`)."""
    return _POOL.session(extract_dir, **kw)
