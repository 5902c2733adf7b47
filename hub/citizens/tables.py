"""Registry tables of the citizens' side. No table holds a national identifier: only its keyed hash
(HMAC-SHA-256 with the opt-out key, the same as `hub.optout`'s register).

Imported by `hub.db.make_engine` (HUB_TABLE_MODULES).
"""

import sqlalchemy as sa

from hub.db import metadata

# a hub account of a citizen -> the keyed hash of the national identifier its login carried
citizen_links = sa.Table(
    "citizen_links",
    metadata,
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("id_hash", sa.String(64), nullable=False, index=True),
    sa.Column("linked_at", sa.String(32), nullable=False),
)

# who an extract version holds, kept off-enclave and after the extract is deleted (proof per person,
# "who used my data")
extract_persons = sa.Table(
    "extract_persons",
    metadata,
    sa.Column("permit_id", sa.String(64), primary_key=True),
    sa.Column("extract_version", sa.Integer, primary_key=True),
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Index("ix_extract_persons_hash", "id_hash"),
)

# a permit whose current extract holds someone who opted out: re-provision it by `due_at`
optout_propagations = sa.Table(
    "optout_propagations",
    metadata,
    sa.Column("permit_id", sa.String(64), primary_key=True),
    sa.Column("due_at", sa.String(32), nullable=False),  # the earliest due date of its pending opt-outs
    sa.Column("requested_at", sa.String(32), nullable=False),
)

# a citizen's data donation (HEALTH-X dataLOFT) with its consent, as parsed OMOP-shaped rows; the
# donor is the keyed hash only. The data trustee pseudonymises the held ones into the `donated`
# dataset (hub.citizens.trustee); a withdrawn one leaves it at the next build.
donations = sa.Table(
    "donations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("id_hash", sa.String(64), nullable=False, index=True),
    sa.Column("format", sa.String(10), nullable=False),  # fhir | csv
    sa.Column("sha256", sa.String(64), nullable=False),  # of the uploaded bytes: the same upload is refused twice
    sa.Column("consent_json", sa.Text, nullable=False),  # {purposes, expires, recontact}
    sa.Column("rows_json", sa.Text, nullable=False),  # {person: {...}, condition_occurrence: [...], measurement: [...]}
    sa.Column("state", sa.String(20), nullable=False),  # held | withdrawn
    sa.Column("submitted_at", sa.String(32), nullable=False),
    sa.Column("withdrawn_at", sa.String(32)),
    sa.UniqueConstraint("id_hash", "sha256", name="uq_donation_upload"),
)

# significant findings (EHDS Art. 61(5)): reported on a pseudonym by a permit's researcher, reviewed
# by the HDAB, resolved by the key holder to the person's keyed hash (never shown to the researcher)
findings = sa.Table(
    "findings",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("permit_id", sa.String(64), nullable=False, index=True),
    sa.Column("pseudonym", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # reported | accepted | rejected | resolved | unresolvable
    sa.Column("reported_by", sa.String(200), nullable=False),
    sa.Column("reported_at", sa.String(32), nullable=False),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("id_hash", sa.String(64), index=True),  # set at resolution
    sa.Column("source_person", sa.String(64)),  # the data holder's own person key, for the data holder channel
    sa.Column("channel", sa.String(20)),  # citizen | data_holder
    sa.Column("updated_at", sa.String(32), nullable=False),
)
