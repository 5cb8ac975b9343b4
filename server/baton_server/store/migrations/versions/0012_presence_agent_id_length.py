"""Operator presence rows take any agent id the API accepts (128 characters, as MAX_ID_LENGTH):
an inbox filtered by a longer made-up agent id failed on PostgreSQL (found by the fuzz test).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operator_presence") as batch:
        batch.alter_column("agent_id", type_=sa.String(128), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("operator_presence") as batch:
        batch.alter_column("agent_id", type_=sa.String(64), existing_nullable=False)
