"""Import requests in the registry, on egress's `MetaData` (registered with hub through
`egress.extension`, like the request and DP ledger tables). Only `egress.imports.service` writes
them, each change with its audit event in one transaction; `row_version` is the optimistic lock.
The uploaded file or downloaded wheel lives in the egress blob store under `sha256`.
"""

import sqlalchemy as sa

from egress.tables import metadata

import_requests = sa.Table(
    "import_requests",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # "i-" + 16 hex characters
    sa.Column("permit_id", sa.String(64), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # file | package
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("row_version", sa.Integer, nullable=False),
    sa.Column("justification", sa.Text, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),  # file name under /imports, or the wheel's file name
    sa.Column("project", sa.String(100)),  # package: canonical project name
    sa.Column("version", sa.String(64)),  # package: exact version
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("detected_type", sa.String(20), nullable=False),  # hub.filetypes kind (by the bytes)
    sa.Column("detail_json", sa.Text, nullable=False),  # type label/warning, preview, wheel metadata, source
    sa.Column("decided_by", sa.String(200)),
    sa.Column("decision_comment", sa.Text),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Index("ix_import_requests_permit", "permit_id"),
    sa.Index("ix_import_requests_author", "author"),
    sa.Index("ix_import_requests_state", "state"),
)
