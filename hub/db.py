"""The registry database: one SQLAlchemy `MetaData`, an engine factory, a transaction helper.

SQLite file by default (WAL, every write transaction `BEGIN IMMEDIATE` so concurrent
writers queue instead of failing on lock upgrade), PostgreSQL by URL in production.
Hub's modules add their `Table`s to `metadata` (`make_engine` imports them, HUB_TABLE_MODULES);
an extension (egress) brings its own `MetaData` through `hub.extensions`, and `make_engine`
creates those tables too, also on an engine it made before the extension registered.
Must not import `egress`.
"""

from __future__ import annotations

import importlib
import threading
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event

from hub import extensions

metadata = sa.MetaData()

# Hub's modules that define tables on `metadata` (imported by name: they import this module).
HUB_TABLE_MODULES = ("hub.registry_tables", "hub.audit.tables", "hub.sessionlog.routes", "hub.mirror.tables",
                     "hub.frontoffice.tables", "hub.sessionlog.meterdb", "hub.notify.tables",
                     "hub.citizens.tables")

_engines: dict[str, sa.Engine] = {}
_created: dict[str, set[int]] = {}  # db URL -> id() of every MetaData whose tables exist there
_lock = threading.Lock()  # threads of one process (hub, egress workers) make engines at once


def _create_tables(db_url: str, engine: sa.Engine) -> None:
    done = _created.setdefault(db_url, set())
    for md in [metadata, *(md for ext in extensions.installed() for md in ext.metadata)]:
        if id(md) in done:
            continue
        md.create_all(engine)
        if md is metadata:
            from hub.audit.store import ensure_head

            ensure_head(engine)
        done.add(id(md))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # isolation_level=None: we issue BEGIN ourselves (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    # IMMEDIATE takes the write lock up front: two writers never both read the audit head
    # and then fail to upgrade; the second simply waits (busy_timeout).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(db_url: str, *, create: bool = True) -> sa.Engine:
    """Engine for `db_url`, cached per URL within a process. With `create`, the tables of hub and
    of every registered extension exist when it returns (created on first use)."""
    for name in HUB_TABLE_MODULES:  # outside the lock: an import must never wait for it
        importlib.import_module(name)
    with _lock:
        engine = _engines.get(db_url)
        if engine is None:
            if db_url.startswith("sqlite"):
                engine = sa.create_engine(db_url, connect_args={"timeout": 30, "check_same_thread": False})
                event.listen(engine, "connect", _sqlite_pragmas)
                event.listen(engine, "begin", _sqlite_begin)
            else:
                engine = sa.create_engine(db_url, pool_pre_ping=True)
            _engines[db_url] = engine
        if create:
            _create_tables(db_url, engine)
        return engine


def dispose_engines() -> None:
    """Forget cached engines (after a fork, or in tests that simulate a restart)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _created.clear()


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction: commit on success, roll back on any exception."""
    with engine.begin() as conn:
        yield conn
