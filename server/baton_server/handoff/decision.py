"""What the state machine (machine.py) reads and what it decides: plain data, written by the
controls in one transaction (apply.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from baton_server.domain import (
    Actor,
    EventDraft,
    Handoff,
    HandoffChangeType,
    HandoffPolicy,
    Session,
    SessionMode,
)


@dataclass(frozen=True, slots=True)
class Context:
    # The session, locked by the caller: its mode and control epoch as they stand.
    session: Session
    # The session's agent's handoff policy.
    policy: HandoffPolicy


class Keep(enum.Enum):
    """A deadline the decision leaves as stored."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The handoff's timeouts after the decision (None: disarmed)."""

    claim_us: int | Keep | None = KEEP
    inactivity_us: int | Keep | None = KEEP


@dataclass(frozen=True, slots=True)
class ControlChange:
    """The session's new control epoch, and its new mode (None: the mode stays)."""

    epoch: int
    mode: SessionMode | None


@dataclass(frozen=True, slots=True)
class InboxEntry:
    change: HandoffChangeType
    # The handoff as this change left it (what the inbox shows).
    handoff: Handoff
    # The entry of `Decision.events` recording the change (it gets the inbox position).
    event_index: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write, in one transaction, for a command the machine accepted."""

    session_id: str
    # When it was decided (the session's `updated_at`, the times set on the handoff).
    now_us: int
    # Who acts: the events' actor.
    actor: Actor | None
    # The handoff row to write (None: the command involved no handoff).
    handoff: Handoff | None
    # Insert the row rather than update it.
    is_new: bool
    deadlines: Deadlines
    control: ControlChange | None
    events: tuple[EventDraft, ...]
    inbox: tuple[InboxEntry, ...]
    # A PENDING handoff left the agent's queue: the others' customers get new places (after
    # the commit, each in their own transaction).
    queue_moved: bool
    # Tell this handoff's customer their place in the queue (in this transaction).
    tell_queue_position: bool
    # The asking agent turn's correlation id, which every event of the decision carries (and
    # the queue position event too); "" when they start their own.
    correlation_id: str
