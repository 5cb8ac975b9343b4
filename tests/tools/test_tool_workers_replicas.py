"""Tool workers with several replicas on one PostgreSQL: a worker opens one stream to each
replica, so a turn finds it wherever the turn runs. Replica A runs turns (engine on), replica B
only serves the API (--no-engine): the customer writes to B, the turn runs on A."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.engine.test_turns import ends_with, turn_events
from tests.postgres import fresh_postgres_database
from tests.support import ServerProcess, Stubs, collect
from tests.tools.test_tool_workers import order_answer, order_tool, tool_calls
from tests.worker_harness import RawWorker


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[Stubs, Stubs]]:
    async with fresh_postgres_database() as url:
        turns = ServerProcess(url, "--example-agent", "--example-agent-tools", "workers")
        api_only = ServerProcess(url, "--no-engine")
        channels: list[grpc.aio.Channel] = []
        try:
            turns.start()  # first: it creates the example agent
            api_only.start()
            channels = [grpc.aio.insecure_channel(r.target) for r in (turns, api_only)]
            yield Stubs.on(channels[0]), Stubs.on(channels[1])
        finally:
            for channel in channels:
                await channel.close()
            turns.kill()
            api_only.kill()


async def open_session(api: Stubs) -> tuple[pb.Session, object]:
    agents = await api.agents.ListAgents(rr.ListAgentsRequest())
    [agent] = agents.agents
    customer = await api.customers.CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
    )
    session = (
        await api.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=agent.id, customer_id=customer.customer.id)
            )
        )
    ).session
    stream = api.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    await collect(stream, until_caught_up=True)
    return session, stream


async def test_a_worker_connected_to_every_replica_serves_turns_on_any(
    replicas: tuple[Stubs, Stubs],
) -> None:
    _, api_only = replicas
    on_each = [
        RawWorker(stubs.channel, [order_tool()], name=f"orders-{i}", auto=order_answer)
        for i, stubs in enumerate(replicas)
    ]
    for worker in on_each:
        await worker.start()
    session, stream = await open_session(api_only)
    ask = await api_only.say(session.id, "Where is my order 12345?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [call] = tool_calls(events)
    assert call.error == "" and call.result.struct_value["order"] == "12345"
    # The turn ran on the replica with the engine, so the call came on that stream.
    assert [len(w.received) for w in on_each] == [1, 0]
    # Both replicas list the tool (the catalogue is in the database) with their own worker.
    for stubs, worker in zip(replicas, on_each, strict=True):
        listed = {t.name: t for t in (await stubs.tools.ListTools(rr.ListToolsRequest())).tools}
        assert [w.worker_id for w in listed[call.name].workers] == [worker.accepted.worker_id]
    for worker in on_each:
        await worker.close()


async def test_a_worker_connected_to_another_replica_only_is_not_reached(
    replicas: tuple[Stubs, Stubs],
) -> None:
    """Why workers connect to every replica: calls are not routed between replicas."""
    _, api_only = replicas
    worker = RawWorker(api_only.channel, [order_tool()], auto=order_answer)
    await worker.start()
    session, stream = await open_session(api_only)
    ask = await api_only.say(session.id, "Where is my order 12345?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    [call] = tool_calls(events)
    assert call.error == "no tool worker serving 'check_order_status' is connected to this server"
    assert worker.received == []
    await worker.close()
