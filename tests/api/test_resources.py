"""Agents, customers and sessions: CRUD, update masks, paging; health and reflection."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.support import ROOT, Stubs


async def test_agent_and_customer_crud(baton: Stubs) -> None:
    agent = (
        await baton.agents.CreateAgent(
            rr.CreateAgentRequest(agent=pb.Agent(name="Support", description="first line"))
        )
    ).agent
    assert agent.id.startswith("agt_") and agent.created_at.seconds > 0
    assert (await baton.agents.GetAgent(rr.GetAgentRequest(agent_id=agent.id))).agent == agent
    updated = (
        await baton.agents.UpdateAgent(
            rr.UpdateAgentRequest(
                agent_id=agent.id,
                agent=pb.Agent(name="Ignored", description="second line"),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        )
    ).agent
    assert (updated.name, updated.description) == ("Support", "second line")
    await baton.agents.DeleteAgent(rr.DeleteAgentRequest(agent_id=agent.id))
    listed = await baton.agents.ListAgents(rr.ListAgentsRequest())
    assert agent.id not in [a.id for a in listed.agents]

    customer = (
        await baton.customers.CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name="Cy", metadata={"crm": "42"}))
        )
    ).customer
    changed = (
        await baton.customers.UpdateCustomer(
            rr.UpdateCustomerRequest(
                customer_id=customer.id,
                customer=pb.Customer(name="Cyrus", metadata={"tier": "gold"}),
                update_mask=field_mask_pb2.FieldMask(paths=["name", "metadata"]),
            )
        )
    ).customer
    assert changed.name == "Cyrus" and dict(changed.metadata) == {"tier": "gold"}
    fetched = await baton.customers.GetCustomer(rr.GetCustomerRequest(customer_id=customer.id))
    assert fetched.customer == changed


async def test_session_fields_and_update(baton: Stubs) -> None:
    session = await baton.new_session(title="Refund", metadata={"channel": "web"})
    assert session.mode == pb.SESSION_MODE_AUTO and session.next_offset == 1
    updated = (
        await baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=session.id,
                session=pb.Session(
                    title="Refund #2", metadata={"channel": "app"}, mode=pb.SESSION_MODE_MANUAL
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["title", "metadata"]),
            )
        )
    ).session
    assert updated.title == "Refund #2" and dict(updated.metadata) == {"channel": "app"}
    assert updated.mode == pb.SESSION_MODE_AUTO, "mode was not in the mask"
    assert updated.updated_at.ToMicroseconds() >= session.updated_at.ToMicroseconds()
    manual = await baton.new_session(mode=pb.SESSION_MODE_MANUAL)
    assert manual.mode == pb.SESSION_MODE_MANUAL


async def test_list_sessions_pages_through_everything_with_filters(baton: Stubs) -> None:
    first = await baton.new_session()
    agent_id, customer_id = first.agent_id, first.customer_id
    created = [first.id]
    for i in range(11):
        mode = pb.SESSION_MODE_MANUAL if i % 3 == 0 else pb.SESSION_MODE_AUTO
        session = (
            await baton.sessions.CreateSession(
                rr.CreateSessionRequest(
                    session=pb.Session(agent_id=agent_id, customer_id=customer_id, mode=mode)
                )
            )
        ).session
        created.append(session.id)
    await baton.new_session()  # another agent's session, filtered out below

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await baton.sessions.ListSessions(
            rr.ListSessionsRequest(page_size=5, page_token=token, agent_id=agent_id)
        )
        pages += 1
        seen += [s.id for s in page.sessions]
        assert all(s.agent_id == agent_id for s in page.sessions)
        token = page.next_page_token
        if not token:
            break
    assert seen == created and pages == 3

    manual = await baton.sessions.ListSessions(
        rr.ListSessionsRequest(customer_id=customer_id, mode=pb.SESSION_MODE_MANUAL)
    )
    assert [s.id for s in manual.sessions] == [created[i + 1] for i in range(11) if i % 3 == 0]


async def test_health_and_reflection(baton: Stubs) -> None:
    health = health_pb2_grpc.HealthStub(baton.channel)
    for service in ("", "baton.v1.EventService", "baton.v1.SessionService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    stub = reflection_pb2_grpc.ServerReflectionStub(baton.channel)

    async def requests():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol="baton.v1.Event")

    responses = [r async for r in stub.ServerReflectionInfo(requests())]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {
        "baton.v1.AgentService",
        "baton.v1.CustomerService",
        "baton.v1.SessionService",
        "baton.v1.EventService",
        "grpc.health.v1.Health",
    } <= names
    assert responses[1].file_descriptor_response.file_descriptor_proto


async def test_tail_prints_one_line_per_event(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server()
    session = await baton.new_session()
    await baton.say(session.id, "where is my parcel?")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton_server",
        "tail",
        session.id,
        "--from",
        "1",
        "--no-follow",
        "--target",
        f"127.0.0.1:{app.port}",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("#1 ") and "customer" in lines[0]
    assert "where is my parcel?" in lines[0]

    missing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton_server",
        "tail",
        "ses_missing",
        "--no-follow",
        "--target",
        f"127.0.0.1:{app.port}",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(missing.communicate(), 30)
    assert missing.returncode == 1 and b"NOT_FOUND" in out
