"""Row → domain conversions (rows of the tables in schema.py: columns are read by name)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from baton_server.domain import (
    Actor,
    Agent,
    CannedResponse,
    Customer,
    Event,
    EventKind,
    EventSource,
    Guideline,
    Handoff,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    Operator,
    Session,
    SessionMode,
)

# Plain dict lookups: Enum(value) costs several times more, and replay converts every row.
_KINDS = {k.value: k for k in EventKind}
_SOURCES = {s.value: s for s in EventSource}


def event_from_row(row: Row[Any]) -> Event:
    return event_from_values(
        row.id,
        row.session_id,
        row.offset,
        row.kind,
        row.source,
        row.created_at_us,
        row.correlation_id,
        row.data_json,
        row.actor_json,
    )


# The columns event_from_values takes, in its order (plain sqlite3 reads select these).
EVENT_COLUMNS = (
    "id",
    "session_id",
    "offset",
    "kind",
    "source",
    "created_at_us",
    "correlation_id",
    "data_json",
    "actor_json",
)


def event_from_values(
    event_id: str,
    session_id: str,
    offset: int,
    kind: str,
    source: str,
    created_at_us: int,
    correlation_id: str,
    data_json: str,
    actor_json: str | None,
) -> Event:
    return Event(
        id=event_id,
        session_id=session_id,
        offset=offset,
        kind=_KINDS[kind],
        source=_SOURCES[source],
        created_at_us=created_at_us,
        correlation_id=correlation_id,
        data_json=data_json,
        actor=Actor.from_json(actor_json) if actor_json else None,
    )


def agent_from_row(row: Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at_us=row.created_at_us,
        handoff_policy=HandoffPolicy.from_json(row.handoff_policy_json),
    )


def customer_from_row(row: Row[Any]) -> Customer:
    return Customer(
        id=row.id,
        name=row.name,
        metadata=json.loads(row.metadata_json),
        created_at_us=row.created_at_us,
    )


def session_from_row(row: Row[Any]) -> Session:
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
        control_epoch=row.control_epoch,
    )


def guideline_from_row(row: Row[Any]) -> Guideline:
    return Guideline(
        id=row.id,
        agent_id=row.agent_id,
        condition=row.condition,
        action=row.action,
        tool_names=tuple(json.loads(row.tool_names_json)),
        enabled=bool(row.enabled),
        created_at_us=row.created_at_us,
    )


def canned_response_from_row(row: Row[Any]) -> CannedResponse:
    return CannedResponse(
        id=row.id, agent_id=row.agent_id, text=row.text, created_at_us=row.created_at_us
    )


def _operator(operator_id: str | None, name: str | None) -> Operator | None:
    return Operator(operator_id, name or "") if operator_id else None


def handoff_from_row(row: Row[Any]) -> Handoff:
    return Handoff(
        id=row.id,
        session_id=row.session_id,
        agent_id=row.agent_id,
        state=HandoffState(row.state),
        reason=row.reason,
        summary=row.summary,
        requested_by=HandoffRequester(row.requested_by),
        operator=_operator(row.operator_id, row.operator_name),
        operator_on_behalf_of_ai=bool(row.operator_on_behalf_of_ai),
        offered_to=_operator(row.offered_to_id, row.offered_to_name),
        requested_at_us=row.requested_at_us,
        claimed_at_us=row.claimed_at_us,
        first_human_reply_at_us=row.first_human_reply_at_us,
        ended_at_us=row.ended_at_us,
        outcome=HandoffOutcome(row.outcome),
        note=row.note,
        control_epoch=row.control_epoch,
    )


def handoff_to_json(handoff: Handoff) -> str:
    data = {name: getattr(handoff, name) for name in handoff.__slots__}
    for name in ("operator", "offered_to"):
        value = data[name]
        data[name] = [value.id, value.display_name] if value else None
    return json.dumps(data, separators=(",", ":"))


def handoff_from_json(text: str) -> Handoff:
    data = json.loads(text)
    for name in ("operator", "offered_to"):
        data[name] = Operator(*data[name]) if data[name] else None
    data["state"] = HandoffState(data["state"])
    data["requested_by"] = HandoffRequester(data["requested_by"])
    data["outcome"] = HandoffOutcome(data["outcome"])
    return Handoff(**data)
