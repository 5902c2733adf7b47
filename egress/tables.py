"""Egress tables in the registry database: requests, their versions and files, reviews,
releases and downloads; `metadata` also holds the DP ledger's tables (egress.dp.ledger).
They live in egress's own `MetaData`, which `egress.extension` registers with hub
(`hub.extensions`), so that `hub.db.make_engine` creates them although hub never imports egress.

Only `egress.business.data` writes these rows (each change with its audit event in the same
transaction). `egress_requests.row_version` is the optimistic lock: every state change is a
compare-and-set on it, so two concurrent writers can never both move a request.
Must not import the web layer.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

egress_requests = sa.Table(
    "egress_requests",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # "r-" + 16 hex characters
    sa.Column("permit_id", sa.String(64), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("server_name", sa.String(255)),  # the workspace (named server) it came from
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # current content version (1, 2, ... on resubmit)
    sa.Column("row_version", sa.Integer, nullable=False),  # optimistic lock, +1 on every change
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Index("ix_egress_requests_permit", "permit_id"),
    sa.Index("ix_egress_requests_author", "author"),
    sa.Index("ix_egress_requests_state", "state"),
)

egress_request_versions = sa.Table(
    "egress_request_versions",
    metadata,
    sa.Column("request_id", sa.String(40), sa.ForeignKey("egress_requests.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("check_status", sa.String(10), nullable=False),  # pass | review | fail
    sa.Column("verified", sa.Boolean, nullable=False),  # every table re-executed and matched
    sa.Column("submitted_at", sa.String(32), nullable=False),
)

egress_files = sa.Table(
    "egress_files",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),  # content address in the store
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("file_type", sa.String(10), nullable=False),
    sa.Column("provenance_sql", sa.Text),
    sa.Column("check_json", sa.Text, nullable=False),  # verdicts, provenance match, evidence note
    sa.ForeignKeyConstraint(["request_id", "version"],
                            ["egress_request_versions.request_id", "egress_request_versions.version"]),
)

egress_reviews = sa.Table(
    "egress_reviews",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    # unique per (request, version, reviewer): one checker cannot count twice
    sa.Column("reviewer", sa.String(200), primary_key=True),
    sa.Column("decision", sa.String(10), nullable=False),  # approve | reject | return
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.ForeignKeyConstraint(["request_id", "version"],
                            ["egress_request_versions.request_id", "egress_request_versions.version"]),
)

egress_releases = sa.Table(
    "egress_releases",
    metadata,
    sa.Column("request_id", sa.String(40), sa.ForeignKey("egress_requests.id"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("permit_id", sa.String(64), nullable=False),
    sa.Column("released_by", sa.String(200), nullable=False),
    sa.Column("released_at", sa.String(32), nullable=False),
    sa.Index("ix_egress_releases_permit", "permit_id"),
)

egress_downloads = sa.Table(
    "egress_downloads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(40), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("downloaded_at", sa.String(32), nullable=False),
)
