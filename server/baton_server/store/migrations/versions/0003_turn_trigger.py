"""Turn leases remember the newest customer message a turn was started for.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_turns") as batch:
        batch.add_column(
            sa.Column("last_trigger_offset", sa.BigInteger, nullable=False, server_default="-1")
        )


def downgrade() -> None:
    with op.batch_alter_table("session_turns") as batch:
        batch.drop_column("last_trigger_offset")
