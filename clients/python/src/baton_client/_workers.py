"""`ToolWorker`: serves tools to Baton's agents over ToolWorkerService.ServeTools streams.

One stream per target (a worker connects to every replica). Each stream: `declare`, then the
server's `accepted`, then calls (each handler in its own task), results, heartbeats both ways,
`cancel` (the handler's task is cancelled, nothing is sent). A stream that breaks is opened
again with jittered exponential backoff; a refusal (bad declaration, a name the server owns, a
key without the tool_worker role) ends `run()` with the typed error. `stop()` drains: the
server sends no new calls, the handlers running finish (up to `drain_grace`), the worker
half-closes and waits for the server to end the stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client._client import BatonClient
from baton_client._credentials import Credentials, TokenProvider
from baton_client._follow import Outage, RetryCallback
from baton_client._retry import RetryPolicy
from baton_client._worker_tools import (
    BadArguments,
    ToolResult,
    WorkerCall,
    WorkerTool,
    error_message,
    result_message,
)
from baton_client.errors import as_baton_error

__all__ = ["WORKER_RETRY_CODES", "HeartbeatLost", "ToolWorker"]

log = logging.getLogger("baton_client")

#: Codes after which a worker opens its stream again. Not in it, so raised by `run()`:
#: INVALID_ARGUMENT (a bad declaration), FAILED_PRECONDITION (a tool name the server loads
#: itself), PERMISSION_DENIED / UNAUTHENTICATED (the key), UNIMPLEMENTED (a server without
#: tool workers), NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE, DATA_LOSS.
WORKER_RETRY_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,  # a server shutting down cancels its streams
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

DEFAULT_HEARTBEAT = 15.0
#: The server is presumed gone after this many heartbeat intervals without a message.
MISSED_HEARTBEATS = 3
#: After the half-close of a drain, how long to wait for the server to end the stream.
CLOSE_WAIT = 5.0


class HeartbeatLost(Exception):
    """The server sent nothing for several heartbeat intervals: the stream is presumed dead."""


class ToolWorker:
    """Serves `tools` to the agents of one Baton deployment.

        @worker_tool(description="Look up the delivery status of an order by its number.")
        async def check_order_status(call: WorkerCall, order_id: str) -> ToolResult:
            ...

        worker = ToolWorker(["baton-1:8800", "baton-2:8800"], api_key=key,
                            tools=[check_order_status], name="orders")
        await worker.run()        # until stop() (from a signal handler, another task)

    `targets`: one address, or one per replica (a stream to each). Credentials and transport
    as for `BatonClient` (`api_key`, `token_provider`, `auth`; `ca`, `tls`, `credentials`,
    `insecure`, `options`); the key needs the `tool_worker` role. `name` is shown by ListTools
    (the server makes it unique); `max_concurrent_calls` (1..1000) is the most calls the
    server sends this worker at once, per stream. `reconnect` is the backoff between attempts
    (its `retry_codes` default to `WORKER_RETRY_CODES`; `max_attempts` / `max_elapsed` make
    `run()` raise `RetriesExhausted`); `on_retry(error, delay)` is told before each wait.
    `drain_grace`: seconds `stop()` lets running handlers finish before cancelling them.
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        tools: Sequence[WorkerTool],
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        auth: Credentials | None = None,
        ca: str | os.PathLike[str] | bytes | None = None,
        tls: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        insecure: bool = False,
        options: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
        name: str = "",
        max_concurrent_calls: int = 10,
        reconnect: RetryPolicy | None = None,
        on_retry: RetryCallback | None = None,
        drain_grace: float = 10.0,
    ) -> None:
        addresses = [targets] if isinstance(targets, str) else list(targets)
        if not addresses:
            raise ValueError("give at least one target")
        if len(set(addresses)) != len(addresses):
            raise ValueError("targets must be distinct")
        if not tools:
            raise ValueError("give at least one tool")
        by_name: dict[str, WorkerTool] = {}
        for tool in tools:
            if tool.name in by_name:
                raise ValueError(f"two tools are named {tool.name!r}")
            by_name[tool.name] = tool
        if not 1 <= max_concurrent_calls <= 1000:
            raise ValueError("max_concurrent_calls must be between 1 and 1000")
        if drain_grace < 0:
            raise ValueError("drain_grace must not be negative")
        given = [x for x in (api_key, token_provider, auth) if x is not None]
        if len(given) > 1:
            raise ValueError("pass at most one of api_key, token_provider and auth")
        if auth is None and api_key:
            auth = Credentials(api_key)
        elif auth is None and token_provider is not None:
            auth = Credentials(provider=token_provider)
        self.tools: dict[str, WorkerTool] = by_name
        self.name = name
        self.max_concurrent_calls = max_concurrent_calls
        self.reconnect = reconnect or RetryPolicy(retry_codes=WORKER_RETRY_CODES)
        self.drain_grace = drain_grace
        self._auth = auth
        self._on_retry = on_retry
        self._stopping = asyncio.Event()
        self._ended = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._links = [
            _Link(
                self,
                target,
                BatonClient(
                    target,
                    auth=auth,
                    ca=ca,
                    tls=tls,
                    credentials=credentials,
                    insecure=insecure,
                    options=options,
                ),
            )
            for target in addresses
        ]

    @property
    def targets(self) -> list[str]:
        return [link.target for link in self._links]

    @property
    def worker_ids(self) -> dict[str, str]:
        """Target -> the worker id its server gave the current (or last) stream."""
        return {link.target: link.worker_id for link in self._links}

    @property
    def connections(self) -> dict[str, int]:
        """Target -> how many streams were accepted (1 + successful reconnects)."""
        return {link.target: link.connections for link in self._links}

    def declaration(self) -> rr.WorkerDeclaration:
        return rr.WorkerDeclaration(
            worker_name=self.name,
            tools=[tool.declaration() for tool in self.tools.values()],
            max_concurrent_calls=self.max_concurrent_calls,
        )

    async def run(self) -> None:
        """Serves until `stop()`; raises the first refusal (a `BatonError`) or
        `RetriesExhausted`, after stopping the streams to the other targets."""
        if self._running or self._ended.is_set():
            raise RuntimeError("a ToolWorker runs once")
        self._running = True
        tasks = [
            asyncio.create_task(link.run(), name=f"tool worker {link.target}")
            for link in self._links
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = next((t for t in done if t.exception() is not None), None)
            if failed is not None:
                self._error = failed.exception()
                self._stopping.set()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                assert self._error is not None
                raise self._error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._ended.set()
            for link in self._links:
                await link.client.close()

    def start(self) -> asyncio.Task[None]:
        """Runs the worker in a task (see `wait_accepted`, `stop`); returns the task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="tool worker")
            # Retrieved here so an unawaited failure is not logged as "never retrieved".
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return self._task

    async def wait_accepted(self) -> None:
        """Waits until every target has accepted the declaration (bound it with
        `asyncio.timeout`); raises the error that ended the worker, if it ended first."""
        accepted = asyncio.create_task(self._all_accepted())
        ended = asyncio.create_task(self._ended.wait())
        try:
            await asyncio.wait([ended, accepted], return_when=asyncio.FIRST_COMPLETED)
        finally:
            accepted.cancel()
            ended.cancel()
        if all(link.accepted.is_set() for link in self._links):
            return
        if self._error is not None:
            raise self._error
        raise RuntimeError("the tool worker stopped before every target accepted it")

    async def _all_accepted(self) -> None:
        for link in self._links:
            await link.accepted.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful drain on every stream: `drain`, running handlers finish (up to `grace`,
        default `drain_grace`; the rest are cancelled), half-close, the server ends the
        stream. Returns once `run()` has ended (when it was started)."""
        self._stopping.set()
        wait = self.drain_grace if grace is None else grace
        await asyncio.gather(*(link.drain(wait) for link in self._links))
        if self._running:
            await self._ended.wait()

    async def __aenter__(self) -> ToolWorker:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@dataclass
class _Stream:
    """One open ServeTools call and what runs on it."""

    call: grpc.aio.StreamStreamCall[rr.ServeToolsRequest, rr.ServeToolsResponse]
    outbox: asyncio.Queue[rr.ServeToolsRequest | None] = field(default_factory=asyncio.Queue)
    handlers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    accepted: bool = False
    draining: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class _Link:
    """The stream to one target, opened again after each break."""

    def __init__(self, worker: ToolWorker, target: str, client: BatonClient) -> None:
        self.worker = worker
        self.target = target
        self.client = client
        self.stub: svc.ToolWorkerServiceAsyncStub = svc.ToolWorkerServiceStub(client.channel)
        self.accepted = asyncio.Event()
        self.worker_id = ""
        self.connections = 0
        self._stream: _Stream | None = None

    async def run(self) -> None:
        worker = self.worker
        policy = worker.reconnect
        outage = Outage(policy, f"serving tools on {self.target}")
        failures = 0
        refreshed = False  # opened once with a fresh token since the last accepted stream
        while not worker._stopping.is_set():
            error: BaseException | None = None
            accepted_before = self.connections
            try:
                await self._session()
            except grpc.aio.AioRpcError as raw:
                exc = as_baton_error(raw)
                auth = worker._auth
                if (
                    exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    and not refreshed
                    and auth is not None
                    and auth.invalidate()
                ):
                    refreshed = True
                    continue
                if worker._stopping.is_set():
                    return
                if exc.code() not in policy.retry_codes:
                    raise exc from None
                error = exc
            except HeartbeatLost as lost:
                error = lost
            if worker._stopping.is_set():
                return
            if self.connections > accepted_before:
                failures, refreshed = 0, False
                outage.ended()
            failures += 1
            waiting = asyncio.create_task(
                outage.wait(failures, error, "with a new declaration", worker._on_retry)
            )
            stopping = asyncio.create_task(worker._stopping.wait())
            try:
                await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not waiting.done():
                    waiting.cancel()
            if waiting.done() and not waiting.cancelled() and waiting.exception() is not None:
                raise waiting.exception()  # type: ignore[misc]  # RetriesExhausted

    async def _session(self) -> None:
        worker = self.worker
        metadata: tuple[tuple[str, str], ...] = ()
        if worker._auth is not None:
            metadata = (("authorization", f"Bearer {await worker._auth.token()}"),)
        stream = _Stream(self.stub.ServeTools(metadata=metadata))
        self._stream = stream
        writer = asyncio.create_task(_write(stream))
        heartbeats: asyncio.Task[None] | None = None
        try:
            stream.outbox.put_nowait(rr.ServeToolsRequest(declare=worker.declaration()))
            first = await _read(stream)
            if first is None:
                return  # ended before accepting: reconnect
            if not first.HasField("accepted"):
                log.warning("tool worker %s: expected accepted, got %s", self.target, first)
                return
            interval = DEFAULT_HEARTBEAT
            if first.accepted.HasField("heartbeat_interval"):
                seconds = first.accepted.heartbeat_interval.ToNanoseconds() / 1e9
                interval = seconds if seconds > 0 else DEFAULT_HEARTBEAT
            self.worker_id = first.accepted.worker_id
            self.connections += 1
            stream.accepted = True
            self.accepted.set()
            log.info("tool worker %s: accepted as %s", self.target, self.worker_id)
            if worker._stopping.is_set():
                return  # stop() came while connecting; its drain saw no stream
            heartbeats = asyncio.create_task(_heartbeats(stream, interval))
            while True:
                try:
                    async with asyncio.timeout(interval * MISSED_HEARTBEATS):
                        message = await _read(stream)
                except TimeoutError:
                    raise HeartbeatLost(
                        f"no message from the server for {interval * MISSED_HEARTBEATS:g}s"
                    ) from None
                if message is None:
                    return
                kind = message.WhichOneof("kind")
                if kind == "call":
                    self._start_call(stream, message.call)
                elif kind == "cancel":
                    task = stream.handlers.pop(message.cancel.call_id, None)
                    if task is not None:
                        log.info(
                            "tool worker %s: call %s cancelled: %s",
                            self.target,
                            message.cancel.call_id,
                            message.cancel.reason,
                        )
                        task.cancel()
        finally:
            stream.ended.set()
            self._stream = None
            for task in stream.handlers.values():
                task.cancel()  # the stream is gone: their results cannot be delivered
            for task in (writer, heartbeats):
                if task is not None:
                    task.cancel()
            stream.call.cancel()

    def _start_call(self, stream: _Stream, request: rr.ToolCallRequest) -> None:
        call = WorkerCall.from_request(request, self.worker_id, self.target)
        task = asyncio.create_task(self._serve(stream, call), name=f"tool call {call.call_id}")
        stream.handlers[call.call_id] = task
        task.add_done_callback(lambda _: _forget(stream, call.call_id, task))

    async def _serve(self, stream: _Stream, call: WorkerCall) -> None:
        tool = self.worker.tools.get(call.tool)
        if tool is None:
            result = error_message(call.call_id, f"this worker does not serve {call.tool!r}")
        else:
            try:
                returned: ToolResult = await tool.run(call)
            except BadArguments as error:
                result = error_message(call.call_id, str(error))
            except Exception as error:  # the tool failed: an error result, the worker stays up
                log.warning("tool %s (call %s) failed", call.tool, call.call_id, exc_info=True)
                result = error_message(call.call_id, str(error) or type(error).__name__)
            else:
                result = result_message(call.call_id, returned)
        if stream.handlers.get(call.call_id) is asyncio.current_task():
            stream.outbox.put_nowait(rr.ServeToolsRequest(result=result))

    async def drain(self, grace: float) -> None:
        stream = self._stream
        if stream is None:
            return  # between streams: run() sees the stop and ends
        if not stream.accepted:
            stream.call.cancel()
            return
        stream.draining = True
        stream.outbox.put_nowait(rr.ServeToolsRequest(drain=rr.WorkerDrain()))
        # Calls the server sent before it read the drain may still arrive: wait for them too.
        deadline = time.monotonic() + grace
        while stream.handlers:
            left = deadline - time.monotonic()
            if left <= 0:
                for task in list(stream.handlers.values()):
                    log.warning(
                        "tool worker %s: cancelling %s after the drain grace",
                        self.target,
                        task.get_name(),
                    )
                    task.cancel()
                break
            await asyncio.wait(list(stream.handlers.values()), timeout=left)
        stream.outbox.put_nowait(None)  # half-close once the results are queued
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                await stream.ended.wait()
        except TimeoutError:
            stream.call.cancel()


def _forget(stream: _Stream, call_id: str, task: asyncio.Task[None]) -> None:
    if stream.handlers.get(call_id) is task:
        del stream.handlers[call_id]


async def _read(stream: _Stream) -> rr.ServeToolsResponse | None:
    """The server's next message; None once it ended the stream with OK."""
    message = await stream.call.read()
    if isinstance(message, rr.ServeToolsResponse):
        return message
    return None  # grpc.aio.EOF


async def _write(stream: _Stream) -> None:
    """The only writer of a stream (grpc.aio allows one write at a time)."""
    try:
        while True:
            request = await stream.outbox.get()
            if request is None:
                await stream.call.done_writing()
                return
            await stream.call.write(request)
    except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
        return  # the call is over; the reader reports why


async def _heartbeats(stream: _Stream, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        if stream.draining:
            return
        now = Timestamp()
        now.FromNanoseconds(time.time_ns())
        stream.outbox.put_nowait(rr.ServeToolsRequest(heartbeat=rr.WorkerHeartbeat(time=now)))
