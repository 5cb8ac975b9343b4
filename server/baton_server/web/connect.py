"""The baton.v1 services over Connect and gRPC-Web: the same servicers as gRPC, called through
an adapter, with the same admission (api/admission.py), observer and error mapping.

connectrpc (PyPI) speaks the protocols: framing, codecs, compression, timeouts, the end of
stream, error bodies and trailers. Its generated code (`baton/v1/service_connect.py`, from
`buf generate`) gives one ASGI application per service; each is handed an adapter whose methods
are the gRPC servicer's, wrapped as the gRPC interceptors wrap them.

The codecs below do not decode: they hand the adapter the request's bytes, so that the caller
is authenticated before its request is decoded (as over gRPC), and they pass through responses
the servicers pre-serialize (stored events) to the binary codec.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from protobuf.wkt import Any as WireAny

from baton.v1 import service_connect
from baton_server.api.admission import Admission
from baton_server.api.errors import decode_request, error_status
from baton_server.api.observing import CallObserver
from baton_server.api.protos import rr
from baton_server.api.server import Servicers
from baton_server.auth.principal import reset_principal, set_principal
from baton_server.errors import InvalidArgument

# Connect's codes by google.rpc code number (the same numbering as gRPC's).
CONNECT_CODES: dict[int, Code] = {
    code_pb2.CANCELLED: Code.CANCELED,
    code_pb2.UNKNOWN: Code.UNKNOWN,
    code_pb2.INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
    code_pb2.DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
    code_pb2.NOT_FOUND: Code.NOT_FOUND,
    code_pb2.ALREADY_EXISTS: Code.ALREADY_EXISTS,
    code_pb2.PERMISSION_DENIED: Code.PERMISSION_DENIED,
    code_pb2.RESOURCE_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
    code_pb2.FAILED_PRECONDITION: Code.FAILED_PRECONDITION,
    code_pb2.ABORTED: Code.ABORTED,
    code_pb2.OUT_OF_RANGE: Code.OUT_OF_RANGE,
    code_pb2.UNIMPLEMENTED: Code.UNIMPLEMENTED,
    code_pb2.INTERNAL: Code.INTERNAL,
    code_pb2.UNAVAILABLE: Code.UNAVAILABLE,
    code_pb2.DATA_LOSS: Code.DATA_LOSS,
    code_pb2.UNAUTHENTICATED: Code.UNAUTHENTICATED,
}


def connect_error(status: status_pb2.Status) -> ConnectError:
    """A google.rpc.Status (api/errors.py's mapping) as Connect's error, with the same details
    (ErrorInfo, BadRequest, RetryInfo): JSON `details` in Connect, grpc-status-details-bin in
    gRPC-Web."""
    details = [ErrorDetail(WireAny(type_url=d.type_url, value=d.value)) for d in status.details]
    return ConnectError(CONNECT_CODES.get(status.code, Code.UNKNOWN), status.message, details)


def code_name(status: status_pb2.Status) -> str:
    """gRPC's name of a status code (as the observer reports it for gRPC calls)."""
    return str(code_pb2.Code.Name(status.code))


@dataclass(frozen=True, slots=True)
class Raw:
    """A request as it arrived: its bytes, and whether they are JSON."""

    data: bytes
    json: bool


class RawBinaryCodec(Codec[Any, Raw]):
    """Protobuf binary: requests stay bytes; responses may already be bytes (stored events)."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: Any) -> bytes:
        return message if isinstance(message, bytes) else bytes(message.SerializeToString())

    def decode(self, data: bytes | bytearray, message_class: type[Raw]) -> Raw:
        return Raw(bytes(data), json=False)


class RawJSONCodec(Codec[Any, Raw]):
    """Protobuf JSON (proto3 JSON mapping); requests stay bytes until admitted."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Any) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Raw]) -> Raw:
        return Raw(bytes(data), json=True)


CODECS: list[Codec[Any, Any]] = [RawBinaryCodec(), RawJSONCodec()]


def json_deserializer(message_class: type[Message]) -> Callable[[bytes], Message]:
    """Parses proto3 JSON, refusing unknown fields (a misspelt field is a mistake to report,
    not to drop); an empty body is the empty message."""

    def parse(data: bytes) -> Message:
        message = message_class()
        if not data.strip():
            return message
        try:
            json_format.Parse(data, message, ignore_unknown_fields=False)
        except json_format.ParseError as error:
            raise InvalidArgument.single(
                "request", f"not a valid JSON {message_class.DESCRIPTOR.full_name}: {error}"
            ) from None
        return message

    return parse


class HttpCallContext:
    """What servicers and the observer read of a call's context, for a Connect call."""

    __slots__ = ("_ctx", "_metadata")

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx
        self._metadata: tuple[tuple[str, str], ...] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        if self._metadata is None:
            self._metadata = tuple(self._ctx.request_headers.allitems())
        return self._metadata

    def peer(self) -> str:
        """gRPC's form of the caller's address (`ipv4:HOST:PORT`, `ipv6:[HOST]:PORT`): the
        authenticator budgets failed attempts by it."""
        address = self._ctx.client_address or ""
        host, _, port = address.rpartition(":")
        if ":" in host:
            return f"ipv6:[{host.strip('[]')}]:{port}"
        return f"ipv4:{host}:{port}" if host else ""


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ServiceAdapter:
    """One service's methods as connectrpc calls them (`list_agents(request, ctx)`), each the
    gRPC servicer's method (`ListAgents(request, context)`) with admission, principal,
    observer and error mapping around it."""

    def __init__(
        self,
        service: ServiceDescriptor,
        servicer: object,
        admission: Admission | None,
        observer: CallObserver | None,
    ) -> None:
        self._methods: dict[str, Callable[..., Any]] = {}
        for method in service.methods:
            behaviour = getattr(servicer, method.name)
            wrap = _wrap_stream if method.server_streaming else _wrap_unary
            self._methods[snake_case(method.name)] = wrap(
                behaviour, _MethodInfo.of(method), admission, observer
            )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            return self._methods[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, slots=True)
class _MethodInfo:
    path: str  # "/baton.v1.EventService/ListEvents", as gRPC names it
    request: type[Message]
    response: type[Message]

    @classmethod
    def of(cls, method: MethodDescriptor) -> _MethodInfo:
        return cls(
            f"/{method.containing_service.full_name}/{method.name}",
            getattr(rr, method.input_type.name),
            getattr(rr, method.output_type.name),
        )

    def deserializer(self, raw: Raw) -> Callable[[bytes], Any]:
        return json_deserializer(self.request) if raw.json else self.request.FromString


async def _admitted(
    info: _MethodInfo, raw: Raw, context: HttpCallContext, admission: Admission | None
) -> tuple[Any, Any]:
    """(principal or None in --dev, the decoded request)."""
    if admission is None:
        return None, decode_request(info.deserializer(raw), raw.data)
    return await admission.admit(
        info.path, context.invocation_metadata(), context.peer(), raw.data, info.deserializer(raw)
    )


def _for_codec(response: Any, raw: Raw, info: _MethodInfo) -> Any:
    """Pre-serialized bytes pass to the binary codec as they are; JSON needs the message."""
    if raw.json and isinstance(response, bytes):
        return info.response.FromString(response)
    return response


def _wrap_unary(
    behaviour: Callable[..., Awaitable[Any]],
    info: _MethodInfo,
    admission: Admission | None,
    observer: CallObserver | None,
) -> Callable[..., Awaitable[Any]]:
    async def handle(raw: Raw, ctx: RequestContext[Any, Any]) -> Any:
        context = HttpCallContext(ctx)
        call = observer.begin(info.path, context) if observer is not None else None  # type: ignore[arg-type]
        code = "OK"
        try:
            principal, request = await _admitted(info, raw, context, admission)
            token = set_principal(principal) if principal is not None else None
            try:
                return _for_codec(await behaviour(request, context), raw, info)
            finally:
                if token is not None:
                    reset_principal(token)
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as error:
            status = error_status(error, info.path)
            code = code_name(status)
            raise connect_error(status) from None
        finally:
            if call is not None:
                call.end(code)

    return handle


def _wrap_stream(
    behaviour: Callable[..., AsyncIterator[Any]],
    info: _MethodInfo,
    admission: Admission | None,
    observer: CallObserver | None,
) -> Callable[..., AsyncIterator[Any]]:
    async def handle(raw: Raw, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        context = HttpCallContext(ctx)
        call = (
            observer.begin(info.path, context, stream=True)  # type: ignore[arg-type]
            if observer is not None
            else None
        )
        code = "OK"
        try:
            principal, request = await _admitted(info, raw, context, admission)
            # A client that goes away cancels the call: its slot and subscription go too.
            responses = (
                behaviour(request, context)
                if admission is None
                else admission.stream_as(principal, lambda: behaviour(request, context))
            )
            async for response in responses:
                yield _for_codec(response, raw, info)
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except Exception as error:
            status = error_status(error, info.path)
            code = code_name(status)
            raise connect_error(status) from None
        finally:
            if call is not None:
                call.end(code)

    return handle


@dataclass(frozen=True, slots=True)
class ConnectService:
    """One baton.v1 service's ASGI application and the path prefix it answers."""

    prefix: str  # "/baton.v1.AgentService/"
    app: ConnectASGIApplication[Any]


def connect_services(
    servicers: Servicers,
    admission: Admission | None,
    observer: CallObserver | None,
    descriptors: Iterable[ServiceDescriptor],
    max_message_bytes: int,
) -> Sequence[ConnectService]:
    """An application for every service of `descriptors` that `servicers` serves (services
    without a servicer here, such as bidi ones, are left to the router to refuse)."""
    by_name: dict[str, object] = {
        "AgentService": servicers.agents,
        "CustomerService": servicers.customers,
        "SessionService": servicers.sessions,
        "EventService": servicers.events,
        "HandoffService": servicers.handoffs,
        "GuidelineService": servicers.guidelines,
        "CannedResponseService": servicers.canned_responses,
        "ToolService": servicers.tools,
        "AuthService": servicers.auth,
    }
    services = []
    for service in descriptors:
        servicer = by_name.get(service.name)
        application = getattr(service_connect, f"{service.name}ASGIApplication", None)
        if servicer is None or application is None:
            continue
        adapter = ServiceAdapter(service, servicer, admission, observer)
        services.append(
            ConnectService(
                f"/{service.full_name}/",
                application(adapter, codecs=CODECS, read_max_bytes=max_message_bytes),
            )
        )
    return services
