"""What a customer may see of their session's log.

Staff (API keys) see every event as stored. A customer token sees the conversation and what a
chat widget needs to show its state, nothing written for staff:

- messages, without the audit actor; a human agent's message keeps the agent's display name but
  not their operator id; a message the human wrote on behalf of the AI agent names nobody;
- statuses (acknowledged, processing, typing, ready, cancelled, error) for typing indicators,
  with the detail only on `processing` (error and cancel details may name internals);
- `baton.session_created`, `baton.session_mode_changed` (mode and previous mode only),
  `baton.handoff_queue_position` (position, estimated wait and its text), and that a handoff
  was claimed, transferred or ended (`baton.handoff_claimed` / `_transferred` / `_ended`: the
  type, the state and the outcome only), so a widget knows the wait is over even before the
  operator writes;
- nothing else: tool calls and results, the rest of the handoff lifecycle events (reasons,
  summaries for the colleague, operator ids, release notes) and integrations' own custom events
  are staff-only.

Offsets are kept, so a customer's stream has gaps where staff-only events are; resuming by
offset works the same. Of a session, a customer sees neither its title nor its metadata (both
written by and for staff: operator consoles, CRM notes).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    SESSION_CREATED,
    SESSION_MODE_CHANGED,
    Event,
    EventKind,
    EventSource,
    Session,
)

QUEUE_POSITION = HANDOFF_EVENT_PREFIX + "queue_position"
# Custom event types a customer sees, and the data fields of each they see.
CUSTOMER_CUSTOM_FIELDS: dict[str, tuple[str, ...]] = {
    SESSION_CREATED: ("type",),
    SESSION_MODE_CHANGED: ("type", "mode", "previous_mode"),
    QUEUE_POSITION: ("type", "position", "estimated_wait_seconds", "text"),
    HANDOFF_EVENT_PREFIX + "claimed": ("type", "state"),
    HANDOFF_EVENT_PREFIX + "transferred": ("type", "state"),
    HANDOFF_EVENT_PREFIX + "ended": ("type", "state", "outcome"),
}


def customer_view(event: Event) -> Event | None:
    """The event as a customer sees it, or None when it is staff-only."""
    data = event.data
    shown: dict[str, Any]
    if event.kind is EventKind.MESSAGE:
        shown = {"text": data.get("text", "")}
        participant = data.get("participant") or {}
        if event.source is EventSource.HUMAN_AGENT and participant.get("display_name"):
            shown["participant"] = {"id": "", "display_name": participant["display_name"]}
    elif event.kind is EventKind.STATUS:
        shown = {"status": data["status"]}
        if data["status"] == "processing" and "detail" in data:
            shown["detail"] = data["detail"]
    elif event.kind is EventKind.CUSTOM and event.source is EventSource.SYSTEM:
        fields = CUSTOMER_CUSTOM_FIELDS.get(str(data.get("type", "")))
        if fields is None:
            return None
        shown = {name: data[name] for name in fields if name in data}
    else:
        return None
    return replace(
        event,
        actor=None,
        data_json=json.dumps(shown, separators=(",", ":")),
        encoded=None,  # the stored bytes are the staff view
        _parsed=[],
    )


def customer_session_view(session: Session) -> Session:
    """The session as a customer sees it: no title, no metadata."""
    return replace(session, title="", metadata={})
