"""The log entries a handoff change writes: lifecycle events (`baton.handoff_*`), the mode
change, and the texts the customer sees. Pure: the state machine and the queue announcer build
them, the store appends them."""

from __future__ import annotations

import enum
from typing import Any

from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    Actor,
    EventDraft,
    EventKind,
    EventSource,
    Handoff,
    HandoffPolicy,
    Operator,
)
from baton_server.handoff import policy as policies


class HandoffEvent(enum.StrEnum):
    """Types of handoff lifecycle events (after the `baton.handoff_` prefix)."""

    REQUESTED = "requested"
    OFFERED = "offered"
    OFFER_DECLINED = "offer_declined"
    CLAIMED = "claimed"
    TRANSFERRED = "transferred"
    CLAIM_TIMEOUT = "claim_timeout"
    ENDED = "ended"
    # Not a change of the handoff: the customer's place in the queue (no inbox entry).
    QUEUE_POSITION = "queue_position"


def lifecycle_event(
    event: HandoffEvent, handoff: Handoff, actor: Actor | None, **extra: object
) -> EventDraft:
    data: dict[str, Any] = {
        "type": HANDOFF_EVENT_PREFIX + event.value,
        "handoff_id": handoff.id,
        "state": handoff.state.value,
        "control_epoch": handoff.control_epoch,
    }
    if handoff.operator is not None:
        data["operator"] = {
            "id": handoff.operator.id,
            "display_name": handoff.operator.display_name,
        }
    data.update(extra)
    if actor is not None:  # who asked for the change (audit trail)
        data["actor"] = actor.to_dict()
    return EventDraft(EventKind.CUSTOM, EventSource.SYSTEM, data)


def system_message(text: str) -> EventDraft:
    """A customer-facing text from Baton itself."""
    return EventDraft(EventKind.MESSAGE, EventSource.SYSTEM, {"text": text})


def joined_text(policy: HandoffPolicy, operator: Operator, on_behalf_of_ai: bool) -> str:
    # Writing on behalf of the AI, the operator stays anonymous.
    if on_behalf_of_ai or not operator.display_name:
        return policies.text(policy, "operator_joined_anonymous_message")
    return policies.text(policy, "operator_joined_message", operator=operator.display_name)


def queue_event(
    policy: HandoffPolicy,
    waiting: Handoff,
    position: int,
    recent_waits_us: list[int],
    actor: Actor | None,
) -> EventDraft:
    """Tells a waiting customer their place and estimated wait."""
    wait_s = policies.estimated_wait_s(policy, position, recent_waits_us)
    text = policies.text(
        policy, "queue_position_message", position=position, wait_minutes=max(1, round(wait_s / 60))
    )
    return lifecycle_event(
        HandoffEvent.QUEUE_POSITION,
        waiting,
        actor,
        position=position,
        estimated_wait_seconds=round(wait_s),
        text=text,
    )
