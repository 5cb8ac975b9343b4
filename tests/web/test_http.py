"""What the HTTP port adds to the gRPC contract: the same credentials, limits and errors over
Connect and gRPC-Web; follow streams that resume across a reconnect; plain HTTP (curl, CORS,
static files); start and stop with the server."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.app import BatonApp, ConfigurationError, check_settings
from baton_server.auth.principal import Role
from baton_server.config import Settings
from baton_server.observe.logs import ACCESS_LOGGER
from tests.auth_support import TOKEN_SECRET, retry_delay_s
from tests.support import Stubs, bad_request_fields, collect, error_reason

pytestmark = pytest.mark.usefixtures("transport")


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    # The transport and the in-memory limits do not depend on the store: one backend is enough.
    if not database_url.startswith("sqlite"):
        pytest.skip("independent of the database")


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def _secured(start_server: Any, http_clients: Any, **overrides: Any) -> tuple[Any, Any]:
    app, _ = await start_server(dev_mode=False, token_secret=TOKEN_SECRET, **overrides)
    return app, http_clients(app.http_port)


# ---------------------------------------------------------------- credentials, limits, errors


async def test_credentials_roles_and_customer_tokens(
    start_server: Any, http_clients: Any, sqlite_only: None
) -> None:
    app, clients = await _secured(start_server, http_clients)
    for credential in (None, "bk_key_nope_00", "not-a-token"):
        error = await refused(clients.stubs(credential).agents.ListAgents(rr.ListAgentsRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(error) == "UNAUTHENTICATED"
    _, secret = await app.keys.create(Role.INTEGRATION, "backend")
    backend = clients.stubs(secret)
    session, other = await backend.new_session(), await backend.new_session()
    customer = clients.stubs(await backend.customer_token(session.customer_id))
    # A customer reads and writes its own session...
    await customer.say(session.id, "hello")
    events, _ = await collect(
        customer.events.ListEvents(rr.ListEventsRequest(session_id=session.id))
    )
    assert [e.message.text for e in events if e.kind == pb.EVENT_KIND_MESSAGE] == ["hello"]
    # ...and nothing else.
    denied = await refused(customer.agents.ListAgents(rr.ListAgentsRequest()))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    for call in (
        customer.say(other.id, "hi"),
        collect(customer.events.ListEvents(rr.ListEventsRequest(session_id=other.id))),
    ):
        assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_rate_limit_answers_resource_exhausted_with_retry_info(
    start_server: Any, http_clients: Any, sqlite_only: None
) -> None:
    app, clients = await _secured(
        start_server, http_clients, rate_limit_per_s=0.5, rate_limit_burst=3
    )
    _, secret = await app.keys.create(Role.INTEGRATION, "a")
    a = clients.stubs(secret)
    for _ in range(3):
        await a.agents.ListAgents(rr.ListAgentsRequest())
    error = await refused(a.agents.ListAgents(rr.ListAgentsRequest()))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(error) == "RATE_LIMITED"
    delay = retry_delay_s(error)
    assert delay is not None and 0 < delay <= 2.0


async def test_a_customer_that_disconnects_gets_its_stream_slot_back(
    start_server: Any, http_clients: Any, sqlite_only: None
) -> None:
    app, clients = await _secured(start_server, http_clients, max_streams_per_customer=2)
    _, secret = await app.keys.create(Role.INTEGRATION, "backend")
    backend = clients.stubs(secret)
    session = await backend.new_session()
    customer = clients.stubs(await backend.customer_token(session.customer_id))
    follow = rr.ListEventsRequest(session_id=session.id, follow=True)
    streams = [customer.events.ListEvents(follow) for _ in range(2)]
    for stream in streams:
        await collect(stream, until_caught_up=True)
    assert app.bus.subscriber_count == 2
    error = await refused(collect(customer.events.ListEvents(follow), until_caught_up=True))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(error) == "TOO_MANY_STREAMS"
    # The client goes away: the server sees the connection close, ends the call, frees the slot
    # and the subscription.
    streams[0].cancel()
    deadline = time.monotonic() + 10
    while app.bus.subscriber_count != 1:
        assert time.monotonic() < deadline, "the subscription outlived its client"
        await asyncio.sleep(0.02)
    again = customer.events.ListEvents(follow)
    await collect(again, until_caught_up=True)
    again.cancel()
    streams[1].cancel()


async def test_invalid_argument_names_the_field(baton: Stubs) -> None:
    session = await baton.new_session()
    error = await refused(
        baton.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=session.id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=pb.EVENT_SOURCE_CUSTOMER,
                message=pb.MessageData(text=" "),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(error) == ["message.text"]


# ---------------------------------------------------------------- follow resume


async def test_follow_resumes_after_a_reconnect_with_no_duplicate_and_no_gap(baton: Stubs) -> None:
    session = await baton.new_session()
    for i in range(3):
        await baton.say(session.id, f"before {i}")
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    seen, responses = await collect(stream, until_caught_up=True)
    resume_at = responses[-1].next_offset
    assert responses[-1].caught_up and resume_at == seen[-1].offset + 1
    await baton.say(session.id, "live")
    live, _ = await collect(stream, until_offset=resume_at)
    seen += live
    stream.cancel()  # the connection drops
    for i in range(5):
        await baton.say(session.id, f"while away {i}")
    again = baton.events.ListEvents(
        rr.ListEventsRequest(session_id=session.id, follow=True, min_offset=seen[-1].offset + 1)
    )
    rest, responses = await collect(again, until_caught_up=True)
    await baton.say(session.id, "after")
    more, _ = await collect(again, until_offset=rest[-1].offset + 1)
    again.cancel()
    offsets = [e.offset for e in seen + rest + more]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    assert [e.message.text for e in (rest + more)[-6:]] == [
        *(f"while away {i}" for i in range(5)),
        "after",
    ]


async def test_stopping_the_server_ends_http_followers_with_unavailable(
    start_server: Any, sqlite_only: None
) -> None:
    app, baton = await start_server()
    session = await baton.new_session()
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    await collect(stream, until_caught_up=True)
    stopping = asyncio.create_task(app.stop(grace=5.0))
    error = await refused(collect(stream))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    async with asyncio.timeout(10):
        await stopping


# ---------------------------------------------------------------- plain HTTP


def _http(
    port: int, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request as curl sends it (the path as given: no normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


async def request(
    port: int, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(_http, port, method, path, body, **headers)


JSON = {"content_type": "application/json"}


@pytest.mark.parametrize("transport", ["connect-json"], indirect=True)
async def test_curl_gets_json_and_connect_errors(start_server: Any, sqlite_only: None) -> None:
    app, _ = await start_server()
    port = app.http_port
    status, headers, body = await request(
        port, "POST", "/baton.v1.AgentService/ListAgents", b"{}", **JSON
    )
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {})
    status, _, body = await request(
        port, "POST", "/baton.v1.AgentService/CreateAgent", b'{"agent": {"name": "Ada"}}', **JSON
    )
    assert status == 200 and json.loads(body)["agent"]["name"] == "Ada"
    # Client mistakes are Connect errors saying what is wrong, never internal.
    for payload, needle in ((b"{bad", "JSON"), (b'{"agnt": {}}', "agnt")):
        status, _, body = await request(
            port, "POST", "/baton.v1.AgentService/CreateAgent", payload, **JSON
        )
        error = json.loads(body)
        assert (status, error["code"]) == (400, "invalid_argument"), error
        assert needle in error["message"]
        assert {d["type"] for d in error["details"]} == {
            "google.rpc.ErrorInfo",
            "google.rpc.BadRequest",
        }
    status, _, body = await request(
        port, "POST", "/baton.v1.AgentService/GetAgent", b'{"agentId": "agt_nope"}', **JSON
    )
    assert (status, json.loads(body)["code"]) == (404, "not_found")
    status, _, _ = await request(
        port, "POST", "/baton.v1.AgentService/ListAgents", b"{}", content_type="text/plain"
    )
    assert status == 415
    status, _, _ = await request(port, "POST", "/baton.v1.AgentService/Nope", b"{}", **JSON)
    assert status == 404


@pytest.mark.parametrize("transport", ["connect-json"], indirect=True)
async def test_curl_without_credentials_gets_a_connect_unauthenticated_error(
    start_server: Any, sqlite_only: None
) -> None:
    app, _ = await start_server(dev_mode=False, token_secret=TOKEN_SECRET)
    status, headers, body = await request(
        app.http_port, "POST", "/baton.v1.AgentService/ListAgents", b"{}", **JSON
    )
    error = json.loads(body)
    assert (status, headers["content-type"], error["code"]) == (
        401,
        "application/json",
        "unauthenticated",
    )
    assert "authorization: Bearer" in error["message"]


@pytest.mark.parametrize("transport", ["connect-json"], indirect=True)
async def test_cors_for_the_configured_origins_only(start_server: Any, sqlite_only: None) -> None:
    app, _ = await start_server(cors_origins=("https://shop.example.com",))
    port, path = app.http_port, "/baton.v1.EventService/ListEvents"
    status, headers, _ = await request(
        port,
        "OPTIONS",
        path,
        origin="https://shop.example.com",
        access_control_request_method="POST",
        access_control_request_headers="authorization,content-type,connect-protocol-version",
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://shop.example.com"
    allowed = headers["access-control-allow-headers"]
    assert all(
        h in allowed
        for h in ("authorization", "content-type", "connect-protocol-version", "x-grpc-web")
    )
    exposed = headers["access-control-expose-headers"]
    assert all(h in exposed for h in ("grpc-status", "grpc-message", "grpc-status-details-bin"))
    status, headers, _ = await request(port, "OPTIONS", path, origin="https://evil.example.com")
    assert status == 204 and "access-control-allow-origin" not in headers
    _, headers, _ = await request(
        port,
        "POST",
        "/baton.v1.AgentService/ListAgents",
        b"{}",
        origin="https://shop.example.com",
        **JSON,
    )
    assert headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "grpc-status" in headers["access-control-expose-headers"]


@pytest.mark.parametrize("transport", ["connect-json"], indirect=True)
async def test_static_web_apps(start_server: Any, sqlite_only: None, tmp_path: Path) -> None:
    root = tmp_path / "dist"
    (root / "widget" / "assets").mkdir(parents=True)
    (root / "widget" / "index.html").write_text("<!doctype html><title>widget</title>")
    (root / "widget" / "assets" / "app-1a2b.js").write_text("console.log('hi')")
    (tmp_path / "secret.txt").write_text("not for you")
    app, _ = await start_server(web_root=str(root))
    port = app.http_port
    status, headers, _ = await request(port, "GET", "/widget")
    assert (status, headers["location"]) == (308, "/widget/")
    status, headers, body = await request(port, "GET", "/widget/")
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert b"<title>widget</title>" in body and headers["cache-control"] == "no-cache"
    status, _, _ = await request(port, "GET", "/widget/", if_none_match=headers["etag"])
    assert status == 304
    status, headers, body = await request(port, "GET", "/widget/assets/app-1a2b.js")
    assert (status, body) == (200, b"console.log('hi')")
    assert headers["content-type"].startswith("text/javascript")
    assert "immutable" in headers["cache-control"]
    for sneaky in (
        "/widget/../secret.txt",
        "/widget/../../secret.txt",
        "/widget/%2e%2e/secret.txt",
        "/widget/..%2fsecret.txt",
        "/widget/assets/../../../secret.txt",
    ):
        status, _, body = await request(port, "GET", sneaky)
        assert status == 404 and b"not for you" not in body, sneaky
    status, _, body = await request(port, "GET", "/console/")
    assert status == 404 and b"console" in body  # not built: says so
    status, _, _ = await request(port, "POST", "/widget/", b"x")
    assert status == 405


# ---------------------------------------------------------------- start, stop, observe


@pytest.mark.parametrize("transport", ["connect-json"], indirect=True)
async def test_a_taken_http_port_is_a_clean_start_failure(
    start_server: Any, settings: Settings, sqlite_only: None
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        app = BatonApp(replace(settings, http_port=taken.getsockname()[1]))
        with pytest.raises(ConfigurationError, match="--http-port"):
            await app.start()
    finally:
        taken.close()
    with pytest.raises(ConfigurationError, match="--http-host"):
        check_settings(Settings(dev_mode=True, http_port=0, http_host="0.0.0.0"), True)


async def test_http_calls_are_observed_like_grpc_calls(
    start_server: Any, sqlite_only: None, caplog: pytest.LogCaptureFixture
) -> None:
    _, baton = await start_server(access_log=True)
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    await baton.agents.ListAgents(rr.ListAgentsRequest())
    await refused(baton.sessions.GetSession(rr.GetSessionRequest(session_id="ses_nope")))
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    codes = {(r.rpc_method, r.code) for r in lines}  # type: ignore[attr-defined]
    assert ("/baton.v1.AgentService/ListAgents", "OK") in codes
    assert ("/baton.v1.SessionService/GetSession", "NOT_FOUND") in codes
