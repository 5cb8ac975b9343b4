"""Row → domain conversions."""

from __future__ import annotations

import json
from typing import Any

from baton_server.domain import (
    Actor,
    Agent,
    CannedResponse,
    Customer,
    Event,
    EventKind,
    EventSource,
    Guideline,
    Session,
    SessionMode,
)

# Plain dict lookups: Enum(value) costs several times more, and replay converts every row.
_KINDS = {k.value: k for k in EventKind}
_SOURCES = {s.value: s for s in EventSource}


def event_from_row(row: Any) -> Event:
    return Event(
        id=row.id,
        session_id=row.session_id,
        offset=row.offset,
        kind=_KINDS[row.kind],
        source=_SOURCES[row.source],
        created_at_us=row.created_at_us,
        correlation_id=row.correlation_id,
        data_json=row.data_json,
        actor=Actor.from_json(row.actor_json) if row.actor_json else None,
    )


def agent_from_row(row: Any) -> Agent:
    return Agent(
        id=row.id, name=row.name, description=row.description, created_at_us=row.created_at_us
    )


def customer_from_row(row: Any) -> Customer:
    return Customer(
        id=row.id,
        name=row.name,
        metadata=json.loads(row.metadata_json),
        created_at_us=row.created_at_us,
    )


def session_from_row(row: Any) -> Session:
    return Session(
        id=row.id,
        agent_id=row.agent_id,
        customer_id=row.customer_id,
        title=row.title,
        mode=SessionMode(row.mode),
        metadata=json.loads(row.metadata_json),
        created_at_us=row.created_at_us,
        updated_at_us=row.updated_at_us,
        next_offset=row.next_offset,
    )


def guideline_from_row(row: Any) -> Guideline:
    return Guideline(
        id=row.id,
        agent_id=row.agent_id,
        condition=row.condition,
        action=row.action,
        tool_names=tuple(json.loads(row.tool_names_json)),
        enabled=bool(row.enabled),
        created_at_us=row.created_at_us,
    )


def canned_response_from_row(row: Any) -> CannedResponse:
    return CannedResponse(
        id=row.id, agent_id=row.agent_id, text=row.text, created_at_us=row.created_at_us
    )
