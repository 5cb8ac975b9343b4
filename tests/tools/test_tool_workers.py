"""Tools served by workers over ToolWorkerService.ServeTools, end to end: a real server (SQLite
and PostgreSQL), the offline engine, the example agent with its tools served by test workers."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.engine.test_turns import add_guideline, ends_with, open_session, turn_events
from tests.observe.scrape import Scrape
from tests.support import Stubs, bad_request_fields, error_reason, wait_until
from tests.worker_harness import RawWorker, declared, result

WORKER_TOOLS = {"example_agent_tools": "workers"}
ORDER = "check_order_status"
HANDOFF = "initiate_human_handoff"
# The parameters the example's Python tools have, as their workers declare them.
ORDER_ARGS = {"properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
HANDOFF_ARGS = {"properties": {"reason": {"type": "string"}}, "required": ["reason"]}


def order_tool(**options: Any) -> rr.ToolDeclaration:
    return declared(ORDER, **options, **ORDER_ARGS)


def tool_calls(events: list[pb.Event]) -> list[pb.ToolCall]:
    return [call for e in events if e.WhichOneof("data") == "tool" for call in e.tool.tool_calls]


async def order_answer(call: rr.ToolCallRequest) -> rr.ToolCallResult:
    order = call.arguments["order_id"]
    return result(call, {"found": True, "order": order, "status": "in transit", "by": "worker"})


async def connected(baton: Stubs, *tools: rr.ToolDeclaration, **options: Any) -> RawWorker:
    worker = RawWorker(baton.channel, list(tools), **options)
    await worker.start()
    return worker


async def test_a_worker_serves_a_tool_in_a_turn(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server, **WORKER_TOOLS)
    worker = await connected(baton, order_tool(), auto=order_answer)
    ask = await baton.say(session.id, "Where is my order 12345?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [call] = tool_calls(events)
    assert call.name == ORDER and not call.error
    assert call.result.struct_value["by"] == "worker"
    assert call.result.struct_value["order"] == "12345"
    [sent] = worker.received
    assert sent.tool == ORDER and dict(sent.arguments) == {"order_id": "12345"}
    assert (sent.session_id, sent.correlation_id, sent.attempt) == (session.id, ask.id, 1)
    assert sent.agent_id == app.example_agent_id and sent.customer_id == session.customer_id
    assert sent.deadline.ToSeconds() > 0
    reply = [e for e in events if e.WhichOneof("data") == "message"][-1]
    assert "in transit" in reply.message.text
    await worker.close()


async def test_a_workers_control_opens_a_handoff(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server, **WORKER_TOOLS)

    async def hand_off(call: rr.ToolCallRequest) -> rr.ToolCallResult:
        return result(call, {"queued": True}, control={"mode": "manual"})

    # Connected first (so idle longest), but it serves another tool: it sees none of the calls.
    bystander = await connected(baton, order_tool(), name="orders")
    worker = await connected(baton, declared(HANDOFF, **HANDOFF_ARGS), auto=hand_off)
    ask = await baton.say(session.id, "Can I talk to a human please?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [call] = tool_calls(events)
    assert call.name == HANDOFF and not call.error
    kinds = [e.custom["type"] for e in events if e.WhichOneof("data") == "custom"]
    assert "baton.handoff_requested" in kinds
    got = await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    assert got.session.mode == pb.SESSION_MODE_MANUAL
    handoffs = await baton.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    assert [h.state for h in handoffs.handoffs] == [pb.HANDOFF_STATE_PENDING]
    assert bystander.received == [] and len(worker.received) == 1
    await worker.close()
    await bystander.close()


async def test_a_call_past_its_deadline_is_a_tool_error_and_the_worker_is_told(
    start_server,  # type: ignore[no-untyped-def]
) -> None:
    _, baton, session, stream = await open_session(start_server, **WORKER_TOOLS)
    worker = await connected(baton, order_tool(timeout_s=0.3))
    ask = await baton.say(session.id, "Where is my order 12345?")
    call = await worker.next_call()
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [recorded] = tool_calls(events)
    assert recorded.error == "timed out after 0.3 s"
    assert [c.call_id for c in worker.cancels] == [call.call_id]
    # A late answer is ignored, and the worker is free for the next call.
    await worker.answer(call, {"late": True})
    again = await baton.say(session.id, "Where is my order 777?")
    next_call = await worker.next_call()
    await worker.answer(next_call, {"found": True, "order": "777", "status": "in transit"})
    events = await turn_events(stream, again.id, ends_with(pb.STATUS_READY))
    assert [c.error for c in tool_calls(events)] == [""]
    await worker.close()


@pytest.mark.parametrize("retry_safe", [True, False])
async def test_a_worker_that_disconnects_mid_call(start_server, retry_safe: bool) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server, **WORKER_TOOLS)
    first = await connected(baton, order_tool(retry_safe=retry_safe), name="first")
    ask = await baton.say(session.id, "Where is my order 12345?")
    call = await first.next_call()
    second = await connected(baton, order_tool(retry_safe=retry_safe), name="second")
    await first.cut()
    if retry_safe:
        again = await second.next_call()
        assert (again.call_id, again.attempt) == (call.call_id, 2)
        await second.answer(again, {"found": True, "order": "12345", "status": "in transit"})
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [recorded] = tool_calls(events)
    if retry_safe:
        assert recorded.error == "" and recorded.result.struct_value["order"] == "12345"
    else:
        assert "disconnected during the call" in recorded.error
        assert "not declared retry_safe" in recorded.error
        assert second.received == []
    await second.close()


async def test_no_worker_for_a_tool_fails_the_call_at_once(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server, **WORKER_TOOLS)
    # A worker declared the tool (so the catalogue knows it) and stopped.
    worker = await connected(baton, order_tool())
    assert await worker.finish() == grpc.StatusCode.OK
    ask = await baton.say(session.id, "Where is my order 12345?")
    async with asyncio.timeout(5):  # far below the default tool timeout (10 s)
        events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [recorded] = tool_calls(events)
    assert (
        recorded.error == "no tool worker serving 'check_order_status' is connected to this server"
    )


async def test_two_workers_share_calls_and_each_keeps_its_limit(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, *_ = await open_session(start_server, **WORKER_TOOLS)
    one = await connected(baton, order_tool(), name="one", limit=1)
    two = await connected(baton, order_tool(), name="two", limit=1)
    sessions = []
    for _ in range(3):
        customer = await baton.customers.CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
        )
        created = await baton.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=app.example_agent_id, customer_id=customer.customer.id)
            )
        )
        sessions.append(created.session.id)
    for session_id in sessions:
        await baton.say(session_id, "Where is my order 12345?")
    held = [await one.next_call(), await two.next_call()]
    # Both are at their limit: the third call waits for room instead of overloading one, and
    # goes to the first worker that has room.
    await one.answer(held[0], {"found": True, "order": "1", "status": "in transit"})
    third = await one.next_call()
    assert len(one.received) == 2 and len(two.received) == 1
    assert one.most_outstanding == 1 and two.most_outstanding == 1
    await one.answer(third, {"found": True, "order": "3", "status": "in transit"})
    await two.answer(held[1], {"found": True, "order": "2", "status": "in transit"})
    await one.close()
    await two.close()


async def test_list_tools_shows_worker_tools_and_their_workers(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, *_ = await open_session(
        start_server, **WORKER_TOOLS, tool_modules=("tests.engine_tools",)
    )
    before = await baton.tools.ListTools(rr.ListToolsRequest())
    assert ORDER not in {t.name for t in before.tools}
    worker = await connected(
        baton, order_tool(timeout_s=2.5, retry_safe=True), name="orders", limit=4
    )
    listed = {t.name: t for t in (await baton.tools.ListTools(rr.ListToolsRequest())).tools}
    tool = listed[ORDER]
    assert tool.origin == pb.TOOL_ORIGIN_WORKER and tool.retry_safe
    assert tool.timeout.ToMilliseconds() == 2500
    [shown] = tool.workers
    assert shown.worker_id == worker.accepted.worker_id and shown.worker_id.startswith("orders-")
    assert shown.max_concurrent_calls == 4 and shown.calls_in_flight == 0
    python_tools = [t for t in listed.values() if t.origin == pb.TOOL_ORIGIN_PYTHON]
    assert python_tools and all(not t.workers for t in python_tools)
    await worker.finish()
    # Remembered with no worker, here and on a server started later on the same database.
    _, later = await start_server(**WORKER_TOOLS)
    for stubs in (baton, later):
        after = {t.name: t for t in (await stubs.tools.ListTools(rr.ListToolsRequest())).tools}
        assert after[ORDER].origin == pb.TOOL_ORIGIN_WORKER and not after[ORDER].workers
        assert after[ORDER].timeout.ToMilliseconds() == 2500 and after[ORDER].retry_safe


async def test_guidelines_name_worker_tools_once_a_worker_serves_them(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, *_ = await open_session(start_server, **WORKER_TOOLS)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await add_guideline(
            baton, app.example_agent_id, "The customer asks for a invoice", ["send_invoice"]
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "start the worker first" in (refused.value.details() or "")
    worker = await connected(baton, declared("send_invoice"))
    await add_guideline(
        baton, app.example_agent_id, "The customer asks for a invoice", ["send_invoice"]
    )
    await worker.close()


async def test_a_worker_may_not_serve_a_python_tools_name(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server(example_agent=True)  # the example tools are loaded in Python
    worker = RawWorker(baton.channel, [declared(HANDOFF, **HANDOFF_ARGS)])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await worker.start()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "loaded into the server" in (refused.value.details() or "")


async def test_bad_declarations_are_refused_field_by_field(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server()
    bad_schema = declared("fine_name")
    bad_schema.parameters.Clear()
    bad_schema.parameters["type"] = "string"
    worker = RawWorker(
        baton.channel,
        [declared("9lives"), declared("twice"), declared("twice", timeout_s=3600), bad_schema],
        limit=5000,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await worker.start()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(refused.value) == [
        "declare.max_concurrent_calls",
        "declare.tools[0].name",
        "declare.tools[2].name",
        "declare.tools[2].timeout",
        "declare.tools[3].parameters",
    ]
    # The first message must be the declaration.
    call = baton.tool_workers.ServeTools()
    await call.write(rr.ServeToolsRequest(drain=rr.WorkerDrain()))
    with pytest.raises(grpc.aio.AioRpcError) as first:
        await call.read()
    assert first.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(first.value) == ["declare"]


async def test_a_draining_worker_gets_no_new_calls_and_finishes_its_own(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server, **WORKER_TOOLS)
    worker = await connected(baton, order_tool(), limit=2)
    ask = await baton.say(session.id, "Where is my order 12345?")
    call = await worker.next_call()
    await worker.drain()
    await worker.answer(call, {"found": True, "order": "12345", "status": "in transit"})
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    assert [c.error for c in tool_calls(events)] == [""]
    # Drained: the next call finds no worker rather than waiting on this one.
    again = await baton.say(session.id, "Where is my order 777?")
    events = await turn_events(stream, again.id, ends_with(pb.STATUS_READY))
    assert "no tool worker serving" in tool_calls(events)[0].error
    assert await worker.finish() == grpc.StatusCode.OK
    assert len(worker.received) == 1


async def test_error_reason_of_a_refused_worker(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server(example_agent=True)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await RawWorker(baton.channel, [order_tool()]).start()
    assert error_reason(refused.value) == "FAILED_PRECONDITION"


async def test_an_idle_worker_hears_heartbeats(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server(heartbeat_interval_s=0.2)
    call = baton.tool_workers.ServeTools()
    await call.write(rr.ServeToolsRequest(declare=rr.WorkerDeclaration(tools=[order_tool()])))
    accepted = await call.read()
    assert accepted.accepted.heartbeat_interval.ToMilliseconds() == 200
    async with asyncio.timeout(5):
        beat = await call.read()
    assert beat.WhichOneof("kind") == "heartbeat" and beat.heartbeat.time.seconds > 0
    # The worker's own heartbeats are accepted and answered by nothing.
    await call.write(rr.ServeToolsRequest(heartbeat=rr.WorkerHeartbeat()))
    await call.done_writing()
    async with asyncio.timeout(5):
        while (message := await call.read()) is not grpc.aio.EOF:
            assert message.WhichOneof("kind") == "heartbeat"
    assert await call.code() == grpc.StatusCode.OK


async def test_metrics_count_workers_and_waiting_calls(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, _ = await open_session(start_server, **WORKER_TOOLS, metrics_port=0)
    worker = await connected(baton, order_tool(), limit=1)
    await baton.say(session.id, "Where is my order 12345?")
    held = await worker.next_call()
    other = await baton.sessions.CreateSession(
        rr.CreateSessionRequest(
            session=pb.Session(agent_id=app.example_agent_id, customer_id=session.customer_id)
        )
    )
    await baton.say(other.session.id, "Where is my order 777?")
    await wait_until(lambda: app.tools.workers.waiting == 1)
    figures = await asyncio.to_thread(Scrape, app.metrics_port)
    assert figures.value("baton_tool_workers_connected") == 1
    assert figures.value("baton_tool_calls_waiting") == 1
    await worker.answer(held, {"found": True, "order": "12345", "status": "in transit"})
    await worker.answer(await worker.next_call(), {"found": True, "order": "777"})
    await wait_until(lambda: app.tools.workers.waiting == 0)
    await worker.finish()
    after = await asyncio.to_thread(Scrape, app.metrics_port)
    assert after.value("baton_tool_workers_connected") == 0


async def test_a_stopping_server_ends_worker_streams_once_their_calls_are_answered(
    start_server,  # type: ignore[no-untyped-def]
) -> None:
    app, baton, session, _ = await open_session(start_server, **WORKER_TOOLS)
    first = await connected(baton, order_tool(), name="first")
    second = await connected(baton, order_tool(), name="second")
    await baton.say(session.id, "Where is my order 12345?")
    call = await first.next_call()  # the worker idle longest gets it
    stopping = asyncio.create_task(app.stop(grace=30))
    # The idle worker is told at once, to reconnect elsewhere; the busy one may finish.
    await wait_until(lambda: second.ended is not None)
    assert second.ended == grpc.StatusCode.UNAVAILABLE and first.ended is None
    await first.answer(call, {"found": True, "order": "12345", "status": "in transit"})
    await wait_until(lambda: first.ended is not None)
    assert first.ended == grpc.StatusCode.UNAVAILABLE
    async with asyncio.timeout(10):  # well inside the grace: nothing left to wait for
        await stopping
    assert [c.call_id for c in first.received] == [call.call_id] and not second.received
