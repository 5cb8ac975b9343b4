"""Operator presence: one row per open inbox stream that names its operator, renewed while it
lives, so every replica can tell whether anyone is there to take a handoff."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.store import schema


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
