"""`BatonClient`: one gRPC channel, typed helpers per service, and `follow`."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import grpc
from grpc.aio import (
    ClientCallDetails,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)

from baton.v1 import service_pb2_grpc as svc
from baton_client._follow import CaughtUpCallback, Follower, RetryCallback
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

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")

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
}


@dataclass(frozen=True, slots=True)
class Stubs:
    """The generated stubs on the client's channel, for calls the helpers do not cover."""

    agents: svc.AgentServiceAsyncStub
    customers: svc.CustomerServiceAsyncStub
    sessions: svc.SessionServiceAsyncStub
    events: svc.EventServiceAsyncStub
    # handoffs: svc.HandoffServiceStub -- add when HandoffService exists in the protos.

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            agents=svc.AgentServiceStub(channel),
            customers=svc.CustomerServiceStub(channel),
            sessions=svc.SessionServiceStub(channel),
            events=svc.EventServiceStub(channel),
        )


class _Metadata:
    """Adds fixed metadata (e.g. `authorization: Bearer ...`) to every call."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = tuple(pairs)

    def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in self._pairs:
            if key not in metadata.keys():
                metadata.add(key, value)
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )


# grpc.aio files an interceptor under one call type only, hence one class per type.
_Requests = AsyncIterable[_Request] | Iterable[_Request]


class _UnaryUnaryMetadata(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [ClientCallDetails, _Request], Awaitable[UnaryUnaryCall[_Request, _Response]]
        ],
        client_call_details: ClientCallDetails,
        request: _Request,
    ) -> UnaryUnaryCall[_Request, _Response]:
        return await continuation(self.details(client_call_details), request)


class _UnaryStreamMetadata(_Metadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [ClientCallDetails, _Request], Awaitable[UnaryStreamCall[_Request, _Response]]
        ],
        client_call_details: ClientCallDetails,
        request: _Request,
    ) -> UnaryStreamCall[_Request, _Response]:
        return await continuation(self.details(client_call_details), request)


class _StreamUnaryMetadata(_Metadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[
            [ClientCallDetails, _Requests[_Request]],
            Awaitable[StreamUnaryCall[_Request, _Response]],
        ],
        client_call_details: ClientCallDetails,
        request_iterator: _Requests[_Request],
    ) -> StreamUnaryCall[_Request, _Response]:
        return await continuation(self.details(client_call_details), request_iterator)


class _StreamStreamMetadata(_Metadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[
            [ClientCallDetails, _Requests[_Request]],
            Awaitable[StreamStreamCall[_Request, _Response]],
        ],
        client_call_details: ClientCallDetails,
        request_iterator: _Requests[_Request],
    ) -> StreamStreamCall[_Request, _Response]:
        return await continuation(self.details(client_call_details), request_iterator)


def metadata_interceptors(pairs: Sequence[tuple[str, str]]) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that add `pairs` to the metadata of every kind of call."""
    return [
        _UnaryUnaryMetadata(pairs),
        _UnaryStreamMetadata(pairs),
        _StreamUnaryMetadata(pairs),
        _StreamStreamMetadata(pairs),
    ]


class BatonClient:
    """An asyncio client for Baton.

        async with BatonClient("127.0.0.1:8800") as client:
            session = await client.sessions.create(agent_id=..., customer_id=...)
            async for event in client.follow(session.id):
                ...

    - `token`: sent as `authorization: Bearer <token>` on every call (helpers and `stubs`).
    - `credentials`: TLS channel credentials (e.g. `grpc.ssl_channel_credentials()`); plaintext
      when None.
    - `options`: gRPC channel options, merged over `DEFAULT_CHANNEL_OPTIONS`.
    - `deadline`: seconds each unary helper call may take (None: no limit); each helper also
      takes `deadline=`.
    - `retry`: default `RetryPolicy` of `follow`.
    - `interceptors`: extra grpc.aio client interceptors (after the token one).
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Mapping[str, object] | Sequence[tuple[str, object]] | None = None,
        deadline: float | None = 30.0,
        retry: RetryPolicy | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self.target = target
        merged = dict(DEFAULT_CHANNEL_OPTIONS)
        merged.update(dict(options or {}))
        all_interceptors: list[grpc.aio.ClientInterceptor] = []
        if token:
            all_interceptors += metadata_interceptors([("authorization", f"Bearer {token}")])
        all_interceptors += interceptors
        channel_options = list(merged.items())
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
        # self.handoffs = Handoffs(self.stubs.handoffs, deadline) -- when HandoffService exists.

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
    ) -> Follower:
        """Follows a session's log from `from_offset`: stored events, then live ones.

        `async for event in client.follow(sid)` yields each event once, in offset order,
        reconnecting on UNAVAILABLE (server restart or shutdown, lost connection) per `retry`
        and resuming after the last delivered event (or the last heartbeat's `next_offset`
        when filtered by `kinds`/`sources`). NOT_FOUND, INVALID_ARGUMENT and other codes are
        raised. `on_caught_up()` (sync or async) runs once, when the stored history has been
        delivered; the returned `Follower` also has `.caught_up`, `.next_offset` and
        `.reconnects`. `on_retry(error, delay)` runs before each reconnect wait.
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
        )
