"""The notifier's tables: the outbox (every mail until it is sent, and after), the cursor over the
audit trail, and the address book (who has which address and groups, who opted out)."""

import sqlalchemy as sa

from hub.db import metadata

# One row per (audit event, recipient): the unique key makes enqueueing idempotent, so a crash
# between reading events and moving the cursor never sends a mail twice or loses one.
# state: pending (to send; also after a failed try, with next_attempt_at) | sent | failed (gave up
# after max_attempts; `spe notify retry` makes it pending again) | unaddressed (the person has no
# address yet; sent once one is set) | opted_out (non-mandatory mail the person declined) | held
# (for the person's daily digest) | digested (went out in a digest). A digest is a row of its own
# with action `notify.digest` and event_seq = minus the last seq it covers.
notify_outbox = sa.Table(
    "notify_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_seq", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("recipient", sa.String(200), nullable=False),  # the user name
    sa.Column("address", sa.String(254)),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("mandatory", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.String(32), nullable=False),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("sent_at", sa.String(32)),
    sa.UniqueConstraint("event_seq", "recipient", name="uq_notify_outbox_event_recipient"),
    sa.Index("ix_notify_outbox_state", "state", "next_attempt_at"),
)

# One row (id = 1): the last audit seq turned into outbox rows.
notify_cursor = sa.Table(
    "notify_cursor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

# The address book: filled at every login (the IdP's e-mail claim and the person's groups) and by
# the operator (`spe notify address set`).
notify_people = sa.Table(
    "notify_people",
    metadata,
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("address", sa.String(254)),
    sa.Column("groups_json", sa.Text, nullable=False, default="[]"),
    sa.Column("opt_out", sa.Boolean, nullable=False, default=False),
    sa.Column("digest", sa.Boolean, nullable=False, default=False),  # non-mandatory mail once a day, in one
    sa.Column("updated_at", sa.String(32), nullable=False),
)
