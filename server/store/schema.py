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
    LargeBinary,
    MetaData,
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
    # The event as readers receive it (opaque here; see Repository.read_encoded_events).
    Column("wire", LargeBinary, nullable=True),
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
)

# Server-wide secrets shared by replicas (e.g. the customer-token signing key when none is
# configured): the first replica to start creates them.
auth_secrets = Table(
    "auth_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)
