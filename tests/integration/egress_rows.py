"""Rows in the egress service's tables for tests of hub-side readers (register, metrics).

The hub reads these tables by reflection and never imports `egress`; the egress service
defines them (egress/tables.py). This helper works whether or not that module is installed:
it creates a minimal table only when none exists, and fills any further NOT NULL column of
the real schema with a neutral value.
"""

from __future__ import annotations

import sqlalchemy as sa

MINIMAL_DDL = {
    "egress_requests": "CREATE TABLE egress_requests (id TEXT PRIMARY KEY, permit_id TEXT, author TEXT, state TEXT)",
    "egress_request_versions": "CREATE TABLE egress_request_versions (request_id TEXT, version INT, kind TEXT, "
                               "description TEXT, submitted_at TEXT)",
    "egress_releases": "CREATE TABLE egress_releases (request_id TEXT PRIMARY KEY, version INT, permit_id TEXT, "
                       "released_by TEXT, released_at TEXT)",
    "egress_files": "CREATE TABLE egress_files (request_id TEXT, version INT, name TEXT, check_json TEXT)",
}


def _neutral(col: sa.Column):
    t = col.type
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, (sa.Integer, sa.Numeric)):
        return 0
    return "x"


def insert_row(engine: sa.Engine, table: str, **values) -> None:
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table(table):
            conn.execute(sa.text(MINIMAL_DDL[table]))
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        row = {}
        for c in t.columns:
            if c.name in values:
                row[c.name] = values[c.name]
            elif not c.nullable and c.server_default is None and not (c.primary_key and isinstance(c.type, sa.Integer)):
                row[c.name] = _neutral(c)
        conn.execute(t.insert().values(**row))


def released_output(engine, *, request_id, permit_id, version, kind, description, released_at, author, releaser):
    insert_row(engine, "egress_requests", id=request_id, permit_id=permit_id, author=author, state="released",
               version=version)
    insert_row(engine, "egress_request_versions", request_id=request_id, version=version, kind=kind,
               description=description, submitted_at=released_at)
    insert_row(engine, "egress_releases", request_id=request_id, version=version, permit_id=permit_id,
               released_by=releaser, released_at=released_at)
