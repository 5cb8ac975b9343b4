"""Handoff rows inside a write transaction: the reads the handoff room decides on and the
writes that apply its decisions, plus what the append path needs of a CLAIMED handoff."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import (
    Handoff,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    Session,
    SessionMode,
)
from baton_server.errors import NotFound
from baton_server.store import schema
from baton_server.store.rows import handoff_from_row, session_from_row


class Unchanged(enum.Enum):
    """A deadline column `save_handoff` leaves as stored."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


def reason_key(reason: str) -> str:
    """Normalised reason for grouping: lower case, punctuation removed, spaces collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", reason.lower()).split())


# ---------------------------------------------------------------- sessions' control


async def lock_session(conn: AsyncConnection, session_id: str) -> Session:
    row = (
        await conn.execute(
            select(schema.sessions).where(schema.sessions.c.id == session_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("session", session_id)
    return session_from_row(row)


async def set_control(
    conn: AsyncConnection, session_id: str, epoch: int, mode: SessionMode | None, now_us: int
) -> None:
    """Writes a change of who controls the session: its new control epoch (and mode). The
    caller decided it (and checked any expected epoch) under the session lock."""
    values: dict[str, Any] = {"control_epoch": epoch, "updated_at_us": now_us}
    if mode is not None:
        values["mode"] = mode.value
    await conn.execute(
        update(schema.sessions).where(schema.sessions.c.id == session_id).values(values)
    )


async def agent_policy(conn: AsyncConnection, agent_id: str) -> HandoffPolicy:
    text = await conn.scalar(
        select(schema.agents.c.handoff_policy_json).where(schema.agents.c.id == agent_id)
    )
    return HandoffPolicy.from_json(text or "{}")


# ---------------------------------------------------------------- handoff rows


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
    claim_deadline_us: int | Unchanged | None = UNCHANGED,
    inactivity_deadline_us: int | Unchanged | None = UNCHANGED,
) -> None:
    values = _columns(handoff)
    if claim_deadline_us is not UNCHANGED:
        values["claim_deadline_us"] = claim_deadline_us
    if inactivity_deadline_us is not UNCHANGED:
        values["inactivity_deadline_us"] = inactivity_deadline_us
    await conn.execute(
        update(schema.handoffs).where(schema.handoffs.c.id == handoff.id).values(values)
    )


@dataclass(frozen=True, slots=True)
class StoredDeadlines:
    """When a handoff's timeouts fall due (None: not armed)."""

    claim_us: int | None
    inactivity_us: int | None


async def deadlines_of(conn: AsyncConnection, handoff_id: str) -> StoredDeadlines:
    table = schema.handoffs
    row = (
        await conn.execute(
            select(table.c.claim_deadline_us, table.c.inactivity_deadline_us).where(
                table.c.id == handoff_id
            )
        )
    ).first()
    if row is None:
        return StoredDeadlines(None, None)
    return StoredDeadlines(row.claim_deadline_us, row.inactivity_deadline_us)


# ---------------------------------------------------------------- an agent's queue


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


# ---------------------------------------------------------------- the append path


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
