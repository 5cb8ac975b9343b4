"""PostgreSQL's append transaction on asyncpg directly, without SQLAlchemy in between.

Measured on the throwaway cluster (bench/README.md): the same statements of a one-event append
cost 0.44 ms of CPU per transaction on asyncpg and 1.5-1.9 ms through SQLAlchemy core's async
layer (p50 round trip 0.77 vs 1.9-2.4 ms). So, as SQLite's writer thread does (sqlite_log.py),
the appender's batches run here: lock the sessions' rows, read what the rules need, plan with
append_plan.py, insert, bump the heads, commit. Batches that write handoff rows (a holder's
reply, an inbox notice on a MANUAL session) and every other write job stay on SQLAlchemy.

One connection (the single writer task is its only user), reconnected by the pool after a
failure. Reads stay on SQLAlchemy's asyncpg pool.
"""

from __future__ import annotations

import contextlib
from typing import cast

import asyncpg

from baton_server.domain import Event, now_us
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
from baton_server.store.database import lost_connection
from baton_server.store.rows import EVENT_COLUMNS, event_from_values
from baton_server.store.sql_text import (
    INSERT_COLUMNS,
    MESSAGE_KIND,
    WATCHED_SOURCES,
    numbered_insert,
    quoted,
)

TRANSIENT_RETRIES = 4
# PostgreSQL: deadlock_detected, serialization_failure (replicas locking the same sessions).
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})

_INSERT_EVENT = numbered_insert("events", INSERT_COLUMNS)
_EVENT_SELECT = quoted(EVENT_COLUMNS)


# The pool hands out proxies that forward every call to their connection.
_Connection = asyncpg.Connection


class _HandoffRowsNeeded(Exception):
    """A batch would write handoff rows: rolled back, for the SQLAlchemy path."""


def _may_retry(error: Exception, committing: bool) -> bool:
    """A deadlock or serialization failure rolled the transaction back: retry. A connection
    lost before COMMIT committed nothing (a database restart): retry; lost during COMMIT, the
    outcome is unknown: do not."""
    if isinstance(error, asyncpg.PostgresError) and error.sqlstate in TRANSIENT_SQLSTATES:
        return True
    return lost_connection(error) and not committing


class PgLog:
    def __init__(self, dsn: str, *, encoding: EventEncoding | None) -> None:
        self._dsn = dsn
        self._encoding = encoding
        self._pool: asyncpg.Pool | None = None

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:  # only the appender's task gets here: no race
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=1,
                server_settings={"application_name": "baton-append"},
            )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def append(self, requests: list[AppendRequest]) -> BatchOutcome | None:
        """Appends the batch in one transaction; None (nothing written) when it would write
        handoff rows: the caller then runs it on the SQLAlchemy path. Retries when PostgreSQL
        broke a deadlock or a serialization conflict between replicas by rolling it back."""
        if any(r.human is not None for r in requests):
            return None
        pool = await self._connections()
        for attempt in range(1, TRANSIENT_RETRIES + 1):
            committing = False
            try:
                async with pool.acquire() as conn:
                    transaction = conn.transaction()
                    await transaction.start()
                    try:
                        outcome = await self._append_in(cast(_Connection, conn), requests)
                    except BaseException:
                        with contextlib.suppress(Exception):  # a dead connection cannot
                            await transaction.rollback()
                        raise
                    committing = True
                    await transaction.commit()
                    return outcome
            except _HandoffRowsNeeded:
                return None
            except Exception as error:
                if attempt == TRANSIENT_RETRIES or not _may_retry(error, committing):
                    raise
        raise AssertionError("unreachable")

    async def _append_in(self, conn: _Connection, requests: list[AppendRequest]) -> BatchOutcome:
        state = await self._read_state(conn, requests)
        plan = plan_batch(requests, state, self._encoding, now_us())
        if plan.touches_handoffs:
            raise _HandoffRowsNeeded  # rolls back: the SQLAlchemy path writes this batch
        if plan.rows:
            await conn.executemany(
                _INSERT_EVENT, [tuple(row[c] for c in INSERT_COLUMNS) for row in plan.rows]
            )
            await conn.executemany(
                "UPDATE sessions SET next_offset = $1, updated_at_us = $2 WHERE id = $3",
                [(head, plan.created_at_us, sid) for sid, head in plan.heads.items()],
            )
        return plan.outcome

    async def _read_state(self, conn: _Connection, requests: list[AppendRequest]) -> BatchState:
        # Locked in id order, as every writer does, so replicas' batches cannot deadlock.
        heads = {
            row[0]: SessionHead(row[1], row[2], row[3])
            for row in await conn.fetch(
                "SELECT id, next_offset, mode, control_epoch FROM sessions "
                "WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
                sorted({r.session_id for r in requests}),
            )
        }
        known: dict[tuple[str, str], tuple[str, Event]] = {}
        for sid, key in keyed_drafts(requests):
            found = await conn.fetchrow(
                f"SELECT request_digest, {_EVENT_SELECT} FROM events "
                "WHERE session_id = $1 AND idempotency_key = $2",
                sid,
                key,
            )
            if found is not None:
                known[(sid, key)] = (found[0], event_from_values(*tuple(found)[1:]))
        customer: dict[str, int] = {}
        human: dict[str, int] = {}
        guarded = guarded_sessions(requests)
        if guarded:
            rows = await conn.fetch(
                'SELECT session_id, source, MAX("offset") FROM events '
                "WHERE session_id = ANY($1::text[]) AND kind = $2 "
                "AND source = ANY($3::text[]) GROUP BY session_id, source",
                guarded,
                MESSAGE_KIND,
                list(WATCHED_SOURCES),
            )
            customer, human = latest_messages(tuple(row) for row in rows)
        return BatchState(heads, known, customer, human, {})
