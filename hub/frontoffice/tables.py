"""Registry tables of the front office: catalogue entries, applications, usage samples, invoices.

Imported by `hub.db.make_engine` (HUB_TABLE_MODULES) so that every `spe` command and service has them.
"""

import sqlalchemy as sa

from hub.db import metadata

catalogue_entries = sa.Table(
    "catalogue_entries",
    metadata,
    sa.Column("dataset", sa.String(100), sa.ForeignKey("datasets.name"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("document_json", sa.Text, nullable=False),  # the validated entry (hub.frontoffice.catalogue.model)
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

applications = sa.Table(
    "applications",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # permit | data_request
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("applicant", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # bumps on every change (optimistic concurrency)
    sa.Column("document_json", sa.Text, nullable=False),  # the application as filled in
    sa.Column("facts_json", sa.Text, nullable=False),  # workflow facts: assessor, clock, recommendation, decision
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Index("ix_applications_state", "state"),
    sa.Index("ix_applications_applicant", "applicant"),
)

# One sample per permit and day: bytes of the current extract and of the permit's work volumes
# (hub.frontoffice.fees.metering); CPU-hours come from the workspace audit events instead.
usage_samples = sa.Table(
    "usage_samples",
    metadata,
    sa.Column("permit_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("extract_bytes", sa.BigInteger, nullable=False),
    sa.Column("work_bytes", sa.BigInteger),  # None when the Docker engine could not be asked
    sa.Column("sampled_at", sa.String(32), nullable=False),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # INV-<permit>-<YYYY-MM>
    sa.Column("permit_id", sa.String(64), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("document_json", sa.Text, nullable=False),
    sa.Column("issued_at", sa.String(32), nullable=False),
    sa.Column("issued_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("permit_id", "month", name="uq_invoice_permit_month"),
)
