"""Handoff rows: the primitives the handoff controls compose inside one write transaction,
and the reads behind the inbox stream, listings and stats."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import (
    Event,
    Handoff,
    HandoffChange,
    HandoffChangeType,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    Page,
    Session,
    SessionMode,
)
from baton_server.errors import NotFound, StaleEpoch
from baton_server.store import schema
from baton_server.store.database import Database
from baton_server.store.paging import keyset_page
from baton_server.store.rows import (
    handoff_from_json,
    handoff_from_row,
    handoff_to_json,
    session_from_row,
)

_KEEP: Any = object()


def reason_key(reason: str) -> str:
    """Normalised reason for grouping: lower case, punctuation removed, spaces collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", reason.lower()).split())


# ---------------------------------------------------------------- inside a write transaction


async def lock_session(conn: AsyncConnection, session_id: str) -> Session:
    row = (
        await conn.execute(
            select(schema.sessions).where(schema.sessions.c.id == session_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("session", session_id)
    return session_from_row(row)


async def change_control(
    conn: AsyncConnection,
    session: Session,
    expected_epoch: int | None,
    mode: SessionMode | None = None,
    now_us: int = 0,
) -> int:
    """Checks `expected_epoch`, bumps the session's control epoch (and sets `mode`); returns
    the new epoch."""
    if expected_epoch is not None and expected_epoch != session.control_epoch:
        raise StaleEpoch(session.id, expected_epoch, session.control_epoch)
    epoch = session.control_epoch + 1
    values: dict[str, Any] = {"control_epoch": epoch}
    if mode is not None:
        values["mode"] = mode.value
    if now_us:
        values["updated_at_us"] = now_us
    await conn.execute(
        update(schema.sessions).where(schema.sessions.c.id == session.id).values(values)
    )
    return epoch


async def open_handoff_of(conn: AsyncConnection, session_id: str) -> Handoff | None:
    table = schema.handoffs
    row = (await conn.execute(select(table).where(table.c.open_session_id == session_id))).first()
    return handoff_from_row(row) if row is not None else None


async def load_handoff(conn: AsyncConnection, handoff_id: str) -> Handoff:
    table = schema.handoffs
    row = (await conn.execute(select(table).where(table.c.id == handoff_id))).first()
    if row is None:
        raise NotFound("handoff", handoff_id)
    return handoff_from_row(row)


def _columns(handoff: Handoff) -> dict[str, Any]:
    return {
        "state": handoff.state.value,
        "open_session_id": handoff.session_id if handoff.is_open else None,
        "summary": handoff.summary,
        "operator_id": handoff.operator.id if handoff.operator else None,
        "operator_name": handoff.operator.display_name if handoff.operator else None,
        "operator_on_behalf_of_ai": handoff.operator_on_behalf_of_ai,
        "offered_to_id": handoff.offered_to.id if handoff.offered_to else None,
        "offered_to_name": handoff.offered_to.display_name if handoff.offered_to else None,
        "claimed_at_us": handoff.claimed_at_us,
        "first_human_reply_at_us": handoff.first_human_reply_at_us,
        "ended_at_us": handoff.ended_at_us,
        "outcome": handoff.outcome.value,
        "note": handoff.note,
        "control_epoch": handoff.control_epoch,
    }


async def insert_handoff(
    conn: AsyncConnection,
    handoff: Handoff,
    *,
    claim_deadline_us: int | None,
    inactivity_deadline_us: int | None,
) -> None:
    await conn.execute(
        schema.handoffs.insert().values(
            id=handoff.id,
            session_id=handoff.session_id,
            agent_id=handoff.agent_id,
            reason=handoff.reason,
            reason_key=reason_key(handoff.reason),
            requested_by=handoff.requested_by.value,
            requested_at_us=handoff.requested_at_us,
            claim_deadline_us=claim_deadline_us,
            inactivity_deadline_us=inactivity_deadline_us,
            **_columns(handoff),
        )
    )


async def save_handoff(
    conn: AsyncConnection,
    handoff: Handoff,
    *,
    claim_deadline_us: int | None = _KEEP,
    inactivity_deadline_us: int | None = _KEEP,
) -> None:
    values = _columns(handoff)
    if claim_deadline_us is not _KEEP:
        values["claim_deadline_us"] = claim_deadline_us
    if inactivity_deadline_us is not _KEEP:
        values["inactivity_deadline_us"] = inactivity_deadline_us
    await conn.execute(
        update(schema.handoffs).where(schema.handoffs.c.id == handoff.id).values(values)
    )


async def next_position(conn: AsyncConnection) -> int:
    """Takes the next inbox position (locks the head row until the transaction ends)."""
    head = schema.handoff_log_head
    position = (
        await conn.scalar(select(head.c.position).where(head.c.id == 1).with_for_update())
    ) + 1
    await conn.execute(update(head).where(head.c.id == 1).values(position=position))
    return int(position)


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


async def deadline_of(conn: AsyncConnection, handoff_id: str, kind: str) -> int | None:
    table = schema.handoffs
    column = table.c.claim_deadline_us if kind == "claim" else table.c.inactivity_deadline_us
    return await conn.scalar(select(column).where(table.c.id == handoff_id))


async def pending_queue(conn: AsyncConnection, agent_id: str) -> list[Handoff]:
    """The agent's PENDING handoffs, first come first served."""
    table = schema.handoffs
    rows = await conn.execute(
        select(table)
        .where(table.c.agent_id == agent_id, table.c.state == HandoffState.PENDING.value)
        .order_by(table.c.requested_at_us, table.c.id)
    )
    return [handoff_from_row(r) for r in rows]


async def recent_claim_waits_us(conn: AsyncConnection, agent_id: str, limit: int = 50) -> list[int]:
    """How long the agent's latest claimed handoffs waited in the queue (takeovers never did)."""
    table = schema.handoffs
    rows = await conn.execute(
        select(table.c.claimed_at_us - table.c.requested_at_us)
        .where(
            table.c.agent_id == agent_id,
            table.c.claimed_at_us.is_not(None),
            table.c.requested_by != HandoffRequester.HUMAN_TAKEOVER.value,
        )
        .order_by(table.c.claimed_at_us.desc())
        .limit(limit)
    )
    return [int(r[0]) for r in rows]


async def agent_policy(conn: AsyncConnection, agent_id: str) -> HandoffPolicy:
    text = await conn.scalar(
        select(schema.agents.c.handoff_policy_json).where(schema.agents.c.id == agent_id)
    )
    return HandoffPolicy.from_json(text or "{}")


async def latest_handoff_of(conn: AsyncConnection, session_id: str) -> Handoff | None:
    """The open handoff of the session, else its most recent one."""
    table = schema.handoffs
    row = (
        await conn.execute(
            select(table)
            .where(table.c.session_id == session_id)
            .order_by(table.c.open_session_id.is_(None), table.c.requested_at_us.desc())
            .limit(1)
        )
    ).first()
    return handoff_from_row(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class HeldHandoff:
    """What the append path needs of a CLAIMED handoff to let its holder's messages through."""

    id: str
    operator_id: str
    first_human_reply_at_us: int | None
    inactivity_timeout_s: float


async def claimed_handoffs(
    conn: AsyncConnection, session_ids: Sequence[str]
) -> dict[str, HeldHandoff]:
    """The CLAIMED handoff of each of these sessions that has one."""
    if not session_ids:
        return {}
    table, agents = schema.handoffs, schema.agents
    rows = await conn.execute(
        select(
            table.c.id,
            table.c.session_id,
            table.c.operator_id,
            table.c.first_human_reply_at_us,
            agents.c.handoff_policy_json,
        )
        .join(agents, agents.c.id == table.c.agent_id)
        .where(
            table.c.open_session_id.in_(sorted(set(session_ids))),
            table.c.state == HandoffState.CLAIMED.value,
        )
    )
    return {
        r.session_id: HeldHandoff(
            r.id,
            r.operator_id or "",
            r.first_human_reply_at_us,
            HandoffPolicy.from_json(r.handoff_policy_json).inactivity_timeout_s,
        )
        for r in rows
    }


async def note_human_replies(
    conn: AsyncConnection,
    before: dict[str, HeldHandoff],
    replies: Sequence[tuple[HeldHandoff, int]],
) -> None:
    """Holders wrote: (the handoff with its first reply time set, the time of its last reply in
    the batch). Sets first reply times once and renews inactivity deadlines, in one statement;
    writes nothing when neither applies (no inactivity timeout, first reply known)."""
    was = {h.id: h for h in before.values()}
    params = []
    for handoff, last_at in replies:
        timeout = handoff.inactivity_timeout_s
        if timeout <= 0 and was[handoff.id].first_human_reply_at_us is not None:
            continue
        params.append(
            {
                "b_id": handoff.id,
                "b_first": handoff.first_human_reply_at_us,
                "b_deadline": last_at + int(timeout * 1_000_000) if timeout > 0 else None,
            }
        )
    if params:
        table = schema.handoffs
        await conn.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                first_human_reply_at_us=bindparam("b_first"),
                inactivity_deadline_us=bindparam("b_deadline"),
            ),
            params,
        )


async def record_customer_messages(conn: AsyncConnection, messages: Sequence[Event]) -> None:
    """Inbox changes for customer messages committed on MANUAL sessions (called by the append
    transaction): on the open handoff, or — after one ended with the session left to humans —
    on the last one, so a help desk still sees the customer write."""
    for event in messages:
        handoff = await latest_handoff_of(conn, event.session_id)
        if handoff is not None:
            await record_change(conn, handoff, HandoffChangeType.CUSTOMER_MESSAGE, event)


async def operators_present_in(conn: AsyncConnection, agent_id: str, now_us: int) -> bool:
    """Whether an operator watches the inbox for this agent (or for every agent)."""
    table = schema.operator_presence
    found = await conn.scalar(
        select(func.count())
        .select_from(table)
        .where(
            table.c.expires_at_us > now_us,
            or_(table.c.agent_id == "", table.c.agent_id == agent_id),
        )
    )
    return bool(found)


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


# ---------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class DueTimeout:
    handoff_id: str
    session_id: str
    kind: str  # "claim" or "inactivity"


class HandoffReader:
    """Reads on pooled connections (never through the writer)."""

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

    async def snapshot(self, agent_id: str) -> tuple[int, list[Handoff]]:
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

    async def changes_after(self, position: int, agent_id: str, limit: int) -> list[HandoffChange]:
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

    async def due_timeouts(self, now_us: int, limit: int = 200) -> list[DueTimeout]:
        table = schema.handoffs
        due: list[DueTimeout] = []
        async with self._db.reader.connect() as conn:
            for kind, column in (
                ("claim", table.c.claim_deadline_us),
                ("inactivity", table.c.inactivity_deadline_us),
            ):
                rows = await conn.execute(
                    select(table.c.id, table.c.session_id)
                    .where(column <= now_us, table.c.open_session_id.is_not(None))
                    .order_by(column)
                    .limit(limit)
                )
                due += [DueTimeout(r.id, r.session_id, kind) for r in rows]
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
    ) -> tuple[int, int, list[Handoff], dict[str, list[Handoff]], dict[str, str]]:
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


# ---------------------------------------------------------------- presence (write jobs)


async def upsert_presence(
    conn: AsyncConnection, stream_id: str, operator_id: str, agent_id: str, expires_at_us: int
) -> None:
    table = schema.operator_presence
    await conn.execute(delete(table).where(table.c.stream_id == stream_id))
    await conn.execute(
        table.insert().values(
            stream_id=stream_id,
            operator_id=operator_id,
            agent_id=agent_id,
            expires_at_us=expires_at_us,
        )
    )


async def remove_presence(conn: AsyncConnection, stream_id: str, expired_before_us: int) -> None:
    """Removes this stream's row and rows of streams that died without saying so."""
    table = schema.operator_presence
    await conn.execute(
        delete(table).where(
            or_(table.c.stream_id == stream_id, table.c.expires_at_us < expired_before_us)
        )
    )
