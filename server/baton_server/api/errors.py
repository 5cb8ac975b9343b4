"""The one place that turns exceptions into gRPC statuses (AIP-193 style rich errors).

Installed as a server interceptor, so every RPC, present and future, is covered: domain errors
become precise codes with google.rpc.ErrorInfo (and BadRequest for field problems), undecodable
requests become INVALID_ARGUMENT, and anything unexpected is logged and returned as INTERNAL
without internals.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from baton_server.api.grpc_types import Context, Handler
from baton_server.api.interception import rewrapped
from baton_server.api.observing import CallObserver, outcome_of
from baton_server.errors import (
    AlreadyExists,
    BatonError,
    DatabaseUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ShuttingDown,
    StaleEpoch,
    Unauthenticated,
)
from baton_server.observe.context import current_call, note_ids
from baton_server.store.database import is_unreachable

log = logging.getLogger(__name__)

ERROR_DOMAIN = "baton.v1"

_CODES: list[tuple[type[BatonError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (ShuttingDown, code_pb2.UNAVAILABLE),
    (DatabaseUnavailable, code_pb2.UNAVAILABLE),
    (StaleEpoch, code_pb2.ABORTED),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
]


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_proto_for(error: BatonError) -> status_pb2.Status:
    """A Baton error as a google.rpc.Status: its code, message and details (ErrorInfo, plus
    BadRequest for field problems and RetryInfo for limits)."""
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
    return status_pb2.Status(code=code, message=error.message, details=details)


def status_for(error: BatonError) -> grpc.Status:
    return rpc_status.to_status(status_proto_for(error))


INTERNAL_MESSAGE = "internal error; the server logged the details"


def error_status(error: BaseException, method: str) -> status_pb2.Status:
    """The status any error raised by a call ends it with, whichever transport carried it
    (gRPC here, Connect and gRPC-Web in web/): the one mapping of errors to statuses.
    Anything unexpected is logged and becomes INTERNAL without internals."""
    if not isinstance(error, BatonError) and is_unreachable(error):
        log.warning("%s: the database cannot be reached (%s)", method, type(error).__name__)
        error = DatabaseUnavailable(
            "the database cannot be reached right now; retry shortly (health reports "
            "NOT_SERVING until it can)"
        )
    if isinstance(error, BatonError):
        return status_proto_for(error)
    log.exception("unexpected error in %s", method, exc_info=error)
    return status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE)


async def _abort(context: Context, error: BaseException, method: str) -> None:
    status = error_status(error, method)
    if status.details:
        await context.abort_with_status(rpc_status.to_status(status))
    await context.abort(grpc.StatusCode.INTERNAL, status.message)


_UNDECODABLE = InvalidArgument.single("request", "could not be decoded as the expected message")


# C0 controls but tab, LF and CR; DEL; C1 controls; bidi embeddings, overrides and isolates.
# Consoles and terminals act on them (erase lines, set titles, write the clipboard, reorder
# text), and PostgreSQL cannot store NUL at all: no string a client sends may carry them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _bad(value: object) -> str | None:
    found = _CONTROL.search(value) if isinstance(value, str) else None
    return found.group() if found else None


def control_character_field(message: Message, prefix: str = "") -> tuple[str, str] | None:
    """(path, character) of the first string, map key or Struct value holding a control
    character, if any. Checked for every RPC in one place, so every field answers the same.
    (Paths are built only for a finding: this runs on every request.)"""
    for field, value in message.ListFields():
        kind = field.type
        if kind == _STRING:
            for item in value if field.is_repeated else (value,):
                if match := _CONTROL.search(item):
                    return f"{prefix}{field.name}", match.group()
        elif kind == _MESSAGE:
            if _is_map(field):
                for key, item in value.items():
                    if found := _bad(key) or _bad(item):
                        return f"{prefix}{field.name}[{key!r}]", found
                    if isinstance(item, Message) and (
                        nested := control_character_field(item, f"{prefix}{field.name}[{key!r}].")
                    ):
                        return nested
            elif field.is_repeated:
                for i, item in enumerate(value):
                    if nested := control_character_field(item, f"{prefix}{field.name}[{i}]."):
                        return nested
            elif nested := control_character_field(value, f"{prefix}{field.name}."):
                return nested
    return None


_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
# Whether a message field is a map, by field (descriptor options are slow to read per call).
_MAP_FIELDS: dict[FieldDescriptor, bool] = {}


def _is_map(field: FieldDescriptor) -> bool:
    known = _MAP_FIELDS.get(field)
    if known is None:
        entry = field.message_type
        known = _MAP_FIELDS[field] = bool(entry is not None and entry.GetOptions().map_entry)
    return known


def decode_request(deserializer: Callable[[bytes], Any], data: bytes) -> Any:
    """The request message from its bytes, or INVALID_ARGUMENT: undecodable, or a string field
    holding a control character (NUL included)."""
    try:
        request = deserializer(data)
    except (DecodeError, ValueError, TypeError):
        raise _UNDECODABLE from None
    if isinstance(request, Message) and (found := control_character_field(request)):
        field, character = found
        if character == "\x00":
            raise InvalidArgument.single(field, "must not contain NUL (\\x00) characters")
        raise InvalidArgument.single(
            field,
            f"must not contain control characters (found U+{ord(character):04X}); only tab, "
            "line feed and carriage return are allowed",
        )
    if current_call() is not None:
        # For log lines while the call runs (only when observability bound a call context).
        note_ids(getattr(request, "session_id", ""), getattr(request, "handoff_id", ""))
    return request


# Decoding of one handler's requests: None when the handler decodes them itself (the auth
# interceptor's, which admits the caller before it spends anything on the request).
Decode = Callable[[bytes], Any] | None


def _decoded(decode: Decode, data: Any) -> Any:
    return data if decode is None else decode_request(decode, data)


def _wrap_unary(
    behavior: Callable[..., Awaitable[Any]],
    method: str,
    decode: Decode,
    observer: CallObserver | None,
) -> Callable[..., Any]:
    async def handle(data: Any, context: Context) -> Any:
        try:
            return await behavior(_decoded(decode, data), context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as error:
            await _abort(context, error, method)

    if observer is None:
        return handle

    async def observed(data: Any, context: Context) -> Any:
        call = observer.begin(method, context)
        try:
            response = await handle(data, context)
        except BaseException as error:
            call.end(outcome_of(error, context))
            raise
        call.end("OK")
        return response

    return observed


def _wrap_stream(
    behavior: Callable[..., AsyncIterator[Any]],
    method: str,
    decode: Decode,
    observer: CallObserver | None,
) -> Callable[..., Any]:
    async def handle(data: Any, context: Context) -> AsyncIterator[Any]:
        call = observer.begin(method, context, stream=True) if observer is not None else None
        code = "OK"
        try:
            async for response in behavior(_decoded(decode, data), context):
                yield response
                # An idle stream parks in the next step: let the message it sent go meanwhile.
                response = None
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit) as error:
            code = outcome_of(error, context)
            raise
        except Exception as error:
            try:
                await _abort(context, error, method)
            except grpc.aio.AbortError as aborted:
                code = outcome_of(aborted, context)
                raise
        finally:
            if call is not None:
                call.end(code)

    return handle


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps every error to its status, in one place; with an `observer` it also reports each
    call's status and duration (metrics, span, access log): the outermost layer, so it sees
    authentication failures too, without a second interceptor's cost on every call."""

    def __init__(self, observer: CallObserver | None = None) -> None:
        self._cache: dict[str, Handler] = {}
        self._observer = observer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
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
            lambda behavior: _wrap_unary(behavior, method, decode, self._observer),
            lambda behavior: _wrap_stream(behavior, method, decode, self._observer),
        )
        self._cache[method] = wrapped
        return wrapped
