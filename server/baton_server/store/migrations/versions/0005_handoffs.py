"""Handoffs: records, the inbox change log, operator presence, control epochs, policies.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(
            sa.Column("handoff_policy_json", sa.Text, nullable=False, server_default="{}")
        )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(
            sa.Column("control_epoch", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_table(
        "handoffs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("open_session_id", sa.String(64), nullable=True, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reason_key", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("operator_id", sa.String(256), nullable=True),
        sa.Column("operator_name", sa.Text, nullable=True),
        sa.Column("operator_on_behalf_of_ai", sa.Boolean, nullable=False),
        sa.Column("offered_to_id", sa.String(256), nullable=True),
        sa.Column("offered_to_name", sa.Text, nullable=True),
        sa.Column("requested_at_us", sa.BigInteger, nullable=False),
        sa.Column("claimed_at_us", sa.BigInteger, nullable=True),
        sa.Column("first_human_reply_at_us", sa.BigInteger, nullable=True),
        sa.Column("ended_at_us", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("control_epoch", sa.BigInteger, nullable=False),
        sa.Column("claim_deadline_us", sa.BigInteger, nullable=True),
        sa.Column("inactivity_deadline_us", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_handoffs_agent_requested", "handoffs", ["agent_id", "requested_at_us", "id"]
    )
    op.create_index("ix_handoffs_state_requested", "handoffs", ["state", "requested_at_us", "id"])
    op.create_index("ix_handoffs_session", "handoffs", ["session_id", "requested_at_us"])
    op.create_index("ix_handoffs_claim_deadline", "handoffs", ["claim_deadline_us"])
    op.create_index("ix_handoffs_inactivity_deadline", "handoffs", ["inactivity_deadline_us"])
    op.create_table(
        "handoff_changes",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("handoff_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("event_offset", sa.BigInteger, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("handoff_json", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_handoff_changes_agent_position", "handoff_changes", ["agent_id", "position"]
    )
    head = op.create_table(
        "handoff_log_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "position": 0}])
    op.create_table(
        "operator_presence",
        sa.Column("stream_id", sa.String(64), primary_key=True),
        sa.Column("operator_id", sa.String(256), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("operator_presence", "handoff_log_head", "handoff_changes", "handoffs"):
        op.drop_table(table)
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("control_epoch")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("handoff_policy_json")
