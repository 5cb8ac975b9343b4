"""The repository every caller (servicers' use cases, engine, handoff) goes through.

Reads run on pooled connections; every write goes through the Appender's single writer task so
each state change commits together with the event that records it, and is published after commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import (
    SESSION_CREATED,
    Actor,
    Event,
    EventDraft,
    EventFilter,
    EventKind,
    EventSource,
    HolderReply,
    InboxNotice,
    Page,
    Session,
    SessionMode,
    mode_changed,
    now_us,
)
from baton_server.errors import NotFound, StaleEpoch
from baton_server.store import schema
from baton_server.store.append_plan import AppendRequest, EventEncoding
from baton_server.store.appender import NO_OBSERVER, Appender, CommitObserver
from baton_server.store.catalog import CatalogRows
from baton_server.store.database import Database
from baton_server.store.handoffs import forget_session
from baton_server.store.ids import new_id
from baton_server.store.pg_log import PgLog
from baton_server.store.rows import (
    event_from_row,
    session_from_row,
)
from baton_server.store.sqlite_log import SqliteLog
from baton_server.store.turns import TurnRows

_c = schema.events.c
# What event_from_row reads (not the stored bytes: decoded readers do not need them).
_EVENT_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _c.id,
    _c.session_id,
    _c.offset,
    _c.kind,
    _c.source,
    _c.created_at_us,
    _c.correlation_id,
    _c.data_json,
    _c.actor_json,
)

# What UpdateSession does on a mode change
# (transaction, session before, new mode, reason, who acts) -> the events it appended.
ModeChangeHook = Callable[
    [AsyncConnection, Session, SessionMode, str, Actor | None], Awaitable[list[Event]]
]


class Repository(CatalogRows, TurnRows):
    def __init__(
        self,
        database: Database,
        *,
        on_commit: Callable[[list[Event]], None],
        on_session_deleted: Callable[[str], None],
        encoding: EventEncoding | None = None,
        plain_driver: bool = True,
        observer: CommitObserver = NO_OBSERVER,
    ) -> None:
        self._db = database
        self._encoding = encoding
        # SQLite in a file: appends and event reads on plain sqlite3 threads (sqlite_log.py).
        # PostgreSQL: append batches on asyncpg directly (pg_log.py). (`plain_driver=False`
        # keeps everything on SQLAlchemy: the store contract tests run every path.)
        self._fast: SqliteLog | None = None
        self._pg: PgLog | None = None
        if database.sqlite_file is not None and plain_driver:
            self._fast = SqliteLog(
                database.sqlite_file, synchronous=database.sqlite_synchronous, encoding=encoding
            )
        if database.postgres_dsn is not None and plain_driver:
            self._pg = PgLog(database.postgres_dsn, encoding=encoding)
        self._appender = Appender(
            database,
            on_commit,
            encoding=encoding,
            fast=self._fast,
            direct=self._fast or self._pg,
            observer=observer,
        )
        self._on_session_deleted = on_session_deleted

    @property
    def database(self) -> Database:
        return self._db

    @property
    def stores_encoded_events(self) -> bool:
        """Whether appends keep each event's encoded form (see `read_encoded_events`)."""
        return self._encoding is not None

    def start(self) -> None:
        self._appender.start()

    async def key_used(self, conn: AsyncConnection, session_id: str, key: str) -> bool:
        events = schema.events
        return bool(
            await conn.scalar(
                select(
                    exists().where(
                        events.c.session_id == session_id, events.c.idempotency_key == key
                    )
                )
            )
        )

    async def close(self) -> None:
        await self._appender.close()
        if self._pg is not None:
            await self._pg.close()
        if self._fast is not None:
            await asyncio.to_thread(self._fast.close)

    # ------------------------------------------------------------------ sessions

    async def create_session(
        self,
        agent_id: str,
        customer_id: str,
        title: str,
        mode: SessionMode,
        metadata: dict[str, str],
        actor: Actor | None = None,
    ) -> Session:
        session_id = new_id("ses")

        async def job(conn: AsyncConnection) -> tuple[Session, list[Event]]:
            for table, resource, rid in (
                (schema.agents, "agent", agent_id),
                (schema.customers, "customer", customer_id),
            ):
                if not await conn.scalar(select(exists().where(table.c.id == rid))):
                    raise NotFound(resource, rid)
            created = now_us()
            await conn.execute(
                schema.sessions.insert().values(
                    id=session_id,
                    agent_id=agent_id,
                    customer_id=customer_id,
                    title=title,
                    mode=mode.value,
                    metadata_json=json.dumps(metadata),
                    created_at_us=created,
                    updated_at_us=created,
                    next_offset=0,
                )
            )
            draft = EventDraft(
                EventKind.CUSTOM,
                EventSource.SYSTEM,
                {
                    "type": SESSION_CREATED,
                    "agent_id": agent_id,
                    "customer_id": customer_id,
                    "mode": mode.value,
                },
            )
            committed = await self.append_in(conn, session_id, [draft], actor=actor)
            return await self._session_in(conn, session_id), committed

        return await self.run_write(job)

    async def get_session(self, session_id: str) -> Session:
        return await self._one(schema.sessions, "session", session_id, session_from_row)

    async def list_sessions(
        self,
        size: int,
        token: str,
        *,
        agent_id: str = "",
        customer_id: str = "",
        mode: SessionMode | None = None,
    ) -> Page[Session]:
        table = schema.sessions
        query = select(table)
        filters = {
            "agent_id": agent_id,
            "customer_id": customer_id,
            "mode": mode.value if mode else "",
        }
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        if customer_id:
            query = query.where(table.c.customer_id == customer_id)
        if mode is not None:
            query = query.where(table.c.mode == mode.value)
        return await self._page(query, table, size, token, filters, session_from_row)

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, str] | None = None,
        mode: SessionMode | None = None,
        reason: str = "",
        expected_epoch: int | None = None,
        on_mode_change: ModeChangeHook | None = None,
        actor: Actor | None = None,
    ) -> Session:
        """Updates the fields given (None: leave as is); a mode change appends a mode-changed
        event in the same transaction (or runs `on_mode_change`, which records it with whatever
        else a change implies), both recorded as done by `actor`."""

        async def job(conn: AsyncConnection) -> tuple[Session, list[Event]]:
            current = await self._session_in(conn, session_id, lock=True)
            if expected_epoch is not None and expected_epoch != current.control_epoch:
                raise StaleEpoch(session_id, expected_epoch, current.control_epoch)
            values: dict[str, object] = {}
            if title is not None:
                values["title"] = title
            if metadata is not None:
                values["metadata_json"] = json.dumps(metadata)
            drafts: list[EventDraft] = []
            new_mode = mode if mode is not None and mode != current.mode else None
            if new_mode is not None and on_mode_change is None:
                values["mode"] = new_mode.value
                drafts.append(mode_changed(current.mode, new_mode, reason, actor=actor))
            if values:
                values["updated_at_us"] = now_us()
                await conn.execute(
                    update(schema.sessions).where(schema.sessions.c.id == session_id).values(values)
                )
            committed = (
                await self.append_in(conn, session_id, drafts, actor=actor) if drafts else []
            )
            if new_mode is not None and on_mode_change is not None:
                committed += await on_mode_change(conn, current, new_mode, reason, actor)
            return await self._session_in(conn, session_id), committed

        return await self.run_write(job)

    async def delete_session(self, session_id: str) -> None:
        async def job(conn: AsyncConnection) -> tuple[None, list[Event]]:
            await forget_session(conn, session_id, now_us())
            await conn.execute(
                delete(schema.events).where(schema.events.c.session_id == session_id)
            )
            result = await conn.execute(
                delete(schema.sessions).where(schema.sessions.c.id == session_id)
            )
            if result.rowcount == 0:
                raise NotFound("session", session_id)
            return None, []

        await self.run_write(job)
        self._on_session_deleted(session_id)

    # ------------------------------------------------------------------ events

    async def append_event(
        self,
        session_id: str,
        draft: EventDraft,
        actor: Actor | None = None,
        *,
        inbox: InboxNotice | None = None,
    ) -> Event:
        """Appends one event (group-committed with concurrent appends); returns it once durable.

        With an idempotency key already used for the same request, returns the original event.
        """
        request = AppendRequest(session_id, [draft], actor=actor, inbox=inbox)
        (event,) = await self._appender.append(request)
        return event

    async def append_holder_message(
        self,
        session_id: str,
        draft: EventDraft,
        reply: HolderReply,
        actor: Actor | None = None,
    ) -> Event:
        """A human agent's message under `reply`'s condition, group-committed like any append;
        raises NeedsHandoffControl when it does not hold (the handoff controls then decide)."""
        request = AppendRequest(session_id, [draft], actor=actor, human=reply)
        (event,) = await self._appender.append(request)
        return event

    async def next_offset(self, session_id: str) -> int:
        """Offset the next event of the session will get; every lower offset is committed."""
        if self._fast is not None:
            return await self._fast.next_offset(session_id)
        async with self._db.reader.connect() as conn:
            value = await conn.scalar(
                select(schema.sessions.c.next_offset).where(schema.sessions.c.id == session_id)
            )
        if value is None:
            raise NotFound("session", session_id)
        return int(value)

    def _events_query(
        self,
        columns: Sequence[ColumnElement[Any]],
        session_id: str,
        from_offset: int,
        to_offset: int,
        event_filter: EventFilter,
        limit: int,
    ) -> Select[Any]:
        table = schema.events
        query = (
            select(*columns)
            .where(
                table.c.session_id == session_id,
                table.c.offset >= from_offset,
                table.c.offset < to_offset,
            )
            .order_by(table.c.offset)
            .limit(limit)
        )
        if event_filter.kinds:
            query = query.where(table.c.kind.in_(sorted(k.value for k in event_filter.kinds)))
        if event_filter.sources:
            query = query.where(table.c.source.in_(sorted(s.value for s in event_filter.sources)))
        return query

    async def read_events(
        self,
        session_id: str,
        from_offset: int,
        to_offset: int,
        event_filter: EventFilter,
        limit: int,
        *,
        with_encoded: bool = False,
    ) -> list[Event]:
        """Committed events with from_offset <= offset < to_offset matching the filter, in order.
        `with_encoded`: with their stored bytes too (`Event.encoded`), for live delivery."""
        if self._fast is not None:
            return await self._fast.read_events(
                session_id, from_offset, to_offset, event_filter, limit, with_encoded
            )
        c = schema.events.c
        encoding = self._encoding if with_encoded else None
        columns = _EVENT_COLUMNS if encoding is None else (*_EVENT_COLUMNS, c.wire, c.wire_format)
        query = self._events_query(columns, session_id, from_offset, to_offset, event_filter, limit)
        async with self._db.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        if encoding is None:
            return [event_from_row(row) for row in rows]
        return [encoding.attached(event_from_row(row), row.wire, row.wire_format) for row in rows]

    async def read_encoded_events(
        self,
        session_id: str,
        from_offset: int,
        to_offset: int,
        event_filter: EventFilter,
        limit: int,
    ) -> list[tuple[int, bytes]]:
        """Like `read_events`, as (offset, encoded event) pairs: the bytes stored at append, so
        replay costs no per-event conversion. Needs an `encoding`."""
        encoding = self._encoding
        assert encoding is not None, "the repository was built without an encoding"
        if self._fast is not None:
            return await self._fast.read_encoded(
                session_id, from_offset, to_offset, event_filter, limit
            )
        c = schema.events.c
        query = self._events_query(
            (c.offset, c.wire, c.wire_format),
            session_id,
            from_offset,
            to_offset,
            event_filter,
            limit,
        )
        async with self._db.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        version = encoding.version
        if any(wire_format != version for _, _, wire_format in rows):
            # Written before this encoding (or before events were encoded): from the columns.
            events = await self.read_events(session_id, from_offset, to_offset, event_filter, limit)
            return [(e.offset, encoding.encode(e)) for e in events]
        return [(offset, bytes(wire)) for offset, wire, _ in rows]
