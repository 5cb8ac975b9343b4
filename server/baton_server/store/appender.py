"""Group commit: one writer task turns queued appends into one transaction per batch.

A batch runs on the database's plain driver: SQLite's sqlite3 writer thread when the database
is a SQLite file (sqlite_log.py: one hop per batch), asyncpg directly on PostgreSQL
(pg_log.py); batches that write handoff rows run here on SQLAlchemy. All paths take their rules
from append_plan.py. Write jobs (catalog, handoff
controls) run on SQLAlchemy too. Funnelling every write through one task means SQLite never
sees two writers from this process, and events are published in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import Event, EventKind, EventSource, now_us
from baton_server.errors import ShuttingDown
from baton_server.store import schema
from baton_server.store.append_plan import (
    HUMAN_SOURCES,
    AppendRequest,
    BatchOutcome,
    BatchPlan,
    BatchState,
    EventEncoding,
    SessionHead,
    guarded_sessions,
    holder_sessions,
    keyed_drafts,
    latest_messages,
    plan_batch,
)
from baton_server.store.database import Database, is_unreachable
from baton_server.store.handoffs import (
    claimed_handoffs,
    note_human_replies,
    record_noticed_events,
)
from baton_server.store.pg_log import TRANSIENT_RETRIES, TRANSIENT_SQLSTATES
from baton_server.store.rows import event_from_row
from baton_server.store.sqlite_log import SqliteLog

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CommitObserver:
    """What the writer reports, when the composition root asks: each commit (appends in it,
    events committed, seconds its transaction took) and a span per write as its caller sees it
    (queueing included)."""

    committed: Callable[[int, int, float], None] | None = None
    tracer: Tracer | None = None
    # Called before publishing with each append's events and its caller's trace context, so
    # work those events start elsewhere (an engine turn) joins the caller's trace.
    traced: Callable[[list[Event], object], None] | None = None


NO_OBSERVER = CommitObserver()

# A write job returns its result and the events it committed (to publish).
WriteJob = Callable[[AsyncConnection], Awaitable[tuple[T, list[Event]]]]


@dataclass(slots=True)
class _Append:
    request: AppendRequest
    future: asyncio.Future[list[Event]]
    # The caller's trace context (tracing on), handed on with the events it appended.
    trace_context: object = None


@dataclass(slots=True)
class _Job(Generic[T]):
    run: WriteJob[T]
    future: asyncio.Future[T]


@dataclass(slots=True)
class _PlainJob(Generic[T]):
    """Work for SQLite's writer thread (SqliteLog.run), in queue order with the rest."""

    work: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]


class DirectLog(Protocol):
    """A batch's whole append transaction on a plain driver (sqlite_log.py, pg_log.py)."""

    async def append(self, requests: list[AppendRequest]) -> BatchOutcome | None:
        """The outcome; None when the batch writes handoff rows (SQLAlchemy then runs it)."""


class _Stop:
    """Queued by close(): everything queued before it is written, then the writer ends."""


_STOP = _Stop()


async def append_rows(
    conn: AsyncConnection, requests: list[AppendRequest], encoding: EventEncoding | None = None
) -> BatchOutcome:
    """Appends the requests inside the caller's transaction, in order (see plan_batch).

    Offsets come from each session row's `next_offset`, read under the write lock (BEGIN
    IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL) and bumped in the same transaction.
    """
    state = await _read_state(conn, requests)
    plan = plan_batch(requests, state, encoding, now_us())
    await write_plan(conn, plan, state)
    return plan.outcome


async def write_plan(conn: AsyncConnection, plan: BatchPlan, state: BatchState) -> None:
    if not plan.rows:
        return
    sessions = schema.sessions
    await conn.execute(schema.events.insert(), plan.rows)
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == bindparam("b_id"))
        .values(next_offset=bindparam("b_next"), updated_at_us=bindparam("b_at")),
        [
            {"b_id": sid, "b_next": head, "b_at": plan.created_at_us}
            for sid, head in plan.heads.items()
        ],
    )
    if plan.replies:
        await note_human_replies(conn, state.held, plan.replies)
    if plan.noticed:
        await record_noticed_events(conn, plan.noticed)


async def _read_state(conn: AsyncConnection, requests: list[AppendRequest]) -> BatchState:
    sessions = schema.sessions
    session_ids = sorted({r.session_id for r in requests})
    rows = await conn.execute(
        select(sessions.c.id, sessions.c.next_offset, sessions.c.mode, sessions.c.control_epoch)
        .where(sessions.c.id.in_(session_ids))
        .order_by(sessions.c.id)
        .with_for_update()
    )
    heads = {row.id: SessionHead(row.next_offset, row.mode, row.control_epoch) for row in rows}
    latest_customer, latest_human = await _latest_messages(conn, guarded_sessions(requests))
    return BatchState(
        heads,
        await _known_keys(conn, keyed_drafts(requests)),
        latest_customer,
        latest_human,
        await claimed_handoffs(conn, holder_sessions(requests)),
    )


async def _known_keys(
    conn: AsyncConnection, keyed: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, Event]]:
    known: dict[tuple[str, str], tuple[str, Event]] = {}
    if keyed:
        events = schema.events
        found = await conn.execute(
            select(events).where(
                tuple_(events.c.session_id, events.c.idempotency_key).in_(list(keyed))
            )
        )
        for row in found:
            known[(row.session_id, row.idempotency_key)] = (row.request_digest, event_from_row(row))
    return known


async def _latest_messages(
    conn: AsyncConnection, guarded: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Offsets of the newest customer and the newest human-agent message per session."""
    if not guarded:
        return {}, {}
    events = schema.events
    sources = [EventSource.CUSTOMER.value, *(s.value for s in HUMAN_SOURCES)]
    rows = await conn.execute(
        select(events.c.session_id, events.c.source, func.max(events.c.offset))
        .where(
            events.c.session_id.in_(guarded),
            events.c.kind == EventKind.MESSAGE.value,
            events.c.source.in_(sources),
        )
        .group_by(events.c.session_id, events.c.source)
    )
    return latest_messages((sid, source, offset) for sid, source, offset in rows)


def _sqlstate(error: DBAPIError) -> str:
    return str(getattr(error.orig, "sqlstate", "") or getattr(error.orig, "pgcode", "") or "")


def _is_transient(error: DBAPIError) -> bool:
    return _sqlstate(error) in TRANSIENT_SQLSTATES


class Appender:
    """Owns the single writer task. `publish` is called with committed events after each commit."""

    def __init__(
        self,
        database: Database,
        publish: Callable[[list[Event]], None],
        *,
        encoding: EventEncoding | None = None,
        fast: SqliteLog | None = None,
        direct: DirectLog | None = None,
        max_batch: int = 512,
        observer: CommitObserver = NO_OBSERVER,
    ) -> None:
        """`direct`: where batches run (SQLite's sqlite3 log, PostgreSQL's asyncpg log), else
        on SQLAlchemy; `fast`: SQLite's sqlite3 log, for plain jobs (run_plain)."""
        self._database = database
        self._fast = fast
        self._direct = direct
        self._publish = publish
        self._encoding = encoding
        self._max_batch = max_batch
        self._committed = observer.committed
        self._tracer = observer.tracer
        self._traced = observer.traced
        # Jobs of every result type share the queue (each settles its own future).
        self._queue: asyncio.Queue[_Append | _Job[Any] | _PlainJob[Any] | _Stop] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="baton-appender")

    async def close(self) -> None:
        """Stops taking new writes, finishes every queued one, then ends the writer task."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(_STOP)
            await self._task
            self._task = None

    async def append(self, request: AppendRequest) -> list[Event]:
        """Queues `request` for the next group commit; returns its events once durable."""
        self._check_open()
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        if self._tracer is None:
            self._queue.put_nowait(_Append(request.prepare(), future))
            return await future
        from opentelemetry import context

        caller = context.get_current()  # what follow-up work joins: the caller's span
        with self._span("baton.store.append", request.session_id):
            self._queue.put_nowait(_Append(request.prepare(), future, caller))
            return await future

    async def run_job(self, job: WriteJob[T]) -> T:
        """Runs `job` in its own transaction on the writer task; publishes what it appended."""
        self._check_open()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(job, future))
        if self._tracer is None:
            return await future
        with self._span("baton.store.transaction", ""):
            return await future

    async def run_plain(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` in its own transaction on SQLite's writer thread (needs the plain
        sqlite3 log); nothing is published."""
        assert self._fast is not None, "run_plain needs SQLite's plain sqlite3 log"
        self._check_open()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_PlainJob(work, future))
        return await future

    def _span(self, name: str, session_id: str) -> contextlib.AbstractContextManager[object]:
        if self._tracer is None:
            return contextlib.nullcontext()
        attributes = {"db.system": "sqlite" if self._database.is_sqlite else "postgresql"}
        if session_id:
            attributes["baton.session_id"] = session_id
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def _check_open(self) -> None:
        if self._closing or self._task is None:
            raise ShuttingDown("the server is shutting down; retry against another replica")

    async def _run(self) -> None:
        pending: _Append | _Job[Any] | _PlainJob[Any] | _Stop | None = None
        while True:
            item = pending if pending is not None else await self._queue.get()
            pending = None
            if isinstance(item, _Stop):
                return
            if isinstance(item, _Job):
                await self._run_job(item)
                continue
            if isinstance(item, _PlainJob):
                await self._run_plain(item)
                continue
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if not isinstance(nxt, _Append):
                    pending = nxt
                    break
                batch.append(nxt)
            await self._run_batch(batch)

    def _publish_safely(self, events: list[Event]) -> None:
        # A failing listener must not take the writer (and every waiting caller) down; the
        # events are committed, and readers find them in the store.
        try:
            self._publish(events)
        except Exception:
            log.exception("publishing %d committed events failed", len(events))

    async def _run_job(self, job: _Job[T]) -> None:
        started = time.perf_counter()
        outcome = await _attempt(job.future, self._with_retries(job.run))
        if isinstance(outcome, _Failed):
            return
        result, committed = outcome
        if self._committed is not None:
            self._committed(1, len(committed), time.perf_counter() - started)
        # Answer the caller first: its reply need not wait behind every subscriber's wake-up.
        _settle(job.future, result)
        if committed:
            self._publish_safely(committed)

    async def _run_plain(self, job: _PlainJob[Any]) -> None:
        assert self._fast is not None
        result = await _attempt(job.future, self._fast.run(job.work))
        if not isinstance(result, _Failed):
            _settle(job.future, result)

    async def _with_retries(self, run: WriteJob[T]) -> tuple[T, list[Event]]:
        """Runs `run` in a transaction; retries (a few times) when PostgreSQL broke a deadlock
        or a serialization conflict between replicas by rolling this transaction back."""
        for attempt in range(1, TRANSIENT_RETRIES + 1):
            try:
                async with self._database.writer.begin() as conn:
                    return await run(conn)
            except DBAPIError as error:
                if attempt == TRANSIENT_RETRIES or not _is_transient(error):
                    raise
                log.info("write rolled back (%s); retrying", _sqlstate(error))
        raise AssertionError("unreachable")

    async def _run_batch(self, batch: list[_Append]) -> None:
        requests = [a.request for a in batch]

        async def run(conn: AsyncConnection) -> tuple[BatchOutcome, list[Event]]:
            return await append_rows(conn, requests, self._encoding), []

        started = time.perf_counter()
        try:
            direct = await self._direct.append(requests) if self._direct is not None else None
            outcome = direct if direct is not None else (await self._with_retries(run))[0]
        except Exception as error:
            if len(batch) == 1:
                if is_unreachable(error):  # the caller hears UNAVAILABLE: retry later
                    _settle(batch[0].future, error)
                    return
                log.exception("append failed for session %s", batch[0].request.session_id)
                _settle(batch[0].future, RuntimeError("append failed"))
                return
            # One bad item (e.g. a key raced in by another replica) must not fail its neighbours.
            log.warning("batch of %d appends failed; retrying one by one", len(batch))
            for single in batch:
                await self._run_batch([single])
            return
        if self._committed is not None:
            self._committed(len(batch), len(outcome.committed), time.perf_counter() - started)
        for item, result in zip(batch, outcome.results, strict=True):
            _settle(item.future, result)
            if self._traced is not None and item.trace_context is not None:
                if isinstance(result, list):
                    self._traced(result, item.trace_context)
        if outcome.committed:
            self._publish_safely(outcome.committed)


class _Failed:
    """What `_attempt` returns when the work failed (its caller has heard why)."""


async def _attempt(future: asyncio.Future[Any], work: Awaitable[T]) -> T | _Failed:
    """The work's result; or, when it raises, the error goes to `future`'s caller
    (cancellation still propagates)."""
    try:
        return await work
    except BaseException as exc:
        _settle(future, exc)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return _Failed()


def _settle(future: asyncio.Future[T], result: T | BaseException) -> None:
    if future.done():  # the caller went away (cancelled RPC); the write stands regardless
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
