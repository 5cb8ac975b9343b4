"""What every row class of the repository shares: the database, the single writer, and the
small helpers for paging, reading one row, updating, deleting and appending in a transaction.

The repository is the sum of per-aggregate row classes (catalog.py: agents, customers,
guidelines, canned responses; repository.py: sessions and the event log; turns.py: agent turns),
each in its own module over these helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Row, Select, Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import Actor, Event, EventDraft, Page, Session, TurnGuard
from baton_server.errors import FailedPrecondition, NotFound
from baton_server.store import schema
from baton_server.store.append_plan import AppendRequest, EventEncoding
from baton_server.store.appender import Appender, WriteJob, append_rows
from baton_server.store.database import Database
from baton_server.store.paging import keyset_page
from baton_server.store.rows import session_from_row
from baton_server.store.sqlite_log import SqliteLog

T = TypeVar("T")
# A row converted to its domain object (agent_from_row, ...).
RowConverter = Callable[[Row[Any]], T]


class RowsBase:
    _db: Database
    _appender: Appender
    _encoding: EventEncoding | None
    _fast: SqliteLog | None

    async def run_write(self, job: WriteJob[T]) -> T:
        """Runs `job(conn) -> (result, appended events)` in one transaction on the writer;
        publishes the appended events after commit and returns the result. (The job runs on
        the writer task: whoever acts is passed to `append_in` explicitly.)"""
        return await self._appender.run_job(job)

    # ------------------------------------------------------------------ paging helper

    async def _page(
        self,
        query: Select[Any],
        table: Table,
        size: int,
        token: str,
        filters: dict[str, str],
        convert: RowConverter[T],
    ) -> Page[T]:
        return await keyset_page(
            self._db, query, table.c.created_at_us, table.c.id, size, token, filters, convert
        )

    async def _one(
        self, table: Table, resource: str, resource_id: str, convert: RowConverter[T]
    ) -> T:
        async with self._db.reader.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == resource_id))).first()
        if row is None:
            raise NotFound(resource, resource_id)
        return convert(row)

    async def _update(
        self,
        table: Table,
        resource: str,
        resource_id: str,
        values: dict[str, object],
        convert: RowConverter[T],
    ) -> T:
        async def job(conn: AsyncConnection) -> tuple[T, list[Event]]:
            if values:
                await conn.execute(update(table).where(table.c.id == resource_id).values(values))
            row = (await conn.execute(select(table).where(table.c.id == resource_id))).first()
            if row is None:
                raise NotFound(resource, resource_id)
            return convert(row), []

        return await self.run_write(job)

    async def _delete(
        self,
        table: Table,
        resource: str,
        resource_id: str,
        used_by_sessions: Column[str] | None = None,
    ) -> None:
        """Deletes one row; with `used_by_sessions` (a sessions column), refuses while any
        session still references it."""

        async def job(conn: AsyncConnection) -> tuple[None, list[Event]]:
            if used_by_sessions is not None:
                in_use = await conn.scalar(
                    select(func.count())
                    .select_from(schema.sessions)
                    .where(used_by_sessions == resource_id)
                )
                if in_use:
                    raise FailedPrecondition(
                        f"{resource} {resource_id!r} is used by {in_use} session(s); "
                        "delete those sessions first",
                        metadata={"sessions": str(in_use)},
                    )
            result = await conn.execute(delete(table).where(table.c.id == resource_id))
            if result.rowcount == 0:
                raise NotFound(resource, resource_id)
            return None, []

        await self.run_write(job)

    async def _session_in(
        self, conn: AsyncConnection, session_id: str, *, lock: bool = False
    ) -> Session:
        query = select(schema.sessions).where(schema.sessions.c.id == session_id)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("session", session_id)
        return session_from_row(row)

    async def append_in(
        self,
        conn: AsyncConnection,
        session_id: str,
        drafts: Sequence[EventDraft],
        guard: TurnGuard | None = None,
        *,
        actor: Actor | None = None,
    ) -> list[Event]:
        """Appends inside the caller's write transaction (a `run_write` job), recorded as done
        by `actor` (None: Baton itself)."""
        request = AppendRequest(session_id, list(drafts), guard, actor).prepare()
        outcome = await append_rows(conn, [request], self._encoding)
        result = outcome.results[0]
        if isinstance(result, Exception):
            raise result
        return result
