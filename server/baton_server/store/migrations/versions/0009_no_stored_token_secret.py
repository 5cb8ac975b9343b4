"""Signing secrets leave the database: drop `auth_secrets` (it held the customer-token secret).

Whoever could read the database (a backup, a read replica) could mint customer tokens with it.
Secrets now come from flags, the environment or a file; tokens the stored one signed stop
verifying, as they would after any rotation (they lived 24 hours at most).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("auth_secrets")


def downgrade() -> None:
    op.create_table(
        "auth_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
