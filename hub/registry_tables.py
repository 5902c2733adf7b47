"""Registry tables of the control plane: datasets, permits and their versions, extracts, opt-outs."""

import sqlalchemy as sa

from hub.db import metadata

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # omop-duckdb | parquet
    sa.Column("source", sa.Text, nullable=False),  # path of the DuckDB file or Parquet directory
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("schema_json", sa.Text, nullable=False),  # tables, columns, types, classes (see hub.datasets)
    sa.Column("registered_at", sa.String(32), nullable=False),
    sa.Column("registered_by", sa.String(200), nullable=False),
)

permits = sa.Table(
    "permits",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("document_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

permit_versions = sa.Table(
    "permit_versions",
    metadata,
    sa.Column("permit_id", sa.String(64), sa.ForeignKey("permits.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("document_json", sa.Text, nullable=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
    sa.Column("applied_by", sa.String(200), nullable=False),
)

extracts = sa.Table(
    "extracts",
    metadata,
    sa.Column("permit_id", sa.String(64), sa.ForeignKey("permits.id"), primary_key=True),
    sa.Column("extract_version", sa.Integer, primary_key=True),
    sa.Column("permit_version", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("manifest_json", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # current | superseded | deleted
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("deleted_at", sa.String(32)),
)

optouts = sa.Table(
    "optouts",
    metadata,
    # keyed hash (HMAC-SHA-256 with the opt-out key) of the national identifier: the
    # registry never holds the identifier itself (EHDS Art. 71).
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("imported_at", sa.String(32), nullable=False),
    sa.Column("batch", sa.String(64), nullable=False),
)
