"""The client's interceptors: credentials on every call, typed errors, idempotency keys, and
the retries a service config cannot express (a refreshed token, RetryInfo)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import grpc
from grpc.aio import (
    ClientCallDetails,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)

from baton.v1 import request_response_pb2 as rr
from baton_client._credentials import Credentials
from baton_client.errors import as_baton_error

log = logging.getLogger("baton_client")

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Requests = AsyncIterable[_Request] | Iterable[_Request]

CREATE_EVENT = "/baton.v1.EventService/CreateEvent"


def _method(details: ClientCallDetails) -> str:
    # Typed as str, but grpc.aio passes the method name as bytes.
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def _with_metadata(
    details: ClientCallDetails, pairs: Sequence[tuple[str, str]]
) -> ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in pairs:
        if key not in metadata.keys():
            metadata.add(key, value)
    return ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _Metadata:
    """Adds fixed metadata (e.g. `authorization: Bearer ...`) to every call."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = tuple(pairs)

    def details(self, details: ClientCallDetails) -> ClientCallDetails:
        return _with_metadata(details, self._pairs)


# grpc.aio files an interceptor under one call type only, hence one class per type.
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


class _Auth:
    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials

    async def details(self, details: ClientCallDetails) -> tuple[ClientCallDetails, str | None]:
        if self.credentials is None:
            return details, None
        token = await self.credentials.token()
        return _with_metadata(details, [("authorization", f"Bearer {token}")]), token


class UnaryInterceptor(_Auth, grpc.aio.UnaryUnaryClientInterceptor):
    """Every unary call: the bearer credential; an idempotency key on CreateEvent when the
    caller gave none (so the service config's retries and ours never append twice); one retry
    with a fresh token after UNAUTHENTICATED when a provider supplies the credential; up to
    `retry_info_attempts` retries after RESOURCE_EXHAUSTED carrying a RetryInfo delay of at most
    `max_retry_info_delay` seconds (the server rejected the call before running it); failures
    raised as typed `BatonError`s."""

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        retry_info_attempts: int = 2,
        max_retry_info_delay: float = 5.0,
    ) -> None:
        super().__init__(credentials)
        self.retry_info_attempts = retry_info_attempts
        self.max_retry_info_delay = max_retry_info_delay

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [ClientCallDetails, _Request], Awaitable[UnaryUnaryCall[_Request, _Response]]
        ],
        client_call_details: ClientCallDetails,
        request: _Request,
    ) -> UnaryUnaryCall[_Request, _Response]:
        if (
            _method(client_call_details) == CREATE_EVENT
            and isinstance(request, rr.CreateEventRequest)
            and not request.idempotency_key
        ):
            keyed = rr.CreateEventRequest()
            keyed.CopyFrom(request)
            keyed.idempotency_key = f"auto-{uuid.uuid4().hex}"
            request = keyed  # type: ignore[assignment]  # same message type
        refreshed = False
        throttled = 0
        while True:
            details, token = await self.details(client_call_details)
            call = await continuation(details, request)
            try:
                await call
            except grpc.aio.AioRpcError as raw:
                error = as_baton_error(raw)
            else:
                return call
            code = error.code()
            if (
                code == grpc.StatusCode.UNAUTHENTICATED
                and not refreshed
                and self.credentials is not None
                and self.credentials.invalidate(token)
            ):
                refreshed = True
                log.info("%s: UNAUTHENTICATED; retrying with a fresh token", details.method)
                continue
            delay = error.retry_delay
            if (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED
                and delay is not None
                and delay <= self.max_retry_info_delay
                and throttled < self.retry_info_attempts
            ):
                throttled += 1
                log.info("%s: RESOURCE_EXHAUSTED; retrying in %.2fs", details.method, delay)
                await asyncio.sleep(delay)
                continue
            raise error


class StreamAuthInterceptor(_Auth, grpc.aio.UnaryStreamClientInterceptor):
    """Server-streaming calls: the bearer credential (follow and watch_handoffs refresh it and
    reopen the stream after UNAUTHENTICATED), and typed errors: reading the stream (`async
    for` or `read()`) raises a `BatonError` instead of a bare `AioRpcError`."""

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [ClientCallDetails, _Request], Awaitable[UnaryStreamCall[_Request, _Response]]
        ],
        client_call_details: ClientCallDetails,
        request: _Request,
    ) -> AsyncIterator[_Response]:
        details, _ = await self.details(client_call_details)
        call = await continuation(details, request)
        # grpc.aio accepts a response iterator here: it keeps the call itself for cancel(),
        # code(), metadata, ... and reads the responses (also for read()) from the iterator.
        return _typed_errors(call)


async def _typed_errors(responses: AsyncIterable[_Response]) -> AsyncIterator[_Response]:
    try:
        async for response in responses:
            yield response
    except grpc.aio.AioRpcError as raw:
        raise as_baton_error(raw) from None
