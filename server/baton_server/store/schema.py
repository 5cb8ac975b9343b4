"""Table definitions (SQLAlchemy Core).

Times are integer microseconds since the epoch. Lists page by (created_at_us, id), a total order.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at_us", BigInteger, nullable=False),
    Column("handoff_policy_json", Text, nullable=False, server_default="{}"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("metadata_json", Text, nullable=False, default="{}"),
    Column("created_at_us", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.id"), nullable=False),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("mode", String(16), nullable=False),
    Column("metadata_json", Text, nullable=False, default="{}"),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    # Offset the next appended event gets; bumped in the append transaction.
    Column("next_offset", BigInteger, nullable=False, default=0),
    # Bumped by every change of who controls the session (see handoff/).
    Column("control_epoch", BigInteger, nullable=False, server_default="0"),
    Index("ix_sessions_agent_created", "agent_id", "created_at_us", "id"),
    Index("ix_sessions_customer_created", "customer_id", "created_at_us", "id"),
)

events = Table(
    "events",
    metadata,
    Column(
        "session_id",
        String(64),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # (session_id, offset) is the primary key: the last line of defence against a duplicate offset.
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("source", String(48), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("correlation_id", String(256), nullable=False, default=""),
    Column("idempotency_key", String(256), nullable=True),
    # Digest of what the request asked for, to tell a retry from a conflicting reuse of a key.
    Column("request_digest", String(64), nullable=True),
    Column("data_json", Text, nullable=False),
    # What queries select on, as a column rather than a match on JSON text: the status name of a
    # status event, the top-level `type` of a custom event (NULL otherwise).
    Column("data_type", String(128), nullable=True),
    # The event as readers receive it (opaque here; see Repository.read_encoded_events), and
    # the version of that encoding: rows of another version (or none) are encoded anew on read.
    Column("wire", LargeBinary, nullable=True),
    Column("wire_format", SmallInteger, nullable=True),
    # Who appended it (JSON of domain.Actor), for the audit trail; NULL for the engine's own.
    Column("actor_json", Text, nullable=True),
    UniqueConstraint("session_id", "idempotency_key", name="uq_events_session_idempotency_key"),
)

guidelines = Table(
    "guidelines",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("condition", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("tool_names_json", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_guidelines_agent_created", "agent_id", "created_at_us", "id"),
)

canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_canned_responses_agent_created", "agent_id", "created_at_us", "id"),
)

# Who runs a session's agent turn right now: one turn per session, also across replicas.
# A lease (not a held connection), so a crashed holder's turn expires.
session_turns = Table(
    "session_turns",
    metadata,
    Column(
        "session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("owner", String(64), nullable=False),
    Column("correlation_id", String(256), nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    # The newest customer message a turn was started for: a replica that learns of it late
    # must not answer it again.
    Column("last_trigger_offset", BigInteger, nullable=False, server_default="-1"),
)

handoffs = Table(
    "handoffs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", String(64), nullable=False),
    # The session id while the handoff is open, NULL once ended: a unique column, so the
    # database itself refuses a second open handoff for a session (also across replicas).
    Column("open_session_id", String(64), nullable=True, unique=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("reason_key", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("requested_by", String(32), nullable=False),
    Column("operator_id", String(256), nullable=True),
    Column("operator_name", Text, nullable=True),
    Column("operator_on_behalf_of_ai", Boolean, nullable=False, default=False),
    Column("offered_to_id", String(256), nullable=True),
    Column("offered_to_name", Text, nullable=True),
    Column("requested_at_us", BigInteger, nullable=False),
    Column("claimed_at_us", BigInteger, nullable=True),
    Column("first_human_reply_at_us", BigInteger, nullable=True),
    Column("ended_at_us", BigInteger, nullable=True),
    Column("outcome", String(32), nullable=False, default=""),
    Column("note", Text, nullable=False, default=""),
    Column("control_epoch", BigInteger, nullable=False),
    # When the policy's timeouts fire (NULL: not armed); the timer picks rows that are due.
    Column("claim_deadline_us", BigInteger, nullable=True),
    Column("inactivity_deadline_us", BigInteger, nullable=True),
    Index("ix_handoffs_agent_requested", "agent_id", "requested_at_us", "id"),
    Index("ix_handoffs_state_requested", "state", "requested_at_us", "id"),
    Index("ix_handoffs_session", "session_id", "requested_at_us"),
    Index("ix_handoffs_claim_deadline", "claim_deadline_us"),
    Index("ix_handoffs_inactivity_deadline", "inactivity_deadline_us"),
)

# Server-wide log of handoff changes (the operator inbox). Positions come from the single row
# of handoff_log_head, bumped under a row lock in the changing transaction, so commit order is
# position order and a reader that saw position p never later finds a smaller one appear.
handoff_changes = Table(
    "handoff_changes",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("handoff_id", String(64), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("event_offset", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    # The handoff as it stood after the change.
    Column("handoff_json", Text, nullable=False),
    Index("ix_handoff_changes_agent_position", "agent_id", "position"),
)

handoff_log_head = Table(
    "handoff_log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
)

# Operators watching the inbox (one row per WatchHandoffs stream, renewed on heartbeats), so
# every replica can tell whether anyone is there to take a handoff.
operator_presence = Table(
    "operator_presence",
    metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("operator_id", String(256), nullable=False),
    # Any id the API accepts (api/mapping.MAX_ID_LENGTH): the inbox's agent filter.
    Column("agent_id", String(128), nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
)

# API keys: only a digest of the secret is stored (the secret is shown once, at creation).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("role", String(32), nullable=False),
    # sha256 of the secret, hex: the secret has 256 random bits, so no slow hash is needed.
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("revoked_at_us", BigInteger, nullable=True),
    # Operator keys only, optional: the one operator this key acts for.
    Column("operator_id", String(256), nullable=True),
)

# Tools declared by tool workers (ToolWorkerService): the newest declaration of each name.
worker_tools = Table(
    "worker_tools",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("parameters_json", Text, nullable=False),
    # None: the server's default tool timeout.
    Column("timeout_ms", BigInteger, nullable=True),
    Column("retry_safe", Boolean, nullable=False),
    Column("declared_at_us", BigInteger, nullable=False),
)
