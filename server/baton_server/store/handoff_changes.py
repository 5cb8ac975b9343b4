"""The operator inbox's change log: a server-wide list of handoff changes numbered in commit
order (the `handoff_log_head` row hands out positions), written in the transaction of the
change it records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import Event, Handoff, HandoffChangeType, HandoffOutcome, HandoffState
from baton_server.store import schema
from baton_server.store.handoff_rows import latest_handoff_of, open_handoff_of
from baton_server.store.rows import handoff_to_json


async def next_position(conn: AsyncConnection) -> int:
    """Takes the next inbox position (locks the head row until the transaction ends)."""
    head = schema.handoff_log_head
    current = await conn.scalar(select(head.c.position).where(head.c.id == 1).with_for_update())
    position = int(current or 0) + 1
    await conn.execute(update(head).where(head.c.id == 1).values(position=position))
    return position


async def insert_change(
    conn: AsyncConnection,
    position: int,
    handoff: Handoff,
    change_type: HandoffChangeType,
    event: Event | None,
    at_us: int = 0,
) -> None:
    """Logs a change at `position` (from next_position). `event` is the log entry recording
    it (None when there is no log any more: a deleted session)."""
    await conn.execute(
        schema.handoff_changes.insert().values(
            position=position,
            handoff_id=handoff.id,
            session_id=handoff.session_id,
            agent_id=handoff.agent_id,
            type=change_type.value,
            event_offset=event.offset if event is not None else -1,
            created_at_us=event.created_at_us if event is not None else at_us,
            handoff_json=handoff_to_json(handoff),
        )
    )


async def record_change(
    conn: AsyncConnection,
    handoff: Handoff,
    change_type: HandoffChangeType,
    event: Event | None,
    at_us: int = 0,
) -> int:
    """Logs a change at the next position; returns it."""
    position = await next_position(conn)
    await insert_change(conn, position, handoff, change_type, event, at_us)
    return position


async def record_noticed_events(
    conn: AsyncConnection, noticed: Sequence[tuple[HandoffChangeType, Event]]
) -> None:
    """Inbox changes asked for by appends (domain.InboxNotice), on each session's latest
    handoff: the open one or, after one ended with the session left to humans, the last."""
    for change, event in noticed:
        handoff = await latest_handoff_of(conn, event.session_id)
        if handoff is not None:
            await record_change(conn, handoff, change, event)


async def forget_session(conn: AsyncConnection, session_id: str, now_us: int) -> None:
    """Before a session is deleted: its open handoff ends (ABANDONED) on the inbox, so consoles
    do not keep showing it, and its handoff rows go."""
    handoff = await open_handoff_of(conn, session_id)
    if handoff is not None:
        ended = replace(
            handoff,
            state=HandoffState.ENDED,
            outcome=HandoffOutcome.ABANDONED,
            note="session deleted",
            ended_at_us=now_us,
            offered_to=None,
        )
        await record_change(conn, ended, HandoffChangeType.ENDED, None, now_us)
    table = schema.handoffs
    await conn.execute(delete(table).where(table.c.session_id == session_id))
