"""The one place that turns exceptions into gRPC statuses (AIP-193 style rich errors).

Installed as a server interceptor, so every RPC, present and future, is covered: domain errors
become precise codes with google.rpc.ErrorInfo (and BadRequest for field problems), undecodable
requests become INVALID_ARGUMENT, and anything unexpected is logged and returned as INTERNAL
without internals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from baton_server.api.interception import rewrapped
from baton_server.errors import (
    AlreadyExists,
    BatonError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ShuttingDown,
    StaleEpoch,
    Unauthenticated,
)

log = logging.getLogger(__name__)

ERROR_DOMAIN = "baton.v1"

_CODES: list[tuple[type[BatonError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (ShuttingDown, code_pb2.UNAVAILABLE),
    (StaleEpoch, code_pb2.ABORTED),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
]


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_for(error: BatonError) -> grpc.Status:
    code = next((c for t, c in _CODES if isinstance(error, t)), code_pb2.FAILED_PRECONDITION)
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
            )
        )
    ]
    if isinstance(error, InvalidArgument):
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    if isinstance(error, ResourceExhausted) and error.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, int(error.retry_after_s * 1e9)))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return rpc_status.to_status(
        status_pb2.Status(code=code, message=error.message, details=details)
    )


async def _abort(context: grpc.aio.ServicerContext, error: BaseException, method: str) -> None:
    if isinstance(error, BatonError):
        await context.abort_with_status(status_for(error))
    log.exception("unexpected error in %s", method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server logged the details")


_UNDECODABLE = InvalidArgument.single("request", "could not be decoded as the expected message")


def nul_field(message: Message, prefix: str = "") -> str | None:
    """Path of the first string field holding a NUL character, if any.

    PostgreSQL cannot store NUL in text and SQLite can: reject it for every RPC, in one place, so
    both backends answer the same.
    """
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            values = value if field.is_repeated else [value]
            if any("\x00" in v for v in values):
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
                        return f"{path}[{key!r}]"
                    if isinstance(item, Message) and (
                        found := nul_field(item, f"{path}[{key!r}].")
                    ):
                        return found
                continue
            items = value if field.is_repeated else [value]
            for i, item in enumerate(items):
                label = f"{path}[{i}]." if field.is_repeated else f"{path}."
                if found := nul_field(item, label):
                    return found
    return None


def decode_request(deserializer: Callable[[bytes], Any], data: bytes) -> Any:
    """The request message from its bytes, or INVALID_ARGUMENT: undecodable, or a string field
    holding NUL."""
    try:
        request = deserializer(data)
    except (DecodeError, ValueError, TypeError):
        raise _UNDECODABLE from None
    if isinstance(request, Message) and (field := nul_field(request)):
        raise InvalidArgument.single(field, "must not contain NUL (\\x00) characters")
    return request


# Decoding of one handler's requests: None when the handler decodes them itself (the auth
# interceptor's, which admits the caller before it spends anything on the request).
Decode = Callable[[bytes], Any] | None


def _decoded(decode: Decode, data: Any) -> Any:
    return data if decode is None else decode_request(decode, data)


def _wrap_unary(
    behavior: Callable[..., Awaitable[Any]], method: str, decode: Decode
) -> Callable[..., Any]:
    async def handle(data: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(_decoded(decode, data), context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as error:
            await _abort(context, error, method)

    return handle


def _wrap_stream(
    behavior: Callable[..., AsyncIterator[Any]], method: str, decode: Decode
) -> Callable[..., Any]:
    async def handle(data: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(_decoded(decode, data), context):
                yield response
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
            raise
        except Exception as error:
            await _abort(context, error, method)

    return handle


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        decode = handler.request_deserializer
        wrapped = rewrapped(
            handler,
            lambda behavior: _wrap_unary(behavior, method, decode),
            lambda behavior: _wrap_stream(behavior, method, decode),
        )
        self._cache[method] = wrapped
        return wrapped
