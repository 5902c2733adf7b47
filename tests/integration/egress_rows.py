"""Rows in the egress service's tables (egress/tables.py) for tests of the readers that egress
plugs into hub (register, metrics): any NOT NULL column a test does not care about gets a
neutral value."""

from __future__ import annotations

import sqlalchemy as sa

from egress.tables import metadata


def _neutral(col: sa.Column):
    t = col.type
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, (sa.Integer, sa.Numeric)):
        return 0
    return "x"


def insert_row(engine: sa.Engine, table: str, **values) -> None:
    t = metadata.tables[table]
    row = {c.name: values.get(c.name, _neutral(c)) for c in t.columns
           if c.name in values or (not c.nullable and c.server_default is None and c.autoincrement is not True)}
    with engine.begin() as conn:
        conn.execute(t.insert().values(**row))


def released_output(engine, *, request_id, permit_id, version, kind, description, released_at, author, releaser):
    insert_row(engine, "egress_requests", id=request_id, permit_id=permit_id, author=author, state="released",
               version=version)
    insert_row(engine, "egress_request_versions", request_id=request_id, version=version, kind=kind,
               description=description, submitted_at=released_at)
    insert_row(engine, "egress_releases", request_id=request_id, version=version, permit_id=permit_id,
               released_by=releaser, released_at=released_at)
