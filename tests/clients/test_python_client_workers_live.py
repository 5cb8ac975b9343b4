"""The Python ToolWorker against a real `baton serve` process with authentication on: the example
agent's tools served by the worker in a turn, a handoff opened by its control, refusals as typed
errors, a reconnect across a server restart, a graceful drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from typer.testing import CliRunner

from baton.v1 import message_pb2 as pb
from baton_client import (
    BatonClient,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    RetryPolicy,
    ToolResult,
    ToolWorker,
    WorkerCall,
    WorkerTool,
    handoff,
    worker_tool,
)
from baton_server.cli import app as cli_app
from tests.support import ServerProcess

FAST = RetryPolicy(initial_delay=0.05, max_delay=0.5)
WAIT = 20.0


@worker_tool(description="Look up the delivery status of an order by its number.")
async def check_order_status(call: WorkerCall, order_id: str) -> ToolResult:
    digits = "".join(ch for ch in order_id if ch.isdigit())
    if not digits:
        return ToolResult(data={"found": False, "hint": "ask for the order number"})
    return ToolResult(data={"found": True, "order": digits[-8:], "status": "in transit"})


@worker_tool(description="Hand the conversation to a human agent; the AI stops answering.")
async def initiate_human_handoff(call: WorkerCall, reason: str) -> ToolResult:
    return handoff(reason, {"handoff": "requested", "reason": reason})


class AuthServer(ServerProcess):
    """`baton serve` with authentication on (ServerProcess runs --dev)."""

    def argv(self) -> list[str]:
        return [arg for arg in super().argv() if arg != "--dev"]


def create_key(database_url: str, role: str) -> str:
    result = CliRunner().invoke(
        cli_app, ["keys", "create", "--role", role, "--name", role, "--database", database_url]
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"


@pytest.fixture
def keys(database: str) -> dict[str, str]:
    return {role: create_key(database, role) for role in ("tool_worker", "integration")}


def serve(database: str, *extra: str) -> Iterator[AuthServer]:
    server = AuthServer(database, "--example-agent", "--offline-matcher", "lexical", *extra)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def workers_server(database: str, keys: dict[str, str]) -> Iterator[AuthServer]:
    """The example agent without its Python tools: workers serve them."""
    yield from serve(database, "--example-agent-tools", "workers")


@pytest.fixture
async def integration(
    workers_server: AuthServer, keys: dict[str, str]
) -> AsyncIterator[BatonClient]:
    async with BatonClient(workers_server.target, api_key=keys["integration"]) as client:
        yield client


async def tool_calls(client: BatonClient, session_id: str, text: str) -> list[pb.ToolCall]:
    """Sends a customer message and returns the tool calls of its turn (once it is READY)."""
    sent = await client.events.send_message(session_id, text, source="CUSTOMER")
    calls: list[pb.ToolCall] = []
    async with asyncio.timeout(WAIT):
        async for event in client.follow(session_id, sent.offset + 1):
            if event.correlation_id != sent.id:
                continue
            if event.WhichOneof("data") == "tool":
                calls.extend(event.tool.tool_calls)
            if event.WhichOneof("data") == "status" and event.status.status == pb.STATUS_READY:
                return calls
    raise AssertionError("unreachable")


async def example_session(client: BatonClient) -> str:
    agents = await client.agents.list()
    (agent,) = [a for a in agents.agents if a.name == "Baton Support (example)"]
    customer = await client.customers.create("Cy")
    session = await client.sessions.create(agent_id=agent.id, customer_id=customer.id)
    return session.id


async def test_the_example_agent_runs_its_tools_in_the_worker(
    workers_server: AuthServer, integration: BatonClient, keys: dict[str, str]
) -> None:
    seen: list[WorkerCall] = []

    @worker_tool(name="check_order_status", description=check_order_status.description)
    async def recorded(call: WorkerCall, order_id: str) -> ToolResult:
        seen.append(call)
        return await check_order_status.handler(call, order_id)

    worker = ToolWorker(
        workers_server.target,
        api_key=keys["tool_worker"],
        tools=[recorded, initiate_human_handoff],
        name="py-live",
        reconnect=FAST,
    )
    async with worker:
        async with asyncio.timeout(WAIT):
            await worker.wait_accepted()
        worker_id = worker.worker_ids[workers_server.target]
        listed = {t.name: t for t in await integration.tools.list()}
        assert listed["check_order_status"].origin == pb.TOOL_ORIGIN_WORKER
        assert [w.worker_id for w in listed["check_order_status"].workers] == [worker_id]

        session_id = await example_session(integration)
        (lookup,) = await tool_calls(integration, session_id, "hi, has my order #48213 shipped?")
        assert lookup.name == "check_order_status" and not lookup.error
        assert json_format.MessageToDict(lookup.result) == {
            "found": True,
            "order": "48213",
            "status": "in transit",
        }
        (call,) = seen
        assert call.session_id == session_id and call.attempt == 1 and call.deadline is not None
        assert call.worker_id == worker_id

        (transfer,) = await tool_calls(integration, session_id, "can I talk to a human please?")
        assert transfer.name == "initiate_human_handoff" and not transfer.error
        session = await integration.sessions.get(session_id)
        assert session.mode == pb.SESSION_MODE_MANUAL  # the worker's control opened a handoff
    # Drained and gone: the catalogue no longer lists a worker for the tool.
    listed = {t.name: t for t in await integration.tools.list()}
    assert not listed.get("check_order_status") or not listed["check_order_status"].workers


async def test_a_key_without_the_role_is_refused(
    workers_server: AuthServer, keys: dict[str, str]
) -> None:
    worker = ToolWorker(
        workers_server.target, api_key=keys["integration"], tools=[check_order_status]
    )
    task = worker.start()
    with pytest.raises(PermissionDenied):
        async with asyncio.timeout(WAIT):
            await worker.wait_accepted()
    with pytest.raises(PermissionDenied):
        await task


async def test_a_bad_declaration_is_refused_with_the_field(
    workers_server: AuthServer, keys: dict[str, str]
) -> None:
    bad = WorkerTool(
        name="check-order",  # a dash: not a tool name
        description="",
        parameters={"type": "object", "properties": {}},
        handler=check_order_status.handler,
    )
    worker = ToolWorker(workers_server.target, api_key=keys["tool_worker"], tools=[bad])
    worker.start()
    with pytest.raises(InvalidArgument) as refused:
        async with asyncio.timeout(WAIT):
            await worker.wait_accepted()
    assert refused.value.field_violations, refused.value


async def test_a_name_the_server_loads_itself_is_refused(
    database: str, keys: dict[str, str]
) -> None:
    for server in serve(database):  # the example agent WITH its Python tools
        worker = ToolWorker(server.target, api_key=keys["tool_worker"], tools=[check_order_status])
        worker.start()
        with pytest.raises(FailedPrecondition):
            async with asyncio.timeout(WAIT):
                await worker.wait_accepted()


async def test_the_worker_declares_again_after_a_server_restart(
    workers_server: AuthServer, integration: BatonClient, keys: dict[str, str]
) -> None:
    retries: list[BaseException | None] = []
    worker = ToolWorker(
        workers_server.target,
        api_key=keys["tool_worker"],
        tools=[check_order_status, initiate_human_handoff],
        reconnect=FAST,
        on_retry=lambda error, delay: retries.append(error),
    )
    async with worker:
        async with asyncio.timeout(WAIT):
            await worker.wait_accepted()
        port = workers_server.port
        workers_server.terminate()
        workers_server.extra_args = (*workers_server.extra_args, "--port", str(port))
        workers_server.start()
        assert workers_server.port == port
        async with asyncio.timeout(WAIT):
            while worker.connections[workers_server.target] < 2:
                await asyncio.sleep(0.02)
        assert retries, "the break was noticed and backed off"
        session_id = await example_session(integration)
        (lookup,) = await tool_calls(integration, session_id, "where is order 77?")
        assert lookup.name == "check_order_status" and not lookup.error


async def test_stop_lets_a_running_call_finish(
    workers_server: AuthServer, integration: BatonClient, keys: dict[str, str]
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    @worker_tool(name="check_order_status", description=check_order_status.description)
    async def slow_lookup(call: WorkerCall, order_id: str) -> ToolResult:
        started.set()
        await release.wait()
        return await check_order_status.handler(call, order_id)

    worker = ToolWorker(
        workers_server.target,
        api_key=keys["tool_worker"],
        tools=[slow_lookup],
        reconnect=FAST,
    )
    run = worker.start()
    async with asyncio.timeout(WAIT):
        await worker.wait_accepted()
    session_id = await example_session(integration)
    turn = asyncio.create_task(tool_calls(integration, session_id, "where is my order 4711?"))
    async with asyncio.timeout(WAIT):
        await started.wait()
    stopping = asyncio.create_task(worker.stop(grace=10))
    # A negative check needs a window: stop must still be waiting for the running call.
    finished, _ = await asyncio.wait({stopping}, timeout=0.3)
    assert not finished, "stop waits for the running call"
    release.set()
    async with asyncio.timeout(WAIT):
        await stopping
        (lookup,) = await turn
    assert not lookup.error, lookup.error  # the result made it through the drain
    assert json_format.MessageToDict(lookup.result)["order"] == "4711"
    assert run.done() and run.exception() is None
    listed = {t.name: t for t in await integration.tools.list()}
    assert not listed["check_order_status"].workers


async def test_a_call_past_its_timeout_is_cancelled_in_the_worker(
    workers_server: AuthServer, integration: BatonClient, keys: dict[str, str]
) -> None:
    cancelled = asyncio.Event()

    @worker_tool(name="check_order_status", description="Look up an order.", timeout=0.3)
    async def hanging(call: WorkerCall, order_id: str) -> ToolResult:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ToolResult(data="late")

    async with ToolWorker(
        workers_server.target, api_key=keys["tool_worker"], tools=[hanging], reconnect=FAST
    ) as worker:
        async with asyncio.timeout(WAIT):
            await worker.wait_accepted()
        session_id = await example_session(integration)
        (lookup,) = await tool_calls(integration, session_id, "where is my order 4711?")
        assert lookup.error, "the call failed at its deadline"
        async with asyncio.timeout(WAIT):
            await cancelled.wait()  # and the server told the worker to stop it


async def test_one_stream_per_replica_and_a_refusal_closes_them_all(
    keys: dict[str, str], database: str
) -> None:
    # Two replicas sharing the database: the worker declares to both.
    servers = [serve(database, "--example-agent-tools", "workers") for _ in range(2)]
    first, second = [next(server) for server in servers]
    worker = ToolWorker(
        [first.target, second.target],
        api_key=keys["tool_worker"],
        tools=[check_order_status, initiate_human_handoff],
        reconnect=FAST,
    )
    async with worker:
        async with asyncio.timeout(WAIT):
            await worker.wait_accepted()
        assert all(worker.worker_ids.values()) and len(worker.worker_ids) == 2
        for server in (first, second):
            async with BatonClient(server.target, api_key=keys["integration"]) as client:
                listed = {t.name: t for t in await client.tools.list()}
                assert [w.worker_id for w in listed["check_order_status"].workers] == [
                    worker.worker_ids[server.target]
                ]
    for server in servers:
        server.close()

    # A replica that loads the tool itself refuses: the worker ends, leaving the other too.
    python_tools = serve(database)  # the example agent WITH its Python tools
    refusing = next(python_tools)
    workers = serve(database, "--example-agent-tools", "workers")
    accepting = next(workers)
    try:
        worker = ToolWorker(
            [accepting.target, refusing.target],
            api_key=keys["tool_worker"],
            tools=[check_order_status],
            reconnect=FAST,
        )
        with pytest.raises(FailedPrecondition):
            async with asyncio.timeout(WAIT):
                await worker.run()
        async with BatonClient(accepting.target, api_key=keys["integration"]) as client:
            async with asyncio.timeout(WAIT):
                while any(t.workers for t in await client.tools.list()):
                    await asyncio.sleep(0.05)
    finally:
        python_tools.close()
        workers.close()
