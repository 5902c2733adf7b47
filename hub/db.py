"""The registry database: one SQLAlchemy `MetaData`, an engine factory, a transaction helper.

SQLite file by default (WAL, every write transaction `BEGIN IMMEDIATE` so concurrent
writers queue instead of failing on lock upgrade), PostgreSQL by URL in production.
Other modules add their own `Table`s to `metadata`; `make_engine` imports the known
table modules so that one call creates everything.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event

metadata = sa.MetaData()

# Modules that define tables on `metadata`. Optional ones (egress) are imported if present;
# hub never *depends* on egress, it only lets its tables be created by the same call.
TABLE_MODULES = [
    "hub.registry_tables",
    "hub.audit.tables",
    "hub.audit.submit",
    "hub.sessionlog.routes",
    "egress.tables",
    "egress.dp.ledger",
]

_engines: dict[str, sa.Engine] = {}


def _import_table_modules() -> None:
    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not (err.name and name.startswith(err.name)):
                raise


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
    """Engine for `db_url`, tables created on first use. Cached per URL within a process."""
    if db_url in _engines:
        return _engines[db_url]
    _import_table_modules()
    if db_url.startswith("sqlite"):
        engine = sa.create_engine(db_url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = sa.create_engine(db_url, pool_pre_ping=True)
    if create:
        metadata.create_all(engine)
        from hub.audit.store import ensure_head

        ensure_head(engine)
    _engines[db_url] = engine
    return engine


def dispose_engines() -> None:
    """Forget cached engines (after a fork, or in tests that simulate a restart)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction: commit on success, roll back on any exception."""
    with engine.begin() as conn:
        yield conn
