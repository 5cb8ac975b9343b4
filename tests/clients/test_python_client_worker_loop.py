"""The Python ToolWorker's stream handling against a scripted grpc.aio ToolWorkerService: the
conditions a real server rarely produces on demand (silence, a refusal mid-way, a drain racing
calls). The end-to-end tests against `baton serve` are in test_python_client_workers_live.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import json_format

from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client import (
    FailedPrecondition,
    RetryPolicy,
    ToolResult,
    ToolWorker,
    WorkerCall,
    handoff,
    worker_tool,
)

FAST = RetryPolicy(
    initial_delay=0.01,
    max_delay=0.05,
    retry_codes=frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}),
)


@dataclass
class ServerStream:
    """One ServeTools call as the scripted server sees it."""

    received: asyncio.Queue[rr.ServeToolsRequest] = field(default_factory=asyncio.Queue)
    out: asyncio.Queue[rr.ServeToolsResponse | grpc.StatusCode | None] = field(
        default_factory=asyncio.Queue
    )
    half_closed: asyncio.Event = field(default_factory=asyncio.Event)
    metadata: dict[str, str] = field(default_factory=dict)

    async def next(self, skip_heartbeats: bool = True) -> rr.ServeToolsRequest:
        async with asyncio.timeout(5):
            while True:
                request = await self.received.get()
                if not (skip_heartbeats and request.HasField("heartbeat")):
                    return request

    def accept(self, worker_id: str = "w-1", heartbeat: float = 15.0) -> None:
        accepted = rr.WorkerAccepted(worker_id=worker_id)
        accepted.heartbeat_interval.FromNanoseconds(int(heartbeat * 1e9))
        self.out.put_nowait(rr.ServeToolsResponse(accepted=accepted))

    def call(self, call_id: str, tool: str, **arguments: object) -> None:
        request = rr.ToolCallRequest(call_id=call_id, tool=tool, session_id="ses_1", attempt=1)
        request.arguments.update(arguments)
        self.out.put_nowait(rr.ServeToolsResponse(call=request))

    def cancel(self, call_id: str) -> None:
        self.out.put_nowait(
            rr.ServeToolsResponse(cancel=rr.ToolCallCancel(call_id=call_id, reason="deadline"))
        )


class Scripted(svc.ToolWorkerServiceServicer):
    def __init__(self) -> None:
        self.streams: asyncio.Queue[ServerStream] = asyncio.Queue()

    async def ServeTools(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[rr.ServeToolsRequest],
        context: grpc.aio.ServicerContext[rr.ServeToolsRequest, rr.ServeToolsResponse],
    ) -> AsyncIterator[rr.ServeToolsResponse]:
        stream = ServerStream()
        stream.metadata = {
            key: value
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str)
        }
        await self.streams.put(stream)

        async def pump() -> None:
            async for request in request_iterator:
                await stream.received.put(request)
            stream.half_closed.set()
            await stream.out.put(None)  # like Baton: a drained worker's half-close ends it

        reader = asyncio.create_task(pump())
        try:
            while True:
                item = await stream.out.get()
                if item is None:
                    return
                if isinstance(item, grpc.StatusCode):
                    await context.abort(item, f"scripted {item.name}")
                yield item
        finally:
            reader.cancel()

    async def next_stream(self) -> ServerStream:
        async with asyncio.timeout(5):
            return await self.streams.get()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    server = grpc.aio.server()
    servicer = Scripted()
    svc.add_ToolWorkerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)


@worker_tool(description="Look up the delivery status of an order by its number.")
async def check_order_status(call: WorkerCall, order_id: str) -> ToolResult:
    digits = "".join(ch for ch in order_id if ch.isdigit())
    if not digits:
        raise ValueError("no digits in the order number")
    return ToolResult(data={"found": True, "order": digits[-8:], "status": "in transit"})


async def test_declares_runs_calls_and_answers(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    worker = ToolWorker(target, tools=[check_order_status], name="orders", reconnect=FAST)
    worker.start()
    stream = await servicer.next_stream()
    declare = (await stream.next()).declare
    assert declare.worker_name == "orders" and declare.max_concurrent_calls == 10
    assert [t.name for t in declare.tools] == ["check_order_status"]
    stream.accept("orders-1")
    async with asyncio.timeout(5):
        await worker.wait_accepted()
    assert worker.worker_ids == {target: "orders-1"}

    stream.call("c1", "check_order_status", order_id="A-48213")
    result = (await stream.next()).result
    assert result.call_id == "c1" and not result.error
    assert json_format.MessageToDict(result.data) == {
        "found": True,
        "order": "48213",
        "status": "in transit",
    }
    stream.call("c2", "check_order_status", order_id="none")
    assert (await stream.next()).result.error == "no digits in the order number"
    stream.call("c3", "nope")
    assert (await stream.next()).result.error == "this worker does not serve 'nope'"
    stream.call("c4", "check_order_status")
    assert "order_id" in (await stream.next()).result.error
    await worker.stop()


async def test_cancel_cancels_the_handler_and_sends_nothing(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    started, cancelled = asyncio.Event(), asyncio.Event()

    @worker_tool
    async def slow(call: WorkerCall) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    worker = ToolWorker(target, tools=[slow, check_order_status], reconnect=FAST)
    worker.start()
    stream = await servicer.next_stream()
    await stream.next()
    stream.accept()
    stream.call("c1", "slow")
    async with asyncio.timeout(5):
        await started.wait()
    stream.cancel("c1")
    async with asyncio.timeout(5):
        await cancelled.wait()
    stream.call("c2", "check_order_status", order_id="7")
    assert (await stream.next()).result.call_id == "c2"  # nothing was sent for c1
    await worker.stop()


async def test_a_refusal_ends_run_with_the_typed_error(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    worker = ToolWorker(target, tools=[check_order_status], reconnect=FAST)
    task = worker.start()
    stream = await servicer.next_stream()
    await stream.next()
    stream.out.put_nowait(grpc.StatusCode.FAILED_PRECONDITION)
    with pytest.raises(FailedPrecondition):
        async with asyncio.timeout(5):
            await worker.wait_accepted()
    with pytest.raises(FailedPrecondition):
        await task
    assert servicer.streams.empty(), "a refusal is not retried"


async def test_reconnects_and_declares_again(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    worker = ToolWorker(target, tools=[check_order_status], reconnect=FAST)
    worker.start()
    first = await servicer.next_stream()
    await first.next()
    first.accept("w-1")
    first.out.put_nowait(grpc.StatusCode.UNAVAILABLE)
    second = await servicer.next_stream()
    assert (await second.next()).HasField("declare")
    second.accept("w-2")
    second.call("c9", "check_order_status", order_id="42")
    assert (await second.next()).result.call_id == "c9"
    assert worker.connections == {target: 2}
    assert worker.worker_ids == {target: "w-2"}
    await worker.stop()


async def test_heartbeats_and_a_silent_server(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    worker = ToolWorker(target, tools=[check_order_status], reconnect=FAST)
    worker.start()
    first = await servicer.next_stream()
    await first.next()
    first.accept(heartbeat=0.05)
    assert (await first.next(skip_heartbeats=False)).HasField("heartbeat")
    # Nothing more from the server: after three intervals the worker opens another stream.
    second = await servicer.next_stream()
    assert (await second.next()).HasField("declare")
    await worker.stop(grace=0)


async def test_stop_drains_then_half_closes(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    started, release = asyncio.Event(), asyncio.Event()

    @worker_tool
    async def transfer(call: WorkerCall, reason: str) -> ToolResult:
        started.set()
        await release.wait()
        return handoff(reason, {"handoff": "requested"})

    worker = ToolWorker(target, tools=[transfer], reconnect=FAST)
    task = worker.start()
    stream = await servicer.next_stream()
    await stream.next()
    stream.accept()
    stream.call("c1", "transfer", reason="asked for a human")
    async with asyncio.timeout(5):
        await started.wait()
    stopping = asyncio.create_task(worker.stop(grace=5))
    assert (await stream.next()).HasField("drain")
    assert not stream.half_closed.is_set()
    release.set()
    result = (await stream.next()).result
    assert dict(result.control) == {"mode": "manual", "reason": "asked for a human"}
    async with asyncio.timeout(5):
        await stream.half_closed.wait()
        await stopping
    assert task.done() and task.exception() is None
    assert servicer.streams.empty(), "no reconnect after a drain"


async def test_drain_grace_cancels_late_handlers(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    started, cancelled = asyncio.Event(), asyncio.Event()

    @worker_tool
    async def stuck(call: WorkerCall) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = ToolWorker(target, tools=[stuck], reconnect=FAST, drain_grace=0.1)
    worker.start()
    stream = await servicer.next_stream()
    await stream.next()
    stream.accept()
    stream.call("c1", "stuck")
    async with asyncio.timeout(5):
        await started.wait()
    async with asyncio.timeout(5):
        await worker.stop()
    assert cancelled.is_set()
    assert stream.half_closed.is_set()
    assert (await stream.next()).HasField("drain")
    assert stream.received.empty(), "no result for a call cancelled by the drain"


async def test_unauthenticated_asks_the_provider_again_once(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    tokens = iter(["expired", "fresh", "never-asked"])
    worker = ToolWorker(
        target, token_provider=lambda: next(tokens), tools=[check_order_status], reconnect=FAST
    )
    worker.start()
    first = await servicer.next_stream()
    assert first.metadata.get("authorization") == "Bearer expired"
    first.out.put_nowait(grpc.StatusCode.UNAUTHENTICATED)
    second = await servicer.next_stream()
    assert second.metadata.get("authorization") == "Bearer fresh"
    await second.next()
    second.accept()
    async with asyncio.timeout(5):
        await worker.wait_accepted()
    await worker.stop()
