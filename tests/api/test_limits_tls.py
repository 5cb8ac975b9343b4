"""TLS and mutual TLS, per-caller rate and stream limits, and input size limits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.auth.principal import Role
from tests.auth_support import Channels, make_pki, retry_delay_s
from tests.support import Stubs, bad_request_fields, collect, customer_message, error_reason


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    # Transport and in-memory limits do not depend on the store: one backend is enough.
    if not database_url.startswith("sqlite"):
        pytest.skip("independent of the database")


async def _serving(channel: grpc.aio.Channel) -> bool:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    return response.status == health_pb2.HealthCheckResponse.SERVING


async def test_tls(start_server: Any, tmp_path: Path, sqlite_only: None) -> None:
    pki = make_pki(tmp_path)
    app, _ = await start_server(
        tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key)
    )
    channels = Channels(f"localhost:{app.port}", [])
    try:
        secure = channels.with_credential("", tls_ca=str(pki.ca))
        assert await _serving(secure)
        await Stubs.on(secure).agents.ListAgents(rr.ListAgentsRequest())
        # Plaintext against a TLS port fails.
        plain = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        channels.opened.append(plain)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _serving(plain)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channels.close()


async def test_mutual_tls_refuses_clients_without_a_certificate(
    start_server: Any, tmp_path: Path, sqlite_only: None
) -> None:
    pki = make_pki(tmp_path)
    app, _ = await start_server(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
    )
    target = f"localhost:{app.port}"
    without_cert = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(pki.ca_pem))
    with_cert = grpc.aio.secure_channel(
        target,
        grpc.ssl_channel_credentials(pki.ca_pem, pki.client_key, pki.client_cert),
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _serving(without_cert)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await _serving(with_cert)
        await Stubs.on(with_cert).agents.ListAgents(rr.ListAgentsRequest())
    finally:
        await without_cert.close()
        await with_cert.close()


async def _keyed(start_server: Any, **overrides: Any) -> tuple[Any, Channels, dict[str, str]]:
    app, _ = await start_server(dev_mode=False, **overrides)
    secrets = {}
    for name in ("a", "b"):
        _, secrets[name] = await app.keys.create(Role.INTEGRATION, name)
    return app, Channels(f"127.0.0.1:{app.port}", []), secrets


async def test_rate_limit_per_key_with_retry_info(start_server: Any, sqlite_only: None) -> None:
    _, channels, secrets = await _keyed(start_server, rate_limit_per_s=0.5, rate_limit_burst=3)
    try:
        a = Stubs.on(channels.with_credential(secrets["a"]))
        for _ in range(3):
            await a.agents.ListAgents(rr.ListAgentsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.agents.ListAgents(rr.ListAgentsRequest())
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(caught.value) == "RATE_LIMITED"
        delay = retry_delay_s(caught.value)
        assert delay is not None and 0 < delay <= 2.0
        # Another key has its own budget.
        b = Stubs.on(channels.with_credential(secrets["b"]))
        await b.agents.ListAgents(rr.ListAgentsRequest())
    finally:
        await channels.close()


async def test_customers_have_their_own_smaller_rate_limit(
    start_server: Any, sqlite_only: None
) -> None:
    _, channels, secrets = await _keyed(
        start_server, customer_rate_limit_per_s=0.5, customer_rate_limit_burst=2
    )
    try:
        backend = Stubs.on(channels.with_credential(secrets["a"]))
        session = await backend.new_session()
        token = await backend.customer_token(session.customer_id)
        customer = Stubs.on(channels.with_credential(token))
        for _ in range(2):
            await customer.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await customer.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(caught.value) == "RATE_LIMITED"
        # The integration key that issued the token keeps its own, larger budget.
        for _ in range(10):
            await backend.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    finally:
        await channels.close()


async def test_stream_limit_per_key(start_server: Any, sqlite_only: None) -> None:
    _, channels, secrets = await _keyed(start_server, max_streams_per_key=2)
    try:
        a = Stubs.on(channels.with_credential(secrets["a"]))
        session = await a.new_session()

        def follow(stubs: Stubs) -> Any:
            return stubs.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))

        first, second = follow(a), follow(a)
        for stream in (first, second):
            await collect(stream, until_caught_up=True)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await collect(follow(a), until_caught_up=True)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(caught.value) == "TOO_MANY_STREAMS"
        # Another key is not affected.
        b = Stubs.on(channels.with_credential(secrets["b"]))
        other = follow(b)
        await collect(other, until_caught_up=True)
        other.cancel()
        # Closing a stream frees its slot (once the server has seen the cancellation).
        first.cancel()
        async with asyncio.timeout(10):
            while True:
                third = follow(a)
                try:
                    await collect(third, until_caught_up=True)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.02)  # poll the condition until the deadline
        third.cancel()
        second.cancel()
    finally:
        await channels.close()


async def test_text_and_metadata_limits(start_server: Any) -> None:
    _, baton = await start_server(
        max_text_length=10,
        max_metadata_entries=2,
        max_metadata_key_length=5,
        max_metadata_value_length=8,
    )
    session = await baton.new_session()

    async def invalid(call: Any) -> list[str]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return bad_request_fields(caught.value)

    assert await invalid(baton.events.CreateEvent(customer_message(session.id, "x" * 11))) == [
        "message.text"
    ]
    await baton.say(session.id, "x" * 10)  # at the limit: fine
    assert await invalid(
        baton.customers.CreateCustomer(
            rr.CreateCustomerRequest(
                customer=pb.Customer(name="C", metadata={"a": "1", "b": "2", "c": "3"})
            )
        )
    ) == ["customer.metadata"]
    assert await invalid(
        baton.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(
                    agent_id=session.agent_id,
                    customer_id=session.customer_id,
                    metadata={"toolong": "v"},
                )
            )
        )
    ) == ["session.metadata"]
    assert await invalid(
        baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=session.id,
                session=pb.Session(metadata={"k": "v" * 9}),
                update_mask=field_mask_pb2.FieldMask(paths=["metadata"]),
            )
        )
    ) == ["session.metadata['k']"]
    assert await invalid(
        baton.customers.UpdateCustomer(
            rr.UpdateCustomerRequest(
                customer_id=session.customer_id,
                customer=pb.Customer(metadata={"k": "v" * 9}),
                update_mask=field_mask_pb2.FieldMask(paths=["metadata"]),
            )
        )
    ) == ["customer.metadata['k']"]
    events, _ = await collect(baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id)))
    assert len(events) == 2  # created + the one message at the limit: nothing else appended
