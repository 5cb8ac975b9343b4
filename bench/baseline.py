"""The baseline of bench.run's figures: the same `baton.v1.EventService`, minimal and in memory,
on a bare grpc.aio server in its own process, so the client code, the messages and the stub are
identical for both systems and only the server differs.

modes: noop (CreateEvent returns an empty response), floor (CreateEvent does only what any
correct Baton must per append, without a store: Baton's error mapping with its request decoding
and control-character check, the request's validation and mapping to a draft, and the event's
encoding; the ceiling of figure 1), durable_floor (the floor, with each event also committed to
a SQLite file at synchronous=FULL by one writer thread, group-committed: the ceiling of any
durable store with Baton's request path), fanout (CreateEvent fans the event out to
follow streams through asyncio queues), replay (ListEvents streams pre-built responses), idle
(ListEvents sends caught_up, then awaits forever), durable_fanout (fanout, but each CreateEvent
first inserts the event into a SQLite file and commits it at synchronous=FULL, on one writer
thread: the least any durable log adds to figure 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_server.api.errors import ErrorMappingInterceptor
from baton_server.api.events import encode_event
from baton_server.api.mapping import draft_from_request, require_id
from baton_server.api.server import GenericHandlersOnly, add_event_service
from baton_server.config import InputLimits
from baton_server.domain import Event, now_us
from baton_server.store.worker_threads import WorkerThreads
from bench.clients import MESSAGE_SOURCE, PARTICIPANT
from bench.server import HOST, Procs, Server, wait_serving
from bench.worker import emit

_CAUGHT_UP = rr.ListEventsResponse(caught_up=True)
_EMPTY_CREATE = rr.CreateEventResponse()


async def start_baseline(procs: Procs, mode: str, **config: Any) -> Server:
    """A baseline server process in `mode` (config: `events` and `text` for replay)."""
    proc = await procs.worker(worker_baseline_server, {"mode": mode, **config})
    ready = await proc.expect("READY", timeout_s=120)
    target = f"{HOST}:{ready['port']}"
    await wait_serving(proc, target, timeout_s=30)
    return Server(proc, target)


def now_timestamp() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def prebuilt_replay(events: int, text: str, batch: int = 100) -> list[Any]:
    """ListEventsResponses of `batch` events each, shaped like Baton's (ids, times, text)."""
    session_id = f"ses_{uuid.uuid4().hex}"
    created = now_timestamp()

    def event(offset: int) -> Any:
        event_id = f"evt_{uuid.uuid4().hex}"
        return pb.Event(
            id=event_id,
            session_id=session_id,
            offset=offset,
            kind=pb.EVENT_KIND_MESSAGE,
            source=MESSAGE_SOURCE,
            created_at=created,
            correlation_id=event_id,
            message=pb.MessageData(text=text, participant=PARTICIPANT),
        )

    return [
        rr.ListEventsResponse(events=[event(o) for o in range(start, min(events, start + batch))])
        for start in range(0, events, batch)
    ]


class FloorEventService:
    """CreateEvent as Baton's own code validates, maps and encodes it, with offsets from a dict
    instead of a store: what figure 1 could reach if storing, use cases and publishing were free."""

    def __init__(self, durable: GroupCommit | None = None) -> None:
        self._next_offset: dict[str, int] = {}
        self._durable = durable

    async def CreateEvent(self, request: Any, context: grpc.aio.ServicerContext) -> bytes:
        session_id = require_id(request.session_id, "session_id")
        draft = draft_from_request(request, InputLimits())
        offset = self._next_offset.get(session_id, 1)
        self._next_offset[session_id] = offset + 1
        event_id = f"evt_{uuid.uuid4().hex}"
        encoded = encode_event(
            Event(
                event_id,
                session_id,
                offset,
                draft.kind,
                draft.source,
                now_us(),
                draft.correlation_id or event_id,
                draft.data_json(),
            )
        )
        if self._durable is not None:
            await self._durable.commit((session_id, offset, encoded))
        return encoded

    async def ListEvents(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor serves CreateEvent only")


class DurableLog:
    """One SQLite file in WAL mode at synchronous=FULL, written by one thread, one commit per
    event: what durability itself costs, without any of Baton's code."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._writer = WorkerThreads(1, "durable-log")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events "
                "(session_id TEXT, offset INTEGER, body BLOB, PRIMARY KEY (session_id, offset))"
            )
            self._conn = conn
        return self._conn

    def _insert(self, rows: list[tuple[str, int, bytes]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")

    async def commit(self, session_id: str, offset: int, body: bytes) -> None:
        await self.commit_many([(session_id, offset, body)])

    async def commit_many(self, rows: list[tuple[str, int, bytes]]) -> None:
        await self._writer.call(lambda: self._insert(rows))


class GroupCommit:
    """Rows queued while a commit runs go into the next one together, as Baton's appender
    batches appends: durability's least cost per call under concurrent load."""

    def __init__(self, log: DurableLog) -> None:
        self._log = log
        self._pending: list[tuple[tuple[str, int, bytes], asyncio.Future[None]]] = []
        self._flushing = False

    async def commit(self, row: tuple[str, int, bytes]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._log.commit_many([row for row, _ in batch])
                for _, done in batch:
                    done.set_result(None)
        finally:
            self._flushing = False


class BaselineEventService(svc.EventServiceServicer):
    """The EventService of one mode (see the module's doc)."""

    def __init__(self, mode: str, replay: list[Any], log: DurableLog | None = None) -> None:
        self._mode = mode
        self._replay = replay
        self._log = log
        self._next_offset: dict[str, int] = {}
        self._queues: dict[str, set[asyncio.Queue[Any]]] = {}

    async def CreateEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self._mode not in ("fanout", "durable_fanout"):
            return _EMPTY_CREATE
        session_id = request.session_id
        offset = self._next_offset.get(session_id, 1)
        self._next_offset[session_id] = offset + 1
        if self._log is not None:
            await self._log.commit(session_id, offset, request.SerializeToString())
        event_id = f"evt_{uuid.uuid4().hex}"
        event = pb.Event(
            id=event_id,
            session_id=session_id,
            offset=offset,
            kind=request.kind,
            source=request.source,
            created_at=now_timestamp(),
            correlation_id=request.correlation_id or event_id,  # as Baton does
            message=request.message,
        )
        for queue in self._queues.get(session_id, ()):
            queue.put_nowait(event)
        return rr.CreateEventResponse(event=event)

    async def ListEvents(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        if not request.follow:
            for response in self._replay:
                yield response
            return
        if self._mode == "idle":
            yield _CAUGHT_UP
            await asyncio.get_running_loop().create_future()
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queues = self._queues.setdefault(request.session_id, set())
        queues.add(queue)
        try:
            yield _CAUGHT_UP
            while True:
                events = [await queue.get()]
                while not queue.empty():
                    events.append(queue.get_nowait())
                yield rr.ListEventsResponse(events=events)
        finally:
            queues.discard(queue)


async def worker_baseline_server(config: dict[str, Any]) -> dict[str, Any]:
    """Serves until SIGTERM (at most an hour); prints `READY {"port": ...}` once listening."""
    mode = config["mode"]
    replay = prebuilt_replay(config["events"], config["text"]) if mode == "replay" else []
    # The same stream limits as Baton's server, nothing else.
    options = [
        ("grpc.max_concurrent_streams", 100_000),
        ("grpc.server.max_pending_requests", 1_000_000),
        ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
    ]
    if mode in ("floor", "durable_floor"):
        server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()], options=options)
        durable = GroupCommit(DurableLog(config["database"])) if mode == "durable_floor" else None
        floor = FloorEventService(durable)
        add_event_service(cast(Any, floor), cast(Any, GenericHandlersOnly(server)))
    else:
        server = grpc.aio.server(options=options)
        log = DurableLog(config["database"]) if mode == "durable_fanout" else None
        service = BaselineEventService(mode, replay, log)
        svc.add_EventServiceServicer_to_server(service, server)
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emit("READY", {"port": port})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), 3600)
    await server.stop(1)
    return {}
