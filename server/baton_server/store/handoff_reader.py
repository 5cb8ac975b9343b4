"""Handoff reads on pooled connections (never through the writer): one handoff, listings, the
inbox's snapshot and change log, due timeouts, and what the stats are computed from."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select

from baton_server.domain import Handoff, HandoffChange, HandoffChangeType, HandoffState, Page
from baton_server.store import schema
from baton_server.store.database import Database
from baton_server.store.handoff_rows import load_handoff, open_handoff_of, pending_queue
from baton_server.store.operator_presence import operators_present_in
from baton_server.store.paging import keyset_page
from baton_server.store.rows import handoff_from_json, handoff_from_row


@dataclass(frozen=True, slots=True)
class DueDeadlines:
    """Open handoffs whose claim or inactivity deadline has passed, soonest first."""

    claim: list[str] = field(default_factory=list)
    inactivity: list[str] = field(default_factory=list)


class HandoffReader:
    """Reads on pooled connections (never through the writer). (Its `list` method shadows the
    builtin inside the class: annotations there say `builtins.list`.)"""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, handoff_id: str) -> Handoff:
        async with self._db.reader.connect() as conn:
            return await load_handoff(conn, handoff_id)

    async def open_handoff(self, session_id: str) -> Handoff | None:
        async with self._db.reader.connect() as conn:
            return await open_handoff_of(conn, session_id)

    async def pending(self, agent_id: str) -> list[Handoff]:
        async with self._db.reader.connect() as conn:
            return await pending_queue(conn, agent_id)

    async def count_open_by_state(self) -> dict[str, int]:
        """Open handoffs by state, every agent's (metrics)."""
        table = schema.handoffs
        open_states = [state.value for state in HandoffState if state is not HandoffState.ENDED]
        async with self._db.reader.connect() as conn:
            rows = await conn.execute(
                select(table.c.state, func.count())
                .where(table.c.state.in_(open_states))  # an index range, ended ones unread
                .group_by(table.c.state)
            )
            counts = dict.fromkeys(open_states, 0)
            counts.update({str(state): int(count) for state, count in rows})
            return counts

    async def queue_position(self, handoff: Handoff) -> int:
        if handoff.state is not HandoffState.PENDING:
            return 0
        table = schema.handoffs
        async with self._db.reader.connect() as conn:
            ahead = await conn.scalar(
                select(func.count())
                .select_from(table)
                .where(
                    table.c.agent_id == handoff.agent_id,
                    table.c.state == HandoffState.PENDING.value,
                    or_(
                        table.c.requested_at_us < handoff.requested_at_us,
                        and_(
                            table.c.requested_at_us == handoff.requested_at_us,
                            table.c.id < handoff.id,
                        ),
                    ),
                )
            )
        return int(ahead or 0) + 1

    async def list(
        self,
        size: int,
        token: str,
        *,
        session_id: str = "",
        agent_id: str = "",
        state: HandoffState | None = None,
    ) -> Page[Handoff]:
        table = schema.handoffs
        filters = {
            "session_id": session_id,
            "agent_id": agent_id,
            "state": state.value if state else "",
        }
        query = select(table)
        if session_id:
            query = query.where(table.c.session_id == session_id)
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        if state is not None:
            query = query.where(table.c.state == state.value)
        return await keyset_page(
            self._db,
            query,
            table.c.requested_at_us,
            table.c.id,
            size,
            token,
            filters,
            handoff_from_row,
        )

    async def head_position(self) -> int:
        head = schema.handoff_log_head
        async with self._db.reader.connect() as conn:
            return int(await conn.scalar(select(head.c.position).where(head.c.id == 1)) or 0)

    async def snapshot(self, agent_id: str) -> tuple[int, builtins.list[Handoff]]:
        """The head position and the open handoffs as of that position (one read transaction
        with a stable snapshot)."""
        table, head = schema.handoffs, schema.handoff_log_head
        query = select(table).where(table.c.open_session_id.is_not(None))
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        query = query.order_by(table.c.requested_at_us, table.c.id)
        options = {} if self._db.is_sqlite else {"isolation_level": "REPEATABLE READ"}
        async with self._db.reader.connect() as conn:
            conn = await conn.execution_options(**options)
            async with conn.begin():
                position = await conn.scalar(select(head.c.position).where(head.c.id == 1))
                rows = (await conn.execute(query)).all()
        return int(position or 0), [handoff_from_row(r) for r in rows]

    async def changes_after(
        self, position: int, agent_id: str, limit: int
    ) -> builtins.list[HandoffChange]:
        table = schema.handoff_changes
        query = select(table).where(table.c.position > position)
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        query = query.order_by(table.c.position).limit(limit)
        async with self._db.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            HandoffChange(
                position=r.position,
                type=HandoffChangeType(r.type),
                handoff=handoff_from_json(r.handoff_json),
                event_offset=r.event_offset,
                created_at_us=r.created_at_us,
            )
            for r in rows
        ]

    async def operators_present(self, agent_id: str, now_us: int) -> bool:
        async with self._db.reader.connect() as conn:
            return await operators_present_in(conn, agent_id, now_us)

    async def due_deadlines(self, now_us: int, limit: int = 200) -> DueDeadlines:
        table = schema.handoffs
        due = DueDeadlines()
        async with self._db.reader.connect() as conn:
            for ids, column in (
                (due.claim, table.c.claim_deadline_us),
                (due.inactivity, table.c.inactivity_deadline_us),
            ):
                rows = await conn.execute(
                    select(table.c.id)
                    .where(column <= now_us, table.c.open_session_id.is_not(None))
                    .order_by(column)
                    .limit(limit)
                )
                ids += [r.id for r in rows]
        return due

    async def next_deadline_us(self) -> int | None:
        table = schema.handoffs
        async with self._db.reader.connect() as conn:
            values = [
                await conn.scalar(
                    select(func.min(column)).where(table.c.open_session_id.is_not(None))
                )
                for column in (table.c.claim_deadline_us, table.c.inactivity_deadline_us)
            ]
        present = [int(v) for v in values if v is not None]
        return min(present) if present else None

    async def stats_inputs(
        self, agent_id: str, start_us: int, end_us: int
    ) -> tuple[int, int, builtins.list[Handoff], dict[str, builtins.list[Handoff]], dict[str, str]]:
        """(sessions created in range, how many of those had a handoff, handoffs requested in
        range, every handoff of the sessions those belong to (for re-handoffs), reason_key per
        handoff id)."""
        sessions, table = schema.sessions, schema.handoffs
        session_query = (
            select(func.count())
            .select_from(sessions)
            .where(sessions.c.created_at_us >= start_us, sessions.c.created_at_us < end_us)
        )
        query = select(table).where(
            table.c.requested_at_us >= start_us, table.c.requested_at_us < end_us
        )
        handed_off_query = (
            select(func.count(func.distinct(table.c.session_id)))
            .select_from(table.join(sessions, sessions.c.id == table.c.session_id))
            .where(sessions.c.created_at_us >= start_us, sessions.c.created_at_us < end_us)
        )
        if agent_id:
            session_query = session_query.where(sessions.c.agent_id == agent_id)
            handed_off_query = handed_off_query.where(sessions.c.agent_id == agent_id)
            query = query.where(table.c.agent_id == agent_id)
        async with self._db.reader.connect() as conn:
            session_count = int(await conn.scalar(session_query) or 0)
            handed_off = int(await conn.scalar(handed_off_query) or 0)
            rows = (await conn.execute(query.order_by(table.c.requested_at_us))).all()
            session_ids = sorted({r.session_id for r in rows})
            history: dict[str, list[Handoff]] = {}
            for chunk in range(0, len(session_ids), 500):
                more = await conn.execute(
                    select(table)
                    .where(table.c.session_id.in_(session_ids[chunk : chunk + 500]))
                    .order_by(table.c.requested_at_us)
                )
                for r in more:
                    history.setdefault(r.session_id, []).append(handoff_from_row(r))
        return (
            session_count,
            handed_off,
            [handoff_from_row(r) for r in rows],
            history,
            {r.id: r.reason_key for r in rows},
        )
