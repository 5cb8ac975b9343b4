"""Group commit: one writer task turns queued appends into one transaction per batch.

SQLAlchemy async over aiosqlite costs several thread hops per transaction (about 600 single-row
commits/s here), while a 100-row transaction runs at 30k+ rows/s. Funnelling every write through
one task also means SQLite never sees two writers from this process, and events are published in
commit order.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import Event, EventDraft, now_us
from baton_server.errors import BatonError, IdempotencyKeyReused, NotFound, ShuttingDown
from baton_server.store import schema
from baton_server.store.database import Database
from baton_server.store.ids import new_id
from baton_server.store.rows import event_from_row

log = logging.getLogger(__name__)

# A write job returns its result and the events it committed (to publish).
WriteJob = Callable[[AsyncConnection], Awaitable[tuple[Any, list[Event]]]]


def request_digest(session_id: str, draft: EventDraft, data_json: str) -> str:
    text = "\x1f".join(
        (session_id, draft.kind.value, draft.source.value, draft.correlation_id, data_json)
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class _Append:
    session_id: str
    draft: EventDraft
    data_json: str
    digest: str
    future: asyncio.Future[Event]


@dataclass(slots=True)
class _Job:
    run: WriteJob
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _BatchOutcome:
    results: list[Event | BatonError] = field(default_factory=list)
    committed: list[Event] = field(default_factory=list)


async def append_rows(
    conn: AsyncConnection, items: list[tuple[str, EventDraft, str, str]]
) -> _BatchOutcome:
    """Appends (session_id, draft, data_json, digest) items inside the caller's transaction.

    Offsets come from each session row's `next_offset`, read under the write lock (BEGIN
    IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL) and bumped in the same transaction. A request
    that cannot be appended gets its error in `results`; the others still go in.
    """
    outcome = _BatchOutcome()
    session_ids = sorted({item[0] for item in items})
    rows = await conn.execute(
        select(schema.sessions.c.id, schema.sessions.c.next_offset)
        .where(schema.sessions.c.id.in_(session_ids))
        .order_by(schema.sessions.c.id)
        .with_for_update()
    )
    next_offsets = {row.id: row.next_offset for row in rows}

    keyed = {(sid, d.idempotency_key) for sid, d, _, _ in items if d.idempotency_key}
    known: dict[tuple[str, str], tuple[str, Event]] = {}
    if keyed:
        found = await conn.execute(
            select(schema.events).where(
                tuple_(schema.events.c.session_id, schema.events.c.idempotency_key).in_(list(keyed))
            )
        )
        for row in found:
            known[(row.session_id, row.idempotency_key)] = (row.request_digest, event_from_row(row))

    created_at = now_us()
    inserts: list[dict[str, Any]] = []
    for session_id, draft, data_json, digest in items:
        if session_id not in next_offsets:
            outcome.results.append(NotFound("session", session_id))
            continue
        key = (session_id, draft.idempotency_key)
        if draft.idempotency_key and key in known:
            known_digest, original = known[key]
            if known_digest == digest:
                outcome.results.append(original)
            else:
                outcome.results.append(
                    IdempotencyKeyReused(
                        f"idempotency_key {draft.idempotency_key!r} was already used in session "
                        f"{session_id!r} for a different event (offset {original.offset}); "
                        "use a new key for a new event",
                        metadata={"offset": str(original.offset)},
                    )
                )
            continue
        offset = next_offsets[session_id]
        next_offsets[session_id] = offset + 1
        event_id = new_id("evt")
        event = Event(
            id=event_id,
            session_id=session_id,
            offset=offset,
            kind=draft.kind,
            source=draft.source,
            created_at_us=created_at,
            # Uncorrelated events start their own correlation (e.g. the turn a message starts).
            correlation_id=draft.correlation_id or event_id,
            data_json=data_json,
        )
        inserts.append(
            {
                "session_id": session_id,
                "offset": offset,
                "id": event.id,
                "kind": draft.kind.value,
                "source": draft.source.value,
                "created_at_us": created_at,
                "correlation_id": event.correlation_id,
                "idempotency_key": draft.idempotency_key or None,
                "request_digest": digest if draft.idempotency_key else None,
                "data_json": data_json,
            }
        )
        if draft.idempotency_key:
            known[key] = (digest, event)
        outcome.results.append(event)
        outcome.committed.append(event)

    if inserts:
        await conn.execute(schema.events.insert(), inserts)
        touched = {e.session_id for e in outcome.committed}
        await conn.execute(
            update(schema.sessions)
            .where(schema.sessions.c.id == bindparam("b_id"))
            .values(next_offset=bindparam("b_next"), updated_at_us=bindparam("b_at")),
            [{"b_id": sid, "b_next": next_offsets[sid], "b_at": created_at} for sid in touched],
        )
    return outcome


class Appender:
    """Owns the single writer task. `publish` is called with committed events after each commit."""

    def __init__(
        self,
        database: Database,
        publish: Callable[[list[Event]], None],
        *,
        max_batch: int = 512,
    ) -> None:
        self._database = database
        self._publish = publish
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Append | _Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="baton-appender")

    async def close(self) -> None:
        """Stops taking new writes, finishes every queued one, then ends the writer task."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def append(self, session_id: str, draft: EventDraft) -> Event:
        self._check_open()
        data_json = draft.data_json()
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        digest = request_digest(session_id, draft, data_json)
        self._queue.put_nowait(_Append(session_id, draft, data_json, digest, future))
        return await future

    async def run_job(self, job: WriteJob) -> Any:
        """Runs `job` in its own transaction on the writer task; publishes what it appended."""
        self._check_open()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(job, future))
        return await future

    def _check_open(self) -> None:
        if self._closing or self._task is None:
            raise ShuttingDown("the server is shutting down; retry against another replica")

    async def _run(self) -> None:
        pending: _Append | _Job | None = None
        while True:
            item = pending if pending is not None else await self._queue.get()
            pending = None
            if item is None:
                return
            if isinstance(item, _Job):
                await self._run_job(item)
                continue
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if not isinstance(nxt, _Append):
                    pending = nxt
                    break
                batch.append(nxt)
            await self._run_batch(batch)

    async def _run_job(self, job: _Job) -> None:
        try:
            async with self._database.writer.begin() as conn:
                result, committed = await job.run(conn)
        except BaseException as exc:
            _settle(job.future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if committed:
            self._publish(committed)
        _settle(job.future, result)

    async def _run_batch(self, batch: list[_Append]) -> None:
        items = [(a.session_id, a.draft, a.data_json, a.digest) for a in batch]
        try:
            async with self._database.writer.begin() as conn:
                outcome = await append_rows(conn, items)
        except Exception:
            if len(batch) == 1:
                log.exception("append failed for session %s", batch[0].session_id)
                _settle(batch[0].future, RuntimeError("append failed"))
                return
            # One bad item (e.g. a key raced in by another replica) must not fail its neighbours.
            log.warning("batch of %d appends failed; retrying one by one", len(batch))
            for single in batch:
                await self._run_batch([single])
            return
        if outcome.committed:
            self._publish(outcome.committed)
        for request, result in zip(batch, outcome.results, strict=True):
            _settle(request.future, result)


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # the caller went away (cancelled RPC); the write stands regardless
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
