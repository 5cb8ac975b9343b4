"""Initial schema: agents, customers, sessions, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agents_created", "agents", ["created_at_us", "id"])
    op.create_table(
        "customers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_customers_created", "customers", ["created_at_us", "id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(64), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sessions_created", "sessions", ["created_at_us", "id"])
    op.create_index("ix_sessions_agent_created", "sessions", ["agent_id", "created_at_us", "id"])
    op.create_index(
        "ix_sessions_customer_created", "sessions", ["customer_id", "created_at_us", "id"]
    )
    op.create_table(
        "events",
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(48), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("correlation_id", sa.String(256), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("request_digest", sa.String(64), nullable=True),
        sa.Column("data_json", sa.Text, nullable=False),
        sa.UniqueConstraint(
            "session_id", "idempotency_key", name="uq_events_session_idempotency_key"
        ),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("sessions")
    op.drop_table("customers")
    op.drop_table("agents")
