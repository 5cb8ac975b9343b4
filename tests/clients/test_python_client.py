"""The Python client (clients/python, package baton_client) against real Baton servers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client import (
    BatonClient,
    Follower,
    Participant,
    RetriesExhausted,
    RetryPolicy,
    error_reason,
    field_violations,
)
from tests.support import ROOT, ServerProcess, wait_until

FAST_RETRY = RetryPolicy(initial_delay=0.05, max_delay=0.5)


def server_process(database_url: str, port: int = 0) -> ServerProcess:
    """`baton serve` on a given port. ServerProcess always passes `--port 0`; a second `--port`
    wins (click keeps an option's last value), which is how a restart reuses the port."""
    return ServerProcess(database_url, "--port", str(port))


def stop_gracefully(server: ServerProcess, timeout: float = 30.0) -> int:
    """SIGTERM and wait for the exit code; on a hang, kill it and fail with its output."""
    try:
        return server.terminate(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        assert server.process is not None and server.process.stdout is not None
        output = server.process.stdout.read()
        raise AssertionError(
            f"server did not exit {timeout}s after SIGTERM:\n{output[-4000:]}"
        ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def client(start_server) -> AsyncIterator[BatonClient]:  # type: ignore[no-untyped-def]
    app, _ = await start_server()
    async with BatonClient(f"127.0.0.1:{app.port}", retry=FAST_RETRY) as client:
        yield client


async def new_session(client: BatonClient, **fields: Any) -> pb.Session:
    """A session in MANUAL mode unless told otherwise, so that the AI agent does not answer.
    The engine may still add events (e.g. acknowledging customer messages): tests wait for the
    events they appended, by id, and check the log for gaps and duplicates, not its length."""
    fields.setdefault("mode", "MANUAL")
    agent = await client.agents.create("Ada")
    customer = await client.customers.create("Cy")
    return await client.sessions.create(agent_id=agent.id, customer_id=customer.id, **fields)


async def post(client: BatonClient, session_id: str, text: str) -> pb.Event:
    """A human agent's message: unlike a customer's, it starts no engine turn, so restart tests
    exercise the client's resume logic without agent turns in flight during a shutdown."""
    return await client.events.send_message(
        session_id, text, source="HUMAN_AGENT", participant=Participant(id="u1")
    )


class Collector:
    """Runs a Follower in a task and keeps what it yields (or the error it ended with)."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.events: list[pb.Event] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for event in self.follower:
                self.events.append(event)
        except Exception as exc:
            self.error = exc

    @property
    def offsets(self) -> list[int]:
        return [e.offset for e in self.events]

    async def wait_for(self, *events: pb.Event, timeout: float = 20.0) -> None:
        """Waits until the given (appended) events have been followed."""
        wanted = {e.id for e in events}
        await wait_until(
            lambda: wanted <= {e.id for e in self.events} or self.error is not None, timeout
        )
        assert self.error is None, f"follow failed: {self.error!r}"

    async def wait_for_offset(self, offset: int, timeout: float = 20.0) -> None:
        await wait_until(
            lambda: (
                bool(self.events and self.events[-1].offset >= offset) or self.error is not None
            ),
            timeout,
        )
        assert self.error is None, f"follow failed: {self.error!r}"

    def assert_exactly_once_in_order(self, start: int = 0) -> None:
        assert self.offsets == list(range(start, start + len(self.offsets))), self.offsets
        assert len({e.id for e in self.events}) == len(self.events), "duplicate event ids"

    async def finished(self, timeout: float = 20.0) -> BaseException | None:
        async with asyncio.timeout(timeout):
            await self.task
        return self.error

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.follower.aclose()


# ---------------------------------------------------------------- helpers


async def test_agents_and_customers_crud(client: BatonClient) -> None:
    agent = await client.agents.create("Ada", description="support")
    assert agent.id.startswith("agt_") and agent.description == "support"
    assert (await client.agents.get(agent.id)).name == "Ada"
    renamed = await client.agents.update(agent.id, name="Ada 2")
    assert (renamed.name, renamed.description) == ("Ada 2", "support")
    await client.agents.create("Bob")
    page = await client.agents.list(page_size=1)
    assert len(page.agents) == 1 and page.next_page_token
    assert [a.name async for a in client.agents.iterate(page_size=1)] == ["Ada 2", "Bob"]

    customer = await client.customers.create("Cy", metadata={"crm": "42"})
    assert dict(customer.metadata) == {"crm": "42"}
    updated = await client.customers.update(customer.id, metadata={"crm": "43"})
    assert (updated.name, dict(updated.metadata)) == ("Cy", {"crm": "43"})
    assert [c.id async for c in client.customers.iterate()] == [customer.id]

    await client.customers.delete(customer.id)
    await client.agents.delete(agent.id)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.agents.get(agent.id)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "NOT_FOUND"
    with pytest.raises(ValueError, match="nothing to update"):
        await client.agents.update(agent.id)


async def test_sessions_and_events_helpers(client: BatonClient) -> None:
    session = await new_session(client, title="Refund", metadata={"ticket": "7"}, mode="AUTO")
    assert session.mode == pb.SESSION_MODE_AUTO and session.next_offset == 1
    assert (await client.sessions.get(session.id)).title == "Refund"

    manual = await client.sessions.set_mode(session.id, "manual")
    assert manual.mode == pb.SESSION_MODE_MANUAL
    auto = await client.sessions.set_mode(session.id, pb.SESSION_MODE_AUTO)
    assert auto.mode == pb.SESSION_MODE_AUTO and auto.title == "Refund"
    # MANUAL again, so that no AI turn adds events to the log checked below.
    await client.sessions.set_mode(session.id, "SESSION_MODE_MANUAL")
    retitled = await client.sessions.update(session.id, title="Refund #2")
    assert retitled.title == "Refund #2" and dict(retitled.metadata) == {"ticket": "7"}
    listed = await client.sessions.list(customer_id=session.customer_id)
    assert [s.id for s in listed.sessions] == [session.id]
    assert [s.id async for s in client.sessions.iterate(mode="AUTO")] == []
    assert [s.id async for s in client.sessions.iterate(mode="MANUAL")] == [session.id]

    hello = await client.events.send_message(session.id, "Hello", idempotency_key="k1")
    again = await client.events.send_message(session.id, "Hello", idempotency_key="k1")
    assert again.id == hello.id and again.offset == hello.offset
    assert hello.source == pb.EVENT_SOURCE_CUSTOMER and hello.correlation_id == hello.id
    reply = await client.events.send_message(
        session.id,
        "Hi, I'm Hana",
        source="HUMAN_AGENT",
        participant=Participant(id="u7", display_name="Hana"),
        correlation_id=hello.id,
    )
    assert reply.message.participant.display_name == "Hana"
    assert reply.correlation_id == hello.id
    typing = await client.events.send_status(session.id, "typing", detail="thinking")
    assert typing.status.status == pb.STATUS_TYPING and typing.status.detail == "thinking"
    tool = await client.events.send_tool(session.id, [pb.ToolCall(name="lookup")])
    assert tool.kind == pb.EVENT_KIND_TOOL
    custom = await client.events.send_custom(session.id, {"type": "crm.synced", "n": 1})
    assert custom.custom["type"] == "crm.synced"

    history = await client.events.history(session.id)
    assert [e.offset for e in history] == list(range(len(history)))
    # 0 created, 1 to 3 mode changes, then the five appends above (and maybe the engine's).
    assert [e.offset for e in history[:4]] == [0, 1, 2, 3]
    ours = [hello.id, reply.id, typing.id, tool.id, custom.id]
    assert [e.id for e in history if e.id in ours] == ours
    messages = await client.events.history(session.id, kinds=["MESSAGE"], sources=["HUMAN_AGENT"])
    assert [e.id for e in messages] == [reply.id]

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.events.send_message(session.id, "   ")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value)
    with pytest.raises(ValueError, match="unknown EventSource"):
        await client.events.send_message(session.id, "x", source="nobody")

    await client.sessions.delete(session.id)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.sessions.get(session.id)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_raw_stubs_share_the_channel(client: BatonClient) -> None:
    session = await new_session(client)
    response = await client.stubs.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    assert response.session.id == session.id


# ---------------------------------------------------------------- token metadata


class _RecordingSessions(svc.SessionServiceServicer):
    def __init__(self, seen: list[dict[str, str]]) -> None:
        self.seen = seen

    async def GetSession(self, request: Any, context: Any) -> Any:
        self.seen.append(dict(context.invocation_metadata()))
        return rr.GetSessionResponse(session=pb.Session(id=request.session_id))


class _ScriptedEvents(svc.EventServiceServicer):
    """Ignores min_offset on purpose (replays from 0) and breaks the first two streams."""

    def __init__(self, seen: list[dict[str, str]]) -> None:
        self.seen = seen
        self.min_offsets: list[int] = []

    async def ListEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.seen.append(dict(context.invocation_metadata()))
        if request.follow:
            self.min_offsets.append(request.min_offset)
        attempt = len(self.min_offsets)
        end = 3 * max(1, attempt)
        yield rr.ListEventsResponse(
            events=[
                pb.Event(id=f"evt_{o}", session_id=request.session_id, offset=o) for o in range(end)
            ]
        )
        if not request.follow:
            return
        if attempt <= 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted break")
        yield rr.ListEventsResponse(caught_up=True)
        await asyncio.Event().wait()


async def test_token_is_sent_as_bearer_metadata_and_follow_dedups() -> None:
    seen: list[dict[str, str]] = []
    events = _ScriptedEvents(seen)
    server = grpc.aio.server()
    svc.add_SessionServiceServicer_to_server(_RecordingSessions(seen), server)
    svc.add_EventServiceServicer_to_server(events, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with BatonClient(f"127.0.0.1:{port}", token="s3cret", retry=FAST_RETRY) as client:
            await client.sessions.get("ses_1")
            await client.stubs.sessions.GetSession(rr.GetSessionRequest(session_id="ses_1"))
            assert len(await client.events.history("ses_1")) == 3
            collector = Collector(client.follow("ses_1"))
            try:
                await collector.wait_for_offset(8)
                await wait_until(lambda: collector.follower.caught_up)
            finally:
                await collector.close()
            assert collector.offsets == list(range(9)), "duplicates must be dropped"
            assert events.min_offsets == [0, 3, 6], "resumes after the last delivered"
            assert collector.follower.reconnects == 2
        assert all(m.get("authorization") == "Bearer s3cret" for m in seen)
        assert len(seen) == 6
        async with BatonClient(f"127.0.0.1:{port}") as anonymous:
            await anonymous.sessions.get("ses_1")
        assert "authorization" not in seen[-1]
    finally:
        await server.stop(0)


# ---------------------------------------------------------------- follow


async def test_follow_delivers_history_then_live(client: BatonClient) -> None:
    session = await new_session(client)
    before = [await client.events.send_message(session.id, f"before {i}") for i in range(3)]
    caught_up = asyncio.Event()
    collector = Collector(client.follow(session.id, on_caught_up=caught_up.set))
    try:
        await collector.wait_for(*before)
        async with asyncio.timeout(10):
            await caught_up.wait()
        assert collector.follower.caught_up
        live = [await client.events.send_message(session.id, f"live {i}") for i in range(5)]
        await collector.wait_for(*live)
        collector.assert_exactly_once_in_order()
        assert collector.events[0].source == pb.EVENT_SOURCE_SYSTEM
        texts = [e.message.text for e in collector.events if e.source == pb.EVENT_SOURCE_CUSTOMER]
        assert texts == [*(f"before {i}" for i in range(3)), *(f"live {i}" for i in range(5))]
        assert collector.follower.next_offset == collector.offsets[-1] + 1
    finally:
        await collector.close()

    # From an offset, as an async context manager.
    start = live[0].offset
    async with client.follow(session.id, from_offset=start) as follower:
        async with asyncio.timeout(10):
            first = await anext(follower)
            second = await anext(follower)
    assert (first.id, second.offset) == (live[0].id, start + 1)


async def test_filtered_follow_advances_with_heartbeats(start_server) -> None:  # type: ignore[no-untyped-def]
    app, _ = await start_server(heartbeat_interval_s=0.1)
    async with BatonClient(f"127.0.0.1:{app.port}") as client:
        session = await new_session(client)
        collector = Collector(
            client.follow(session.id, kinds=["MESSAGE"], sources=[pb.EVENT_SOURCE_HUMAN_AGENT])
        )
        try:
            for i in range(4):
                await client.events.send_message(session.id, f"customer {i}")
            # Nothing matches, but heartbeats move the resume point past the skipped events.
            await wait_until(lambda: collector.follower.next_offset == 5, timeout=10)
            assert collector.events == []
            human = await client.events.send_message(
                session.id, "human", source="HUMAN_AGENT", participant=Participant(id="u1")
            )
            await collector.wait_for(human)
            assert [e.id for e in collector.events] == [human.id]
            assert collector.follower.next_offset >= 6
        finally:
            await collector.close()


async def test_filtered_follow_resumes_from_caught_up_position(client: BatonClient) -> None:
    session = await new_session(client)
    for i in range(3):
        await client.events.send_message(session.id, f"customer {i}")
    head = (await client.sessions.get(session.id)).next_offset
    # Nothing stored matches; caught_up alone (no heartbeat yet) carries the resume point.
    collector = Collector(client.follow(session.id, sources=[pb.EVENT_SOURCE_HUMAN_AGENT]))
    try:
        await wait_until(lambda: collector.follower.caught_up, timeout=10)
        assert collector.events == []
        assert collector.follower.next_offset == head
    finally:
        await collector.close()


async def test_follow_survives_graceful_restart_and_downtime(database_url: str) -> None:
    first = server_process(database_url)
    first.start()
    servers = [first]
    retry_errors: list[BaseException | None] = []
    try:
        async with BatonClient(first.target, retry=FAST_RETRY) as client:
            session = await new_session(client)
            appended = [await post(client, session.id, f"before {i}") for i in range(3)]
            collector = Collector(
                client.follow(session.id, on_retry=lambda error, _delay: retry_errors.append(error))
            )
            try:
                await collector.wait_for(*appended)
                for i in range(3):
                    appended.append(await post(client, session.id, f"live {i}"))
                await collector.wait_for(*appended)

                # SIGTERM: the server ends the stream with UNAVAILABLE / SERVER_SHUTTING_DOWN.
                assert await asyncio.to_thread(stop_gracefully, first) == 0
                # Down for a while: the follower keeps retrying against the closed port.
                await wait_until(lambda: collector.follower.failures >= 3, timeout=20)
                second = server_process(database_url, first.port)
                servers.append(second)
                await asyncio.to_thread(second.start)
                await wait_until(lambda: collector.follower.reconnects >= 1, timeout=30)
                for i in range(3):
                    appended.append(await post(client, session.id, f"after {i}"))
                await collector.wait_for(*appended)

                # A second graceful restart, this time without downtime to speak of.
                assert await asyncio.to_thread(stop_gracefully, second) == 0
                third = server_process(database_url, first.port)
                servers.append(third)
                await asyncio.to_thread(third.start)
                await wait_until(lambda: collector.follower.reconnects >= 2, timeout=30)
                appended.append(await post(client, session.id, "last"))
                await collector.wait_for(*appended)
                # Whatever else the server appended meanwhile: the whole log, once, in order.
                head = (await client.sessions.get(session.id)).next_offset
                await collector.wait_for_offset(head - 1)
            finally:
                await collector.close()
        collector.assert_exactly_once_in_order()
        assert {e.id for e in appended} <= {e.id for e in collector.events}
        first_error = retry_errors[0]
        assert isinstance(first_error, grpc.aio.AioRpcError)
        assert first_error.code() == grpc.StatusCode.UNAVAILABLE
        assert error_reason(first_error) == "SERVER_SHUTTING_DOWN"
    finally:
        for server in servers:
            server.kill()


async def test_follow_raises_not_found_without_retrying(client: BatonClient) -> None:
    retries: list[object] = []
    follower = client.follow("ses_does_not_exist", on_retry=lambda *a: retries.append(a))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async with asyncio.timeout(10):
            async for _ in follower:
                pass
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert retries == [] and follower.connections == 0

    # A session deleted while followed ends the stream with NOT_FOUND too.
    session = await new_session(client)
    collector = Collector(client.follow(session.id, on_retry=lambda *a: retries.append(a)))
    await collector.wait_for_offset(0)
    await client.sessions.delete(session.id)
    raised = await collector.finished()
    assert isinstance(raised, grpc.aio.AioRpcError)
    assert raised.code() == grpc.StatusCode.NOT_FOUND
    assert retries == []


async def test_follow_rejects_bad_arguments(client: BatonClient) -> None:
    session = await new_session(client)
    with pytest.raises(ValueError):
        client.follow(session.id, from_offset=-1)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async with asyncio.timeout(10):
            async for _ in client.follow(session.id, kinds=[99]):
                pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_follow_gives_up_after_max_attempts_or_max_elapsed() -> None:
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with BatonClient(target) as client:
        follower = client.follow(
            "ses_x", retry=RetryPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=3)
        )
        with pytest.raises(RetriesExhausted) as exhausted:
            async with asyncio.timeout(30):
                await anext(follower)
        assert follower.failures == 4  # the first attempt and three reconnects
        last = exhausted.value.last_error
        assert isinstance(last, grpc.aio.AioRpcError)
        assert last.code() == grpc.StatusCode.UNAVAILABLE

        follower = client.follow(
            "ses_x", retry=RetryPolicy(initial_delay=0.05, max_delay=0.1, max_elapsed=0.5)
        )
        with pytest.raises(RetriesExhausted, match="down for more than"):
            async with asyncio.timeout(30):
                await anext(follower)


def test_retry_policy_backoff_is_exponential_capped_and_jittered() -> None:
    exact = RetryPolicy(initial_delay=0.1, max_delay=1.0, multiplier=2, jitter=0)
    assert [exact.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    jittered = RetryPolicy(initial_delay=1.0, max_delay=1.0, jitter=0.5, random=lambda: 1.0)
    assert jittered.delay(5) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        RetryPolicy(initial_delay=2, max_delay=1)


# ---------------------------------------------------------------- smoke script


async def test_smoke_script_passes(tmp_path: Path) -> None:
    """The cross-language scenario against the harness's server (clients/smoke-server.sh:
    authentication on, the example agent's tools, a restart on the same port)."""
    script = ROOT / "clients" / "smoke-server.sh"
    state = tmp_path / "server"
    env = dict(os.environ, BIN=str(Path(sys.executable).parent))

    def harness(command: str) -> None:
        subprocess.run([str(script), command, str(state)], env=env, check=True, timeout=120)

    await asyncio.to_thread(harness, "init")
    await asyncio.to_thread(harness, "start")
    try:
        env |= {
            "BATON_SMOKE_TARGET": f"127.0.0.1:{(state / 'port').read_text().strip()}",
            "BATON_SMOKE_INTEGRATION_KEY": (state / "integration.key").read_text().strip(),
            "BATON_SMOKE_OPERATOR_KEY": (state / "operator.key").read_text().strip(),
            "BATON_SMOKE_OPERATOR_ID": "olga",
            "BATON_SMOKE_RESTART": f"{script} restart {state}",
            "BATON_SMOKE_EXPECT_AI": "1",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "clients" / "python" / "smoke.py"),
            env["BATON_SMOKE_TARGET"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        async with asyncio.timeout(150):
            output, _ = await process.communicate()
        text = output.decode()
        assert process.returncode == 0, text
        assert text.strip().splitlines()[-1] == "smoke python: ok", text
        assert "server restarted" in text, text
    finally:
        await asyncio.to_thread(harness, "stop")
