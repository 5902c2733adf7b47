"""Audit tables: the events and a single-row chain head used as the writers' lock."""

import sqlalchemy as sa

from hub.db import metadata

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("role", sa.String(50)),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("permit_id", sa.String(100)),
    sa.Column("object_id", sa.String(300)),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text),  # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),  # unique: the chain cannot fork
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Index("ix_audit_permit_ts", "permit_id", "ts"),
    sa.Index("ix_audit_actor_ts", "actor", "ts"),
    sa.Index("ix_audit_action", "action"),
)

# One row (id = 1): the last seq and hash. Writers lock it (SELECT ... FOR UPDATE on
# PostgreSQL, BEGIN IMMEDIATE on SQLite) so concurrent processes append one chain.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Signed chain heads (hub.audit.checkpoint). `kind`: periodic | purge | export. A `purge`
# checkpoint is the base of the chain after older events were removed: verification starts
# from its hash. Rows are only ever inserted.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("algorithm", sa.String(20), nullable=False),  # ed25519
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),
    sa.Index("ix_audit_checkpoints_seq", "seq"),
)
