"""Agent turns: what a turn reads, its lease, its guarded appends, and the restart check."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import (
    SESSION_MODE_CHANGED,
    Event,
    EventDraft,
    EventKind,
    EventSource,
    SessionMode,
    TurnGuard,
    TurnSnapshot,
    now_us,
)
from baton_server.errors import NotFound
from baton_server.store import schema
from baton_server.store.append_plan import AppendRequest
from baton_server.store.base import RowsBase
from baton_server.store.rows import (
    agent_from_row,
    canned_response_from_row,
    event_from_row,
    guideline_from_row,
)

# Runs inside a write transaction (given its connection); returns the events it appended.
InTransaction = Callable[[AsyncConnection], Awaitable[list[Event]]]


class TurnRows(RowsBase):
    # ------------------------------------------------------------------ agent turns

    async def unanswered_customer_messages(self, since_us: int) -> list[Event]:
        """The newest customer message of each AUTO session, committed after `since_us`, whose
        turn never ended (no ready, error or cancelled status carries its correlation id): what
        a restarted engine picks up again."""
        events, sessions = schema.events, schema.sessions
        newest = (
            select(events.c.session_id, func.max(events.c.offset).label("offset"))
            .join(sessions, sessions.c.id == events.c.session_id)
            .where(
                sessions.c.mode == SessionMode.AUTO.value,
                events.c.kind == EventKind.MESSAGE.value,
                events.c.source == EventSource.CUSTOMER.value,
                events.c.created_at_us >= since_us,
            )
            .group_by(events.c.session_id)
            .subquery()
        )
        trigger = events.alias("trigger")
        ended = events.alias("ended")
        query = (
            select(trigger)
            .join(
                newest,
                and_(
                    trigger.c.session_id == newest.c.session_id,
                    trigger.c.offset == newest.c.offset,
                ),
            )
            .where(
                ~exists().where(
                    ended.c.session_id == trigger.c.session_id,
                    ended.c.offset > trigger.c.offset,
                    ended.c.correlation_id == trigger.c.correlation_id,
                    ended.c.kind == EventKind.STATUS.value,
                    ended.c.data_type.in_(("ready", "error", "cancelled")),
                ),
                # Written while humans answered (or before a handoff): context, not a turn owed.
                ~exists().where(
                    ended.c.session_id == trigger.c.session_id,
                    ended.c.offset > trigger.c.offset,
                    ended.c.kind == EventKind.CUSTOM.value,
                    ended.c.source == EventSource.SYSTEM.value,
                    ended.c.data_type == SESSION_MODE_CHANGED,
                ),
            )
        )
        async with self._db.reader.connect() as conn:
            return [event_from_row(row) for row in await conn.execute(query)]

    async def turn_snapshot(
        self, session_id: str, history_kinds: frozenset[EventKind], history_limit: int
    ) -> TurnSnapshot:
        """What a turn reads, on one connection: session, agent, enabled guidelines, canned
        responses and the latest `history_limit` events of the given kinds (oldest first)."""
        if self._fast is not None:
            return await self._fast.turn_snapshot(session_id, history_kinds, history_limit)
        events = schema.events
        async with self._db.reader.connect() as conn:
            session = await self._session_in(conn, session_id)
            agent_row = (
                await conn.execute(
                    select(schema.agents).where(schema.agents.c.id == session.agent_id)
                )
            ).first()
            if agent_row is None:
                raise NotFound("agent", session.agent_id)
            guidelines = schema.guidelines
            guideline_rows = await conn.execute(
                select(guidelines)
                .where(guidelines.c.agent_id == session.agent_id, guidelines.c.enabled.is_(True))
                .order_by(guidelines.c.created_at_us, guidelines.c.id)
            )
            canned = schema.canned_responses
            canned_rows = await conn.execute(
                select(canned)
                .where(canned.c.agent_id == session.agent_id)
                .order_by(canned.c.created_at_us, canned.c.id)
            )
            history_rows = await conn.execute(
                select(events)
                .where(
                    events.c.session_id == session_id,
                    events.c.kind.in_(sorted(k.value for k in history_kinds)),
                )
                .order_by(events.c.offset.desc())
                .limit(history_limit)
            )
            return TurnSnapshot(
                session=session,
                agent=agent_from_row(agent_row),
                guidelines=[guideline_from_row(r) for r in guideline_rows],
                canned_responses=[canned_response_from_row(r) for r in canned_rows],
                history=[event_from_row(r) for r in reversed(history_rows.all())],
            )

    async def acquire_turn(
        self, session_id: str, owner: str, correlation_id: str, trigger_offset: int, ttl_s: float
    ) -> bool:
        """Takes (or renews) the session's turn lease for the customer message at
        `trigger_offset`. False while another owner holds an unexpired lease, or when a turn
        was already started for that message or a newer one (possibly on another replica)."""
        now = now_us()
        lease = (session_id, owner, correlation_id, now + int(ttl_s * 1_000_000), trigger_offset)
        if self._fast is not None:
            return await self._appender.run_plain(
                lambda conn: _acquire_plain(conn, lease, trigger_offset, now)
            )

        async def job(conn: AsyncConnection) -> tuple[bool, list[Event]]:
            await self._session_in(conn, session_id, lock=True)
            table = schema.session_turns
            holder = (
                await conn.execute(
                    select(table.c.owner, table.c.expires_at_us, table.c.last_trigger_offset).where(
                        table.c.session_id == session_id
                    )
                )
            ).first()
            if not _may_take(holder and tuple(holder), owner, trigger_offset, now):
                return False, []
            await conn.execute(delete(table).where(table.c.session_id == session_id))
            await conn.execute(table.insert().values(dict(zip(_LEASE_COLUMNS, lease, strict=True))))
            return True, []

        return await self.run_write(job)

    async def release_turn(self, session_id: str, owner: str) -> None:
        """Frees the lease; the row stays to remember the newest trigger handled."""
        if self._fast is not None:
            await self._appender.run_plain(
                lambda conn: conn.execute(_RELEASE_PLAIN, (session_id, owner))
            )
            return

        async def job(conn: AsyncConnection) -> tuple[None, list[Event]]:
            table = schema.session_turns
            await conn.execute(
                update(table)
                .where(table.c.session_id == session_id, table.c.owner == owner)
                .values(owner="", expires_at_us=0)
            )
            return None, []

        await self.run_write(job)

    async def append_turn_events(
        self,
        session_id: str,
        drafts: Sequence[EventDraft],
        guard: TurnGuard,
        *,
        hand_off: InTransaction | None = None,
    ) -> list[Event]:
        """Appends an agent turn's events if the turn still may speak (see TurnGuard), else
        raises TurnAborted and appends nothing. `hand_off` runs in the same transaction right
        after (the handoff a tool asked for)."""

        if hand_off is None:
            # The common case rides the group commit; the guard is checked in that transaction.
            return await self._appender.append(AppendRequest(session_id, list(drafts), guard))

        async def job(conn: AsyncConnection) -> tuple[list[Event], list[Event]]:
            result = await self.append_in(conn, session_id, drafts, guard)
            result += await hand_off(conn)
            return result, result

        return await self.run_write(job)


# A lease row: (session_id, owner, correlation_id, expires_at_us, last_trigger_offset).
Lease = tuple[str, str, str, int, int]
_LEASE_COLUMNS = ("session_id", "owner", "correlation_id", "expires_at_us", "last_trigger_offset")
_RELEASE_PLAIN = (
    "UPDATE session_turns SET owner = '', expires_at_us = 0 WHERE session_id = ? AND owner = ?"
)


def _may_take(
    holder: tuple[str, int, int] | None, owner: str, trigger_offset: int, now: int
) -> bool:
    """Whether `owner` may take the lease held as (owner, expires_at_us, last_trigger_offset):
    not for a trigger already handled, nor while someone else's lease runs."""
    if holder is None:
        return True
    held_by, expires_at_us, last_trigger_offset = holder
    if last_trigger_offset >= trigger_offset:
        return False
    return held_by in ("", owner) or expires_at_us <= now


def _acquire_plain(conn: sqlite3.Connection, lease: Lease, trigger_offset: int, now: int) -> bool:
    """acquire_turn on SQLite's writer thread (inside its BEGIN IMMEDIATE)."""
    session_id, owner = lease[0], lease[1]
    if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
        raise NotFound("session", session_id)
    holder = conn.execute(
        "SELECT owner, expires_at_us, last_trigger_offset FROM session_turns WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if not _may_take(holder, owner, trigger_offset, now):
        return False
    conn.execute("DELETE FROM session_turns WHERE session_id = ?", (session_id,))
    conn.execute(
        f"INSERT INTO session_turns ({', '.join(_LEASE_COLUMNS)}) VALUES (?, ?, ?, ?, ?)", lease
    )
    return True
