"""The Python client's credentials, TLS, typed errors, retries, idempotency keys and the
operator inbox (`watch_handoffs`), against real Baton servers (and scripted servers where a
failure must be produced on cue)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2
from baton.v1 import service_pb2_grpc as svc
from baton_client import (
    BatonClient,
    BatonError,
    Credentials,
    FailedPrecondition,
    HandoffChange,
    HandoffWatcher,
    InvalidArgument,
    NotFound,
    Participant,
    RetriesExhausted,
    RetryPolicy,
    Stubs,
    Token,
    Unauthenticated,
    Unavailable,
)
from baton_server.app import BatonApp
from baton_server.auth.principal import Role
from baton_server.config import Settings
from tests.auth_support import TOKEN_SECRET, make_pki
from tests.clients.test_python_client import free_port, server_process, stop_gracefully
from tests.support import wait_until

FAST_RETRY = RetryPolicy(initial_delay=0.05, max_delay=0.5)


# ---------------------------------------------------------------- stubs


async def test_stubs_cover_every_service() -> None:
    services = {s.name for s in service_pb2.DESCRIPTOR.services_by_name.values()}
    assert len(services) == 10
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        stubs = Stubs.on(channel)
        names = {type(getattr(stubs, f.name)).__name__ for f in dataclasses.fields(Stubs)}
    assert names == {f"{service}Stub" for service in services}


# ---------------------------------------------------------------- typed errors


@pytest.fixture
async def client(start_server) -> Any:  # type: ignore[no-untyped-def]
    app, _ = await start_server()
    async with BatonClient(f"127.0.0.1:{app.port}", retry=FAST_RETRY) as client:
        yield client


async def test_errors_are_typed_with_their_details(client: BatonClient) -> None:
    with pytest.raises(NotFound) as missing:
        await client.sessions.get("ses_does_not_exist")
    assert isinstance(missing.value, grpc.aio.AioRpcError)  # still the raw type too
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.reason and missing.value.domain == "baton.v1"
    assert missing.value.message

    with pytest.raises(InvalidArgument) as invalid:
        await client.agents.create("")
    assert invalid.value.field_violations, invalid.value
    assert invalid.value.retry_delay is None

    # Raw stubs on the client's channel raise typed errors too.
    with pytest.raises(NotFound):
        await client.stubs.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id="hof_nope"))
    # So do streams read through the helpers.
    with pytest.raises(NotFound):
        async with asyncio.timeout(10):
            async for _ in client.follow("ses_does_not_exist"):
                pass


# ---------------------------------------------------------------- credentials


@pytest.fixture
async def secured_app(settings: Settings) -> Any:
    app = BatonApp(replace(settings, dev_mode=False, token_secret=TOKEN_SECRET))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=1.0)


async def test_api_key_and_token_provider_against_an_authenticating_server(
    secured_app: BatonApp,
) -> None:
    assert secured_app.keys is not None
    _, secret = await secured_app.keys.create(Role.INTEGRATION, "backend")
    target = f"127.0.0.1:{secured_app.port}"
    async with BatonClient(target, api_key=secret) as backend:
        agent = await backend.agents.create("Ada")
        customer = await backend.customers.create("Cy")
        session = await backend.sessions.create(agent_id=agent.id, customer_id=customer.id)
        calls: list[str] = []

        async def provider() -> rr.IssueCustomerTokenResponse:
            calls.append("issued")
            return await backend.auth.issue_customer_token(customer.id)

        async with BatonClient(target, token_provider=provider, retry=FAST_RETRY) as cust:
            sent = [await cust.events.send_message(session.id, f"hi {i}") for i in range(3)]
            assert calls == ["issued"], "a token valid for 15 minutes is reused"
            follower = cust.follow(session.id)
            seen: list[pb.Event] = []
            async with asyncio.timeout(20):
                async for event in follower:
                    seen.append(event)
                    if event.id == sent[-1].id:
                        break
            await follower.aclose()
            assert [e.offset for e in seen] == list(range(len(seen)))

    # A provider whose token the server refuses: refreshed once, then the error is raised.
    tokens = iter(["not-a-token", secret])
    credentials = Credentials(provider=lambda: next(tokens))
    async with BatonClient(target, auth=credentials) as refreshing:
        await refreshing.agents.list()  # UNAUTHENTICATED with the first, OK with the second
    assert credentials.fetches == 2

    async with BatonClient(target, token_provider=lambda: "still-wrong") as wrong:
        with pytest.raises(Unauthenticated) as refused:
            await wrong.agents.list()
    assert refused.value.reason, "ErrorInfo reason"
    async with BatonClient(target) as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.agents.list()


async def test_token_cache_refreshes_before_expiry() -> None:
    issued: list[Token] = []

    def provider() -> Token:
        # Already expired when issued (a slow clock): every call fetches a new one.
        issued.append(Token(f"t{len(issued)}", time.time() - 1))
        return issued[-1]

    credentials = Credentials(provider=provider)
    assert await credentials.token() == "t0"
    assert await credentials.token() == "t1"
    lasting = Credentials(provider=lambda: Token("long", time.time() + 3600))
    assert await lasting.token() == await lasting.token() == "long"
    assert lasting.fetches == 1
    with pytest.raises(ValueError):
        Credentials()


async def test_tls_with_a_custom_ca(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pki = make_pki(tmp_path)
    app, _ = await start_server(
        tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key)
    )
    for ca in (pki.ca, str(pki.ca), pki.ca_pem):
        async with BatonClient(f"127.0.0.1:{app.port}", ca=ca) as client:
            assert (await client.agents.create("Ada")).id
    # Plaintext against a TLS port fails (UNAVAILABLE, after the service config's retries).
    async with BatonClient(f"127.0.0.1:{app.port}", wait_for_ready=False) as plain:
        with pytest.raises(Unavailable):
            await plain.agents.list()


# ---------------------------------------------------------------- retries, idempotency keys


class _FlakyEvents(svc.EventServiceServicer):
    """Refuses the first CreateEvent of each key with UNAVAILABLE, and records every attempt."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def CreateEvent(self, request: Any, context: Any) -> Any:
        self.keys.append(request.idempotency_key)
        if self.keys.count(request.idempotency_key) == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted outage")
        return rr.CreateEventResponse(event=pb.Event(id="evt_1", offset=len(self.keys)))


class _FlakySessions(svc.SessionServiceServicer):
    def __init__(self) -> None:
        self.gets = 0
        self.creates = 0

    async def GetSession(self, request: Any, context: Any) -> Any:
        self.gets += 1
        if self.gets == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted outage")
        return rr.GetSessionResponse(session=pb.Session(id=request.session_id))

    async def CreateSession(self, request: Any, context: Any) -> Any:
        self.creates += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted outage")


async def test_safe_calls_are_retried_on_unavailable_with_one_idempotency_key() -> None:
    events, sessions = _FlakyEvents(), _FlakySessions()
    server = grpc.aio.server()
    svc.add_EventServiceServicer_to_server(events, server)
    svc.add_SessionServiceServicer_to_server(sessions, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with BatonClient(f"127.0.0.1:{port}") as client:
            assert (await client.sessions.get("ses_1")).id == "ses_1"
            assert sessions.gets == 2
            await client.events.send_message("ses_1", "hello")
            assert len(events.keys) == 2 and events.keys[0] == events.keys[1] != ""
            await client.events.send_message("ses_1", "again", idempotency_key="mine")
            assert events.keys[2:] == ["mine", "mine"]
            # The raw stub gets a key too.
            await client.stubs.events.CreateEvent(
                rr.CreateEventRequest(session_id="ses_1", kind=pb.EVENT_KIND_MESSAGE)
            )
            assert events.keys[4] == events.keys[5] and events.keys[4].startswith("auto-")
            # Not safe to repeat: CreateSession is tried once.
            with pytest.raises(Unavailable):
                await client.sessions.create(agent_id="agt_1", customer_id="cus_1")
            assert sessions.creates == 1
    finally:
        await server.stop(0)


# ---------------------------------------------------------------- handoffs and the inbox


class Changes:
    def __init__(self, watcher: HandoffWatcher) -> None:
        self.watcher = watcher
        self.items: list[HandoffChange] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for change in self.watcher:
                self.items.append(change)
        except Exception as exc:
            self.error = exc

    async def wait_for(self, session_id: str, change_type: int, timeout: float = 20) -> None:
        def seen() -> bool:
            assert self.error is None, self.error
            return any(
                c.handoff.session_id == session_id and c.type == change_type for c in self.items
            )

        await wait_until(seen, timeout)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.watcher.aclose()


async def new_session(client: BatonClient) -> pb.Session:
    agent = await client.agents.create("Ada")
    customer = await client.customers.create("Cy")
    return await client.sessions.create(agent_id=agent.id, customer_id=customer.id)


async def test_handoff_wrappers_and_the_inbox(client: BatonClient) -> None:
    open_session = await new_session(client)
    already = (await client.handoffs.request(open_session.id, "before the watch")).handoff
    changes = Changes(client.watch_handoffs(operator=Participant(id="olga")))
    try:
        await wait_until(lambda: changes.watcher.caught_up, timeout=10)
        assert [c.handoff.id for c in changes.items] == [already.id]
        assert changes.items[0].type == pb.HANDOFF_CHANGE_TYPE_OPEN

        session = await new_session(client)
        requested = await client.handoffs.request(session.id, "customer asks for a human")
        handoff = requested.handoff
        await changes.wait_for(session.id, pb.HANDOFF_CHANGE_TYPE_REQUESTED)
        claimed = await client.handoffs.claim(handoff.id, Participant(id="olga"))
        assert claimed.state == pb.HANDOFF_STATE_CLAIMED
        with pytest.raises(FailedPrecondition):
            await client.handoffs.claim(handoff.id, "bob")
        moved = await client.handoffs.transfer(handoff.id, "olga", "bob")
        assert moved.operator.id == "bob"
        ended = await client.handoffs.release(handoff.id, "returned_to_ai", operator_id="bob")
        assert ended.outcome == pb.HANDOFF_OUTCOME_RETURNED_TO_AI
        await changes.wait_for(session.id, pb.HANDOFF_CHANGE_TYPE_ENDED)
        assert (await client.handoffs.get(handoff.id)).state == pb.HANDOFF_STATE_ENDED
        listed = await client.handoffs.list(session_id=session.id)
        assert [h.id for h in listed.handoffs] == [handoff.id]
        assert (await client.handoffs.stats()).handoffs == 2
        live = [c.position for c in changes.items[1:]]
        assert live == sorted(set(live)), "strictly increasing"
    finally:
        await changes.close()

    # Resuming from a position replays exactly what came after it.
    middle = changes.items[2].position
    resumed = Changes(client.watch_handoffs(after_position=middle))
    try:
        await wait_until(lambda: resumed.watcher.caught_up, timeout=10)
        assert [c.position for c in resumed.items] == [
            c.position for c in changes.items if c.position > middle
        ]
    finally:
        await resumed.close()


async def test_watch_handoffs_survives_restarts_exactly_once(database_url: str) -> None:
    port = free_port()
    first = server_process(database_url, port)
    first.start()
    servers = [first]
    try:
        async with BatonClient(first.target, retry=FAST_RETRY) as client:
            changes = Changes(client.watch_handoffs())
            try:
                await wait_until(lambda: changes.watcher.caught_up, timeout=20)
                sessions = []
                for round_ in range(3):
                    session = await new_session(client)
                    sessions.append(session)
                    await client.handoffs.request(session.id, f"round {round_}")
                    await changes.wait_for(session.id, pb.HANDOFF_CHANGE_TYPE_REQUESTED)
                    assert await asyncio.to_thread(stop_gracefully, servers[-1]) == 0
                    following = server_process(database_url, port)
                    servers.append(following)
                    await asyncio.to_thread(following.start)
                    # Creating agents and sessions is not retried: wait for the channel.
                    async with asyncio.timeout(20):
                        await client.wait_ready()
                # After the last restart: a change the watch must see once.
                last = await new_session(client)
                await client.handoffs.request(last.id, "after the restarts")
                await changes.wait_for(last.id, pb.HANDOFF_CHANGE_TYPE_REQUESTED, timeout=30)
                assert changes.watcher.reconnects >= 3
            finally:
                await changes.close()
        positions = [c.position for c in changes.items]
        assert positions == sorted(set(positions)), positions
        requested = [c.handoff.session_id for c in changes.items]
        assert requested == [s.id for s in sessions] + [last.id]
    finally:
        for server in servers:
            server.kill()


async def test_watch_handoffs_reraises_other_errors_typed() -> None:
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with BatonClient(target) as client:
        watcher = client.watch_handoffs(
            retry=RetryPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=2)
        )
        with pytest.raises(RetriesExhausted) as err:
            async with asyncio.timeout(20):
                await anext(watcher)
        assert isinstance(err.value.last_error, Unavailable)
        assert isinstance(err.value.last_error, BatonError)


# ---------------------------------------------------------------- RetryInfo, stream refresh


class _ThrottledAgents(svc.AgentServiceServicer):
    """Rate-limits the first ListAgents with RESOURCE_EXHAUSTED and a RetryInfo delay."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[float] = []

    async def ListAgents(self, request: Any, context: Any) -> Any:
        from google.protobuf import any_pb2, duration_pb2
        from google.rpc import code_pb2, error_details_pb2, status_pb2
        from grpc_status import rpc_status

        self.calls.append(time.monotonic())
        if len(self.calls) == 1:
            delay = duration_pb2.Duration()
            delay.FromTimedelta(timedelta(seconds=self.delay))
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            status = status_pb2.Status(
                code=code_pb2.RESOURCE_EXHAUSTED, message="slow down", details=[detail]
            )
            await context.abort_with_status(rpc_status.to_status(status))
        return rr.ListAgentsResponse(agents=[pb.Agent(id="agt_1")])


class _TokenCheckingHandoffs(svc.HandoffServiceServicer):
    """Accepts only the bearer token "good"; the inbox stream sends one change and waits."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    async def WatchHandoffs(self, request: Any, context: Any) -> Any:
        token = dict(context.invocation_metadata()).get("authorization", "")
        self.tokens.append(token)
        if token != "Bearer good":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "token expired")
        yield rr.WatchHandoffsResponse(
            changes=[pb.HandoffChange(position=5, type=pb.HANDOFF_CHANGE_TYPE_REQUESTED)]
        )
        yield rr.WatchHandoffsResponse(caught_up=True, caught_up_position=5)
        await asyncio.Event().wait()


async def test_retry_info_is_honoured_and_streams_refresh_the_token() -> None:
    agents, handoffs = _ThrottledAgents(0.3), _TokenCheckingHandoffs()
    server = grpc.aio.server()
    svc.add_AgentServiceServicer_to_server(agents, server)
    svc.add_HandoffServiceServicer_to_server(handoffs, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        tokens = iter(["expired", "good"])
        async with BatonClient(
            f"127.0.0.1:{port}", token_provider=lambda: next(tokens), retry=FAST_RETRY
        ) as client:
            assert [a.id for a in (await client.agents.list()).agents] == ["agt_1"]
            assert len(agents.calls) == 2
            assert agents.calls[1] - agents.calls[0] >= 0.25, "waited for the RetryInfo delay"

            watcher = client.watch_handoffs(after_position=1)
            async with asyncio.timeout(10):
                change = await anext(watcher)
            await watcher.aclose()
            assert change.position == 5
            # The unary call above was accepted with "expired" (cached); the stream was refused
            # with it and reopened once with a fresh token.
            assert handoffs.tokens == ["Bearer expired", "Bearer good"]
    finally:
        await server.stop(0)
