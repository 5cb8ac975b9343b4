"""`BatonClient`: one gRPC channel, typed helpers per service, `follow` and `watch_handoffs`."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import service_pb2_grpc as svc
from baton_client._credentials import Credentials, TokenProvider
from baton_client._follow import CaughtUpCallback, DeltaCallback, Follower, RetryCallback
from baton_client._handoffs import Auth, Guidelines, Handoffs, HandoffWatcher, Tools
from baton_client._interceptors import StreamAuthInterceptor, UnaryInterceptor
from baton_client._resources import (
    Agents,
    Customers,
    EnumArg,
    Events,
    Sessions,
    _kind,
    _source,
)
from baton_client._retry import RetryPolicy

#: Unary methods that are safe to send again after UNAVAILABLE: reads, CreateEvent (the client
#: always sends an idempotency key) and IssueCustomerToken (another token is harmless).
RETRYABLE_METHODS: dict[str, tuple[str, ...]] = {
    "baton.v1.AgentService": ("GetAgent", "ListAgents"),
    "baton.v1.CustomerService": ("GetCustomer", "ListCustomers"),
    "baton.v1.SessionService": ("GetSession", "ListSessions"),
    "baton.v1.EventService": ("CreateEvent",),
    "baton.v1.GuidelineService": ("GetGuideline", "ListGuidelines"),
    "baton.v1.CannedResponseService": ("GetCannedResponse", "ListCannedResponses"),
    "baton.v1.ToolService": ("ListTools",),
    "baton.v1.HandoffService": ("GetHandoff", "ListHandoffs", "GetHandoffStats"),
    "baton.v1.AuthService": ("IssueCustomerToken",),
}


#: The server-streaming methods: follow and watch_handoffs reconnect with their own backoff.
STREAMING_METHODS: dict[str, tuple[str, ...]] = {
    "baton.v1.EventService": ("ListEvents",),
    "baton.v1.HandoffService": ("WatchHandoffs",),
}


def service_config(
    max_attempts: int = 5,
    initial_backoff: float = 0.1,
    max_backoff: float = 2.0,
    multiplier: float = 2.0,
    *,
    wait_for_ready: bool = True,
) -> str:
    """gRPC service config JSON: retry RETRYABLE_METHODS on UNAVAILABLE (gRPC's own jittered
    exponential backoff; at most 5 attempts in all); with `wait_for_ready`, unary calls made
    while the channel has no connection (a server restarting) wait for one, up to their
    deadline, instead of failing at once with UNAVAILABLE."""

    def names(methods: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
        return [
            {"service": service, "method": method}
            for service, listed in methods.items()
            for method in listed
        ]

    services = sorted({*RETRYABLE_METHODS, "baton.v1.CannedResponseService"})
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": names(RETRYABLE_METHODS),
                    "waitForReady": wait_for_ready,
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": f"{initial_backoff}s",
                        "maxBackoff": f"{max_backoff}s",
                        "backoffMultiplier": multiplier,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                },
                # Every other unary method (a method entry wins over its service's entry).
                {"name": [{"service": s} for s in services], "waitForReady": wait_for_ready},
                {"name": names(STREAMING_METHODS), "waitForReady": False},
            ]
        }
    )


#: Channel options used unless overridden through `options=`.
DEFAULT_CHANNEL_OPTIONS: dict[str, object] = {
    # Ping the server every 30 s, also while only an idle follow stream is open (the server
    # allows pings every 10 s), so a dead connection is noticed within ~40 s and follow
    # streams reconnect instead of hanging.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.max_pings_without_data": 0,
    # After a server restart, reconnect the channel quickly rather than backing off up to the
    # gRPC default of 120 s (follow has its own jittered backoff on top).
    "grpc.initial_reconnect_backoff_ms": 250,
    "grpc.max_reconnect_backoff_ms": 5_000,
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
    # Retries of the safe unary calls on UNAVAILABLE (see RETRYABLE_METHODS).
    "grpc.enable_retries": 1,
    "grpc.service_config": service_config(),
}


@dataclass(frozen=True, slots=True)
class Stubs:
    """The generated stubs of all ten services on the client's channel (same credentials,
    options and typed errors on unary calls), for calls the helpers do not cover."""

    agents: svc.AgentServiceAsyncStub
    customers: svc.CustomerServiceAsyncStub
    sessions: svc.SessionServiceAsyncStub
    events: svc.EventServiceAsyncStub
    guidelines: svc.GuidelineServiceAsyncStub
    canned_responses: svc.CannedResponseServiceAsyncStub
    tools: svc.ToolServiceAsyncStub
    handoffs: svc.HandoffServiceAsyncStub
    auth: svc.AuthServiceAsyncStub
    # Tool workers use baton_client.ToolWorker, which runs this stream for them.
    tool_workers: svc.ToolWorkerServiceAsyncStub

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            agents=svc.AgentServiceStub(channel),
            customers=svc.CustomerServiceStub(channel),
            sessions=svc.SessionServiceStub(channel),
            events=svc.EventServiceStub(channel),
            guidelines=svc.GuidelineServiceStub(channel),
            canned_responses=svc.CannedResponseServiceStub(channel),
            tools=svc.ToolServiceStub(channel),
            handoffs=svc.HandoffServiceStub(channel),
            auth=svc.AuthServiceStub(channel),
            tool_workers=svc.ToolWorkerServiceStub(channel),
        )


def tls_credentials(ca: str | os.PathLike[str] | bytes | None = None) -> grpc.ChannelCredentials:
    """TLS channel credentials trusting `ca` (PEM bytes, or the path of a PEM file; the
    system's roots when None)."""
    if ca is None:
        return grpc.ssl_channel_credentials()
    pem = ca if isinstance(ca, bytes) else Path(ca).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=pem)


def is_loopback(target: str) -> bool:
    """Whether a gRPC target names this machine: a unix socket, localhost (or a name under
    .localhost), or a loopback IP address (127.0.0.0/8, ::1), with or without a "dns:///",
    "ipv4:" / "ipv6:" or "passthrough:///" scheme."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "passthrough:///", "dns:", "passthrough:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
            break
    if "," in target:  # ipv4:/ipv6: lists: every address must be local
        return all(is_loopback(part) for part in target.split(","))
    host = target
    if host.startswith("["):  # [::1]:8800 or [::1]
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # host:port
        host = host.rsplit(":", 1)[0]
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_credentials(
    target: str,
    *,
    sends_credentials: bool,
    ca: str | os.PathLike[str] | bytes | None = None,
    tls: bool = False,
    credentials: grpc.ChannelCredentials | None = None,
    insecure: bool = False,
) -> grpc.ChannelCredentials | None:
    """The transport `BatonClient` uses (None: plaintext): `credentials`, else TLS when `ca` or
    `tls` is given; else plaintext when `insecure`, when the target is a loopback one or when
    no credential is sent; else (a credential to another host) TLS with the system's roots, so
    a key or token is never sent in clear text unless asked for."""
    explicit_tls = credentials is not None or ca is not None or tls
    if insecure and explicit_tls:
        raise ValueError("insecure=True cannot be combined with ca, tls or credentials")
    if credentials is not None:
        return credentials
    if ca is not None or tls:
        return tls_credentials(ca)
    if insecure or not sends_credentials or is_loopback(target):
        return None
    return tls_credentials()


class BatonClient:
    """An asyncio client for Baton.

        async with BatonClient("127.0.0.1:8800", api_key="bk_key_...") as client:
            session = await client.sessions.create(agent_id=..., customer_id=...)
            async for event in client.follow(session.id):
                ...

    Credentials (sent as `authorization: Bearer ...` on every call), at most one of:
    - `api_key` / `token`: a fixed API key or customer token;
    - `token_provider`: a function (sync or async, no arguments) called when a token is
      needed; it returns the token string, a `Token(value, expires_at)` or the
      `IssueCustomerTokenResponse` of `issue_customer_token`. The token is cached until a
      minute (at most a quarter of its lifetime) before it expires; a call answered
      UNAUTHENTICATED is retried once with a fresh one (follow and watch_handoffs reopen
      their stream the same way);
    - `auth`: a `Credentials` object (e.g. shared between clients).

    Transport: `ca=` (PEM bytes or a path to a PEM file) gives TLS trusting that CA,
    `tls=True` TLS with the system's roots, `credentials=` any `grpc.ChannelCredentials`.
    Without them: plaintext for a loopback target (127.0.0.0/8, ::1, localhost, unix
    sockets) or when no credential is sent; TLS with the system's roots for a credential sent
    to any other host, unless `insecure=True` asks for plaintext (credentials in clear text:
    only on a network you trust). `options` are merged over `DEFAULT_CHANNEL_OPTIONS`
    (keepalive, reconnect backoff, retry of safe calls on UNAVAILABLE).

    - `deadline`: seconds each unary helper call may take (None: no limit); each helper also
      takes `deadline=`.
    - `wait_for_ready`: unary calls made while there is no connection (the server restarting)
      wait for one, up to their deadline (True, the default), or fail at once with
      UNAVAILABLE (False).
    - `retry`: default `RetryPolicy` of `follow` and `watch_handoffs`.
    - `interceptors`: extra grpc.aio client interceptors (after the client's own).
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        auth: Credentials | None = None,
        ca: str | os.PathLike[str] | bytes | None = None,
        tls: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        insecure: bool = False,
        options: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
        deadline: float | None = 30.0,
        retry: RetryPolicy | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        wait_for_ready: bool = True,
    ) -> None:
        self.target = target
        given = [x for x in (api_key, token, token_provider, auth) if x is not None]
        if len(given) > 1:
            raise ValueError("pass at most one of api_key, token, token_provider and auth")
        fixed = api_key if api_key is not None else token
        if auth is None and fixed:
            auth = Credentials(fixed)
        elif auth is None and token_provider is not None:
            auth = Credentials(provider=token_provider)
        #: The client's credentials (None: anonymous, e.g. a --dev server).
        self.auth_credentials = auth
        merged = dict(DEFAULT_CHANNEL_OPTIONS)
        if not wait_for_ready:
            merged["grpc.service_config"] = service_config(wait_for_ready=False)
        merged.update(dict(options or {}))
        all_interceptors: list[grpc.aio.ClientInterceptor] = [
            UnaryInterceptor(auth),
            StreamAuthInterceptor(auth),
            *interceptors,
        ]
        channel_options = list(merged.items())
        credentials = channel_credentials(
            target,
            sends_credentials=auth is not None,
            ca=ca,
            tls=tls,
            credentials=credentials,
            insecure=insecure,
        )
        #: Whether the channel is TLS (False: plaintext).
        self.secure = credentials is not None
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(
                target, credentials, options=channel_options, interceptors=all_interceptors
            )
        else:
            self.channel = grpc.aio.insecure_channel(
                target, options=channel_options, interceptors=all_interceptors
            )
        self.retry = retry or RetryPolicy()
        self.stubs = Stubs.on(self.channel)
        self.agents = Agents(self.stubs.agents, deadline)
        self.customers = Customers(self.stubs.customers, deadline)
        self.sessions = Sessions(self.stubs.sessions, deadline)
        self.events = Events(self.stubs.events, deadline)
        self.guidelines = Guidelines(self.stubs.guidelines, deadline)
        self.tools = Tools(self.stubs.tools, deadline)
        self.handoffs = Handoffs(self.stubs.handoffs, deadline)
        self.auth = Auth(self.stubs.auth, deadline)

    async def __aenter__(self) -> BatonClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Closes the channel; open calls (and follow streams) are cancelled after `grace`."""
        await self.channel.close(grace)

    async def wait_ready(self) -> None:
        """Waits until the channel is connected (wrap in `asyncio.timeout` to bound it)."""
        await self.channel.channel_ready()

    def follow(
        self,
        session_id: str,
        from_offset: int = 0,
        *,
        kinds: Sequence[EnumArg] = (),
        sources: Sequence[EnumArg] = (),
        retry: RetryPolicy | None = None,
        on_caught_up: CaughtUpCallback | None = None,
        on_retry: RetryCallback | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> Follower:
        """Follows a session's log from `from_offset`: stored events, then live ones.

        `async for event in client.follow(sid)` yields each event once, in offset order,
        reconnecting on UNAVAILABLE (server restart or shutdown, lost connection) per `retry`
        and resuming after the last delivered event (or the last heartbeat's `next_offset`
        when filtered by `kinds`/`sources`). NOT_FOUND, INVALID_ARGUMENT and other codes are
        raised as `BatonError`s. `on_caught_up()` (sync or async) runs once, when the stored
        history has been delivered; the returned `Follower` also has `.caught_up`,
        `.next_offset` and `.reconnects`. `on_retry(error, delay)` runs before each reconnect
        wait. `on_delta(delta)` receives the live pieces of AI replies being written
        (`MessageDelta`, transient: not replayed after a reconnect).
        """
        if from_offset < 0:
            raise ValueError("from_offset must not be negative")
        return Follower(
            self.stubs.events,
            session_id,
            from_offset,
            kinds=[_kind(k) for k in kinds],
            sources=[_source(s) for s in sources],
            retry=retry or self.retry,
            on_caught_up=on_caught_up,
            on_retry=on_retry,
            on_delta=on_delta,
            credentials=self.auth_credentials,
        )

    def watch_handoffs(
        self,
        *,
        agent_id: str = "",
        after_position: int | None = None,
        operator: pb.Participant | None = None,
        retry: RetryPolicy | None = None,
        on_caught_up: CaughtUpCallback | None = None,
        on_retry: RetryCallback | None = None,
    ) -> HandoffWatcher:
        """The operator inbox: an async iterator of `HandoffChange`s, each delivered once.

        Without `after_position` it starts with the open handoffs (type OPEN, all at the
        snapshot's position, delivered once the whole snapshot has arrived), then live
        changes; with it, every change after that position.
        When the stream breaks with UNAVAILABLE (restart, lost connection) it waits with
        jittered exponential backoff (`retry`) and resumes after the last position delivered
        (or reached by a heartbeat), so no change is lost or repeated. `operator` marks the
        watcher as an available operator (RequestHandoff reports operators available).
        """
        if after_position is not None and after_position < 0:
            raise ValueError("after_position must not be negative")
        return HandoffWatcher(
            self.stubs.handoffs,
            agent_id=agent_id,
            after_position=after_position,
            operator=operator,
            retry=retry or self.retry,
            on_caught_up=on_caught_up,
            on_retry=on_retry,
            credentials=self.auth_credentials,
        )
