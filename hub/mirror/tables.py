"""Registry tables of the package mirror (on hub's `MetaData`; `hub.db` creates them).

`mirror_indexes`: the unguessable token under which each permit's index is served (created at a
permit's first spawn or first wheel). `mirror_wheels`: every wheel an index holds, who added it,
when, from where (`origin`: `cli`, or the import request that approved it) and its SHA-256. Only
`hub.mirror.store` writes them, each change with its audit event in one transaction.
"""

import sqlalchemy as sa

from hub.db import metadata

SHARED_INDEX = "*"  # the index every permit's workspaces see (not a permit id: those are 2+ characters [A-Za-z0-9._-])

mirror_indexes = sa.Table(
    "mirror_indexes",
    metadata,
    sa.Column("permit_id", sa.String(64), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.String(32), nullable=False),
)

mirror_wheels = sa.Table(
    "mirror_wheels",
    metadata,
    sa.Column("index_name", sa.String(64), primary_key=True),  # a permit id, or SHARED_INDEX
    sa.Column("filename", sa.String(255), primary_key=True),
    sa.Column("project", sa.String(100), nullable=False),  # canonical name
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("added_by", sa.String(200), nullable=False),
    sa.Column("added_at", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(100), nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # the index URL or the local file it came from
    sa.Index("ix_mirror_wheels_project", "index_name", "project", "version"),
)
