"""The Python client's transport choice (no credential in clear text to another host), the
inbox snapshot held back until `caught_up`, typed errors on raw streaming calls and the refresh
margin of short-lived tokens. No test here connects anywhere but 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client import (
    BatonClient,
    BatonError,
    Credentials,
    FailedPrecondition,
    RetryPolicy,
    Token,
    channel_credentials,
    is_loopback,
)
from baton_server.cli import channel as cli_channel
from baton_server.cli import stats as cli_stats
from baton_server.cli.commands import app as cli_app

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05)


# ---------------------------------------------------------------- transport choice


@pytest.fixture
def channels(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Records the channels made (target, credentials or None for plaintext); every channel
    really made is a plaintext one to 127.0.0.1:1 (never used), so nothing reaches another
    host."""
    made: list[tuple[str, object]] = []
    real_insecure = grpc.aio.insecure_channel

    def insecure(target: str, *args: Any, **kwargs: Any) -> grpc.aio.Channel:
        made.append((target, None))
        return real_insecure("127.0.0.1:1", *args, **kwargs)

    def secure(target: str, credentials: object, *args: Any, **kwargs: Any) -> grpc.aio.Channel:
        made.append((target, credentials))
        return real_insecure("127.0.0.1:1", *args, **kwargs)

    monkeypatch.setattr(grpc.aio, "insecure_channel", insecure)
    monkeypatch.setattr(grpc.aio, "secure_channel", secure)
    return made


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1:8800", True),
        ("127.9.8.7:1", True),
        ("localhost:8800", True),
        ("LOCALHOST", True),
        ("api.localhost:8800", True),
        ("[::1]:8800", True),
        ("::1", True),
        ("dns:///localhost:8800", True),
        ("ipv4:127.0.0.1:1,127.0.0.2:2", True),
        ("unix:/tmp/baton.sock", True),
        ("baton.example.com:8800", False),
        ("10.0.0.5:8800", False),
        ("[2001:db8::1]:8800", False),
        ("dns:///baton.example.com:443", False),
        ("ipv4:127.0.0.1:1,10.0.0.1:2", False),
        ("localhost.example.com:8800", False),
        ("0.0.0.0:8800", False),
    ],
)
def test_is_loopback(target: str, loopback: bool) -> None:
    assert is_loopback(target) is loopback


@pytest.mark.parametrize(
    ("target", "kwargs", "secure"),
    [
        ("127.0.0.1:8800", {"api_key": "k"}, False),  # loopback: plaintext by default
        ("localhost:8800", {"api_key": "k"}, False),
        ("[::1]:8800", {"token": "t"}, False),
        ("baton.example.com:8800", {"api_key": "k"}, True),  # elsewhere: TLS by default
        ("baton.example.com:8800", {"token_provider": lambda: "t"}, True),
        ("baton.example.com:8800", {"auth": Credentials("k")}, True),
        ("baton.example.com:8800", {"api_key": "k", "insecure": True}, False),  # unless asked
        ("baton.example.com:8800", {}, False),  # no credential to protect
        ("127.0.0.1:8800", {"api_key": "k", "tls": True}, True),
        ("127.0.0.1:8800", {"tls": True}, True),
    ],
)
async def test_transport_choice(
    channels: list[tuple[str, object]], target: str, kwargs: dict[str, Any], secure: bool
) -> None:
    client = BatonClient(target, **kwargs)
    try:
        assert client.secure is secure
        [(made_target, credentials)] = channels
        assert made_target == target
        if secure:
            assert isinstance(credentials, grpc.ChannelCredentials)
        else:
            assert credentials is None
    finally:
        await client.close()


async def test_explicit_credentials_win_and_insecure_does_not_mix_with_tls(
    channels: list[tuple[str, object]],
) -> None:
    mine = grpc.ssl_channel_credentials()
    client = BatonClient("baton.example.com:8800", api_key="k", credentials=mine)
    await client.close()
    assert channels == [("baton.example.com:8800", mine)]
    for extra in ({"tls": True}, {"ca": b"pem"}, {"credentials": mine}):
        with pytest.raises(ValueError, match="insecure"):
            BatonClient("baton.example.com:8800", api_key="k", insecure=True, **extra)
    assert channel_credentials("baton.example.com:1", sends_credentials=False) is None
    assert channel_credentials("baton.example.com:1", sends_credentials=True) is not None


async def test_cli_channels_choose_the_same_way(channels: list[tuple[str, object]]) -> None:
    assert is_loopback(cli_channel.DEFAULT_TARGET)
    for client in (
        cli_channel.open_client(cli_channel.DEFAULT_TARGET, "k", None),
        cli_channel.open_client("baton.example.com:8800", "k", None),
        cli_channel.open_client("baton.example.com:8800", "k", None, insecure=True),
        cli_channel.open_client("127.0.0.1:8800", "", None, tls=True),
    ):
        await client.close()
    for channel in (
        cli_channel.open_channel("127.0.0.1:8800", "k", None),
        cli_channel.open_channel("baton.example.com:8800", "k", None),
        cli_channel.open_channel("baton.example.com:8800", "k", None, insecure=True),
    ):
        await channel.close()
    assert [credentials is not None for _, credentials in channels] == [
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]


def test_cli_passes_tls_and_insecure_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_open_client(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        raise RuntimeError("not connecting in this test")

    monkeypatch.setattr(cli_stats, "open_client", fake_open_client)
    runner = CliRunner()
    target = "baton.example.com:8800"
    runner.invoke(cli_app, ["stats", "--target", target, "--api-key", "k", "--insecure"])
    runner.invoke(cli_app, ["stats", "--target", target, "--api-key", "k", "--tls"])
    runner.invoke(cli_app, ["stats", "--target", target, "--api-key", "k"])
    assert calls == [
        ((target, "k", None), {"tls": False, "insecure": True}),
        ((target, "k", None), {"tls": True, "insecure": False}),
        ((target, "k", None), {"tls": False, "insecure": False}),
    ]


# ---------------------------------------------------------------- scripted inbox


def _open(handoff_id: str, position: int) -> pb.HandoffChange:
    return pb.HandoffChange(
        position=position,
        type=pb.HANDOFF_CHANGE_TYPE_OPEN,
        handoff=pb.Handoff(id=handoff_id),
    )


class _ScriptedHandoffs(svc.HandoffServiceServicer):
    """WatchHandoffs: the first stream sends part of a snapshot (h1, h2 at position 10) and
    breaks with UNAVAILABLE before `caught_up`; meanwhile h1 closed and h3 opened, so the
    next stream's snapshot (split in two responses, `caught_up` sent apart, as the server
    does) has h2 and h3 at position 12, then a live change at 13.

    With agent_id "fail": one change, then FAILED_PRECONDITION (for typed stream errors)."""

    def __init__(self) -> None:
        self.requests: list[rr.WatchHandoffsRequest] = []

    async def WatchHandoffs(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        if request.agent_id == "fail":
            yield rr.WatchHandoffsResponse(caught_up=True, caught_up_position=1)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "scripted refusal")
        if len(self.requests) == 1:
            yield rr.WatchHandoffsResponse(changes=[_open("h1", 10), _open("h2", 10)])
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scripted cut mid-snapshot")
        yield rr.WatchHandoffsResponse(changes=[_open("h2", 12)])
        yield rr.WatchHandoffsResponse(changes=[_open("h3", 12)])
        yield rr.WatchHandoffsResponse(caught_up=True, caught_up_position=12)
        yield rr.WatchHandoffsResponse(
            changes=[
                pb.HandoffChange(
                    position=13,
                    type=pb.HANDOFF_CHANGE_TYPE_REQUESTED,
                    handoff=pb.Handoff(id="h4"),
                )
            ]
        )
        await asyncio.Event().wait()


@pytest.fixture
async def scripted() -> Any:
    handoffs = _ScriptedHandoffs()
    server = grpc.aio.server()
    svc.add_HandoffServiceServicer_to_server(handoffs, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield handoffs, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_snapshot_cut_before_caught_up_is_not_repeated(scripted: Any) -> None:
    handoffs, target = scripted
    order: list[str] = []
    async with BatonClient(target, retry=FAST_RETRY) as client:
        watcher = client.watch_handoffs(on_caught_up=lambda: order.append("caught_up"))
        async with watcher, asyncio.timeout(10):
            for _ in range(3):
                change = await anext(watcher)
                order.append(f"{change.handoff.id}@{change.position}")
        assert order == ["h2@12", "h3@12", "caught_up", "h4@13"]
        assert watcher.reconnects == 1 and watcher.failures == 0
        assert watcher.position == 13
    assert [r.HasField("after_position") for r in handoffs.requests] == [False, False]


# ---------------------------------------------------------------- typed stream errors


async def test_raw_streaming_calls_raise_typed_errors(scripted: Any) -> None:
    _, target = scripted
    async with BatonClient(target) as client:
        call = client.stubs.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(agent_id="fail"))
        received = []
        with pytest.raises(FailedPrecondition) as err:
            async with asyncio.timeout(10):
                async for response in call:
                    received.append(response)
        assert [r.caught_up_position for r in received] == [1]
        assert isinstance(err.value, BatonError)
        assert err.value.details() == "scripted refusal"
        assert await call.code() == grpc.StatusCode.FAILED_PRECONDITION

        call = client.stubs.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(agent_id="fail"))
        async with asyncio.timeout(10):
            assert (await call.read()).caught_up_position == 1
            with pytest.raises(FailedPrecondition):
                await call.read()


# ---------------------------------------------------------------- short-lived tokens


async def test_short_lived_tokens_are_cached_for_most_of_their_lifetime() -> None:
    issued: list[Token] = []

    def provider(lifetime: float) -> Any:
        def fetch() -> Token:
            issued.append(Token(f"t{len(issued)}", time.time() + lifetime))
            return issued[-1]

        return fetch

    # 30 s, inside the 60 s margin: cached (refreshed 7.5 s before expiry), not re-fetched.
    credentials = Credentials(provider=provider(30))
    assert [await credentials.token() for _ in range(5)] == ["t0"] * 5
    assert credentials.fetches == 1

    # 0.4 s: refreshed in its last quarter (0.1 s), not before.
    issued.clear()
    brief = Credentials(provider=provider(0.4))
    assert await brief.token() == await brief.token() == "t0"
    await asyncio.sleep(0.35)
    assert await brief.token() == "t1"
    assert brief.fetches == 2

    # A long-lived token keeps the full margin.
    issued.clear()
    hourly = Credentials(provider=provider(3600), refresh_margin=60)
    assert await hourly.token() == "t0"
    assert hourly._fresh(Token("x", time.time() + 61))
    assert not hourly._fresh(Token("x", time.time() + 59))
