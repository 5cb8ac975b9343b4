"""SQLite's event log on plain `sqlite3` connections: the hot path without SQLAlchemy's async
bridge.

SQLAlchemy async over aiosqlite makes about fifteen event-loop <-> thread hops per append
transaction (~2 ms of CPU); the same statements on a plain connection, in one call on one
thread, cost well under a tenth of that. So on SQLite:

- one writer thread owns a connection and runs a whole batch (read the state under BEGIN
  IMMEDIATE, `plan_batch`, insert, bump the session heads, COMMIT) in one hop;
- a few reader threads, each with its own read-only connection (WAL: readers never wait for
  the writer), serve event pages and heads in one hop each.

Batches that write handoff rows (a holder's reply, an inbox notice on a MANUAL session) and every
other write job stay on the SQLAlchemy path (appender.py), also run by the single writer task,
so SQLite still sees one writer at a time. Durability is the configured `synchronous` (FULL by
default): a batch's callers hear back only after COMMIT returned.
"""

from __future__ import annotations

import collections
import functools
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from baton_server.domain import (
    Event,
    EventFilter,
    EventKind,
    TurnSnapshot,
    now_us,
)
from baton_server.errors import NotFound
from baton_server.store.append_plan import (
    AppendRequest,
    BatchOutcome,
    BatchState,
    EventEncoding,
    SessionHead,
    guarded_sessions,
    keyed_drafts,
    latest_messages,
    plan_batch,
)
from baton_server.store.rows import (
    EVENT_COLUMNS,
    agent_from_row,
    canned_response_from_row,
    event_from_values,
    guideline_from_row,
    session_from_row,
)
from baton_server.store.sql_text import (
    INSERT_COLUMNS,
    MESSAGE_KIND,
    WATCHED_SOURCES,
    qmark_insert,
    quoted,
)
from baton_server.store.worker_threads import WorkerThreads

T = TypeVar("T")

READER_THREADS = 2


_INSERT_EVENT = qmark_insert("events", INSERT_COLUMNS)
_EVENT_SELECT = quoted(EVENT_COLUMNS)


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


class _HandoffRowsNeeded(Exception):
    """A batch would write handoff rows: rolled back, for the SQLAlchemy path."""


class SqliteLog:
    def __init__(
        self,
        path: str,
        *,
        synchronous: str,
        encoding: EventEncoding | None,
        readers: int = READER_THREADS,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._encoding = encoding
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = WorkerThreads(1, "baton-sqlite-writer")
        self._readers = WorkerThreads(readers, "baton-sqlite-reader")

    # ------------------------------------------------------------------ connections

    def _connection(self, *, write: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA foreign_keys=ON")
            if write:
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
            else:
                conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """After the last append and read (the repository closes it after the writer task)."""
        self._writer.close()
        self._readers.close()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # ------------------------------------------------------------------ appends

    async def append(self, requests: list[AppendRequest]) -> BatchOutcome | None:
        """Appends the batch in one transaction; None (nothing written) when it would write
        handoff rows: the caller then runs it on the SQLAlchemy path."""
        if any(r.human is not None for r in requests):
            return None
        return await self._writer.call(lambda: self._append(requests))

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` in one write transaction on the writer thread (BEGIN IMMEDIATE, then
        COMMIT; ROLLBACK when it raises). Callers go through the Appender's queue, so this
        never overlaps the SQLAlchemy writes."""
        return await self._writer.call(lambda: self._transaction(work))

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection(write=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _append(self, requests: list[AppendRequest]) -> BatchOutcome | None:
        try:
            return self._transaction(lambda conn: self._append_in(conn, requests))
        except _HandoffRowsNeeded:
            return None

    def _append_in(self, conn: sqlite3.Connection, requests: list[AppendRequest]) -> BatchOutcome:
        state = self._read_state(conn, requests)
        plan = plan_batch(requests, state, self._encoding, now_us())
        if plan.touches_handoffs:
            raise _HandoffRowsNeeded  # rolls back: the SQLAlchemy path writes this batch
        if plan.rows:
            conn.executemany(
                _INSERT_EVENT, [tuple(row[c] for c in INSERT_COLUMNS) for row in plan.rows]
            )
            conn.executemany(
                "UPDATE sessions SET next_offset = ?, updated_at_us = ? WHERE id = ?",
                [(head, plan.created_at_us, sid) for sid, head in plan.heads.items()],
            )
        return plan.outcome

    def _read_state(self, conn: sqlite3.Connection, requests: list[AppendRequest]) -> BatchState:
        session_ids = sorted({r.session_id for r in requests})
        heads = {
            sid: SessionHead(next_offset, mode, epoch)
            for sid, next_offset, mode, epoch in conn.execute(
                "SELECT id, next_offset, mode, control_epoch FROM sessions "
                f"WHERE id IN ({_marks(len(session_ids))})",
                session_ids,
            )
        }
        known: dict[tuple[str, str], tuple[str, Event]] = {}
        for sid, key in keyed_drafts(requests):
            found = conn.execute(
                f"SELECT request_digest, {_EVENT_SELECT} FROM events "
                "WHERE session_id = ? AND idempotency_key = ?",
                (sid, key),
            ).fetchone()
            if found is not None:
                known[(sid, key)] = (found[0], event_from_values(*found[1:]))
        customer: dict[str, int] = {}
        human: dict[str, int] = {}
        guarded = guarded_sessions(requests)
        if guarded:
            rows = conn.execute(
                'SELECT session_id, source, MAX("offset") FROM events '
                f"WHERE session_id IN ({_marks(len(guarded))}) AND kind = ? "
                f"AND source IN ({_marks(len(WATCHED_SOURCES))}) GROUP BY session_id, source",
                (*guarded, MESSAGE_KIND, *WATCHED_SOURCES),
            )
            customer, human = latest_messages(rows)
        return BatchState(heads, known, customer, human, {})

    # ------------------------------------------------------------------ reads

    async def next_offset(self, session_id: str) -> int:
        def read() -> int:
            row = (
                self._connection(write=False)
                .execute("SELECT next_offset FROM sessions WHERE id = ?", (session_id,))
                .fetchone()
            )
            if row is None:
                raise NotFound("session", session_id)
            return int(row[0])

        return await self._readers.call(read)

    async def read_encoded(
        self, session_id: str, start: int, end: int, event_filter: EventFilter, limit: int
    ) -> list[tuple[int, bytes]]:
        """(offset, stored bytes) of the range's events; rows stored under another encoding
        version (or none) are encoded anew from their columns."""
        encoding = self._encoding
        assert encoding is not None, "read_encoded needs an encoding"
        version = encoding.version

        def read() -> list[tuple[int, bytes]]:
            conn = self._connection(write=False)
            sql, params = _range_query(
                '"offset", wire, wire_format', session_id, start, end, event_filter, limit
            )
            rows = conn.execute(sql, params).fetchall()
            if all(wire_format == version for _, _, wire_format in rows):
                return [(offset, wire) for offset, wire, _ in rows]
            # Written before this encoding (or before events were encoded): from the columns.
            sql, params = _range_query(_EVENT_SELECT, session_id, start, end, event_filter, limit)
            events = [event_from_values(*row) for row in conn.execute(sql, params)]
            return [(e.offset, encoding.encode(e)) for e in events]

        return await self._readers.call(read)

    async def read_events(
        self,
        session_id: str,
        start: int,
        end: int,
        event_filter: EventFilter,
        limit: int,
        with_encoded: bool,
    ) -> list[Event]:
        encoding = self._encoding if with_encoded else None

        # The stored bytes only when asked for: most readers decode, and rows are read in pages.
        columns = _EVENT_SELECT if encoding is None else f"{_EVENT_SELECT}, wire, wire_format"

        def read() -> list[Event]:
            sql, params = _range_query(columns, session_id, start, end, event_filter, limit)
            rows = self._connection(write=False).execute(sql, params).fetchall()
            if encoding is None:
                return [event_from_values(*row) for row in rows]
            return [encoding.attached(event_from_values(*row[:-2]), *row[-2:]) for row in rows]

        return await self._readers.call(read)

    async def turn_snapshot(
        self, session_id: str, history_kinds: frozenset[EventKind], history_limit: int
    ) -> TurnSnapshot:
        """Repository.turn_snapshot in one hop, in one read transaction."""

        def read() -> TurnSnapshot:
            conn = self._connection(write=False)
            cursor = conn.cursor()
            cursor.row_factory = _named_row  # the row converters read columns by name
            cursor.execute("BEGIN")
            try:
                session_row = cursor.execute(
                    "SELECT * FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if session_row is None:
                    raise NotFound("session", session_id)
                session = session_from_row(session_row)
                agent_row = cursor.execute(
                    "SELECT * FROM agents WHERE id = ?", (session.agent_id,)
                ).fetchone()
                if agent_row is None:
                    raise NotFound("agent", session.agent_id)
                guidelines = cursor.execute(
                    "SELECT * FROM guidelines WHERE agent_id = ? AND enabled "
                    "ORDER BY created_at_us, id",
                    (session.agent_id,),
                ).fetchall()
                canned = cursor.execute(
                    "SELECT * FROM canned_responses WHERE agent_id = ? ORDER BY created_at_us, id",
                    (session.agent_id,),
                ).fetchall()
                kinds = sorted(k.value for k in history_kinds)
                history = conn.execute(
                    f"SELECT {_EVENT_SELECT} FROM events WHERE session_id = ? "
                    f'AND kind IN ({_marks(len(kinds))}) ORDER BY "offset" DESC LIMIT ?',
                    (session_id, *kinds, history_limit),
                ).fetchall()
            finally:
                cursor.execute("COMMIT")
            return TurnSnapshot(
                session=session,
                agent=agent_from_row(agent_row),
                guidelines=[guideline_from_row(r) for r in guidelines],
                canned_responses=[canned_response_from_row(r) for r in canned],
                history=[event_from_values(*row) for row in reversed(history)],
            )

        return await self._readers.call(read)


def _named_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Any:
    return _row_type(tuple(d[0] for d in cursor.description))(*values)


@functools.cache
def _row_type(columns: tuple[str, ...]) -> Any:
    return collections.namedtuple("Row", columns)


def _range_query(
    columns: str,
    session_id: str,
    start: int,
    end: int,
    event_filter: EventFilter,
    limit: int,
) -> tuple[str, list[Any]]:
    sql = f'SELECT {columns} FROM events WHERE session_id = ? AND "offset" >= ? AND "offset" < ?'
    params: list[Any] = [session_id, start, end]
    if event_filter.kinds:
        kinds = sorted(k.value for k in event_filter.kinds)
        sql += f" AND kind IN ({_marks(len(kinds))})"
        params += kinds
    if event_filter.sources:
        sources = sorted(s.value for s in event_filter.sources)
        sql += f" AND source IN ({_marks(len(sources))})"
        params += sources
    sql += ' ORDER BY "offset" LIMIT ?'
    params.append(limit)
    return sql, params
