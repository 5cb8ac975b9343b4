"""The gRPC test stubs' shape over Connect and gRPC-Web: the same contract tests run unchanged
against the HTTP port, through connectrpc's own Python client (Connect with the binary or JSON
codec, or gRPC-Web), on a real server on loopback.

A Connect error becomes the grpc.aio.AioRpcError a gRPC stub raises, with the same
google.rpc.Status (code, message, details) in `grpc-status-details-bin`, so the tests' helpers
(bad_request_fields, error_reason, retry_delay_s) read both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from google.protobuf import any_pb2
from google.rpc import status_pb2

from baton.v1 import service_connect
from baton.v1 import service_pb2 as svc
from tests.support import Stubs

# Transport name -> (protocol, codec).
TRANSPORTS: dict[str, tuple[ProtocolType, Callable[[], Any]]] = {
    "connect-proto": (ProtocolType.CONNECT, google_protobuf_binary_codec),
    "connect-json": (ProtocolType.CONNECT, google_protobuf_json_codec),
    "grpc-web": (ProtocolType.GRPC_WEB, google_protobuf_binary_codec),
}


def grpc_error(error: ConnectError) -> grpc.aio.AioRpcError:
    name = error.code.value.upper()
    code = grpc.StatusCode["CANCELLED" if name == "CANCELED" else name]
    status = status_pb2.Status(
        code=code.value[0],
        message=error.message,
        details=[
            any_pb2.Any(type_url=f"type.googleapis.com/{d.type_name}", value=d.message_bytes)
            for d in error.details
        ],
    )
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=error.message)


def _call_options(metadata: Any = None, timeout: float | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if metadata:
        options["headers"] = {key: value for key, value in metadata}
    if timeout is not None:
        options["timeout_ms"] = int(timeout * 1000)
    return options


class HttpStream:
    """A server stream as a grpc.aio call: iterated (again and again, resuming where it left
    off), cancelled with cancel()."""

    def __init__(self, start: Callable[[], AsyncIterator[Any]]) -> None:
        self._start = start
        self._responses: AsyncIterator[Any] | None = None
        self._cancelled = False

    def __aiter__(self) -> HttpStream:
        return self

    async def __anext__(self) -> Any:
        if self._cancelled:
            raise StopAsyncIteration
        if self._responses is None:
            self._responses = self._start()
        try:
            return await anext(self._responses)
        except ConnectError as error:
            raise grpc_error(error) from None

    async def read(self) -> Any:
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            return grpc.aio.EOF

    def cancel(self) -> bool:
        """Closes the HTTP response: the server sees the client go."""
        self._cancelled = True
        responses = self._responses
        if responses is not None and hasattr(responses, "aclose"):
            asyncio.get_running_loop().create_task(responses.aclose())
        return True


class ServiceStub:
    """A gRPC stub's methods (`ListAgents(request, metadata=..., timeout=...)`) calling the
    generated Connect client's (`list_agents(request, headers=..., timeout_ms=...)`)."""

    def __init__(self, client: Any, service: Any, headers: dict[str, str]) -> None:
        self._client = client
        self._headers = headers
        self._streaming = {m.name: m.server_streaming for m in service.methods}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in self._streaming:
            raise AttributeError(name)
        method = getattr(self._client, re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower())
        base = self._headers

        if self._streaming[name]:

            def stream(request: Any, **kwargs: Any) -> HttpStream:
                options = _call_options(**kwargs)
                options["headers"] = {**base, **options.get("headers", {})}
                return HttpStream(lambda: method(request, **options))

            return stream

        async def unary(request: Any, **kwargs: Any) -> Any:
            options = _call_options(**kwargs)
            options["headers"] = {**base, **options.get("headers", {})}
            try:
                return await method(request, **options)
            except ConnectError as error:
                raise grpc_error(error) from None

        return unary


class HttpClients:
    """Stubs over one transport to a server's HTTP port; close() closes their connections."""

    def __init__(self, port: int, transport: str) -> None:
        self.address = f"http://127.0.0.1:{port}"
        self.protocol, self.codec = TRANSPORTS[transport]
        self._clients: list[Any] = []

    def stubs(self, credential: str | None = None) -> Stubs:
        headers = {"authorization": f"Bearer {credential}"} if credential else {}

        def stub(name: str) -> Any:
            client = getattr(service_connect, f"{name}Client")(
                self.address, protocol=self.protocol, codec=self.codec()
            )
            self._clients.append(client)
            return ServiceStub(client, svc.DESCRIPTOR.services_by_name[name], headers)

        return Stubs(
            None,  # type: ignore[arg-type]  # no gRPC channel: tests that need one stay on gRPC
            stub("AgentService"),
            stub("CustomerService"),
            stub("SessionService"),
            stub("EventService"),
            stub("HandoffService"),
            stub("AuthService"),
        )

    async def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
