"""Stored event bytes carry the version of their encoding (`events.wire_format`).

Rows written before this revision get NULL: they may predate fields the Event message has
gained since, so readers encode them anew from their columns rather than trusting the bytes.
A later change to the encoding bumps the version the server writes; older rows then take the
same path, with no backfill to run.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("wire_format", sa.SmallInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("wire_format")
