"""Agent behaviour: guidelines, canned responses; per-session turn leases.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guidelines",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("condition", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("tool_names_json", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_guidelines_agent_created", "guidelines", ["agent_id", "created_at_us", "id"]
    )
    op.create_index("ix_guidelines_created", "guidelines", ["created_at_us", "id"])
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "agent_id",
            sa.String(64),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_canned_responses_agent_created", "canned_responses", ["agent_id", "created_at_us", "id"]
    )
    op.create_index("ix_canned_responses_created", "canned_responses", ["created_at_us", "id"])
    op.create_table(
        "session_turns",
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(256), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("session_turns")
    op.drop_table("canned_responses")
    op.drop_table("guidelines")
