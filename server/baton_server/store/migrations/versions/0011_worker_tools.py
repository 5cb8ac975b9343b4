"""Tools declared by tool workers (ToolWorkerService).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_tools",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("parameters_json", sa.Text, nullable=False),
        sa.Column("timeout_ms", sa.BigInteger, nullable=True),
        sa.Column("retry_safe", sa.Boolean, nullable=False),
        sa.Column("declared_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_tools")
