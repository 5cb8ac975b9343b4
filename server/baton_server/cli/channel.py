"""How the `baton` client commands (tail, chat, stats) reach a server: credentials and TLS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from baton_server.config import Settings

if TYPE_CHECKING:
    import grpc

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")

# Where `baton tail`, `chat` and `stats` connect by default: `baton serve`'s default address.
DEFAULT_TARGET = f"{Settings().host}:{Settings().port}"

ApiKeyOption = Annotated[
    str,
    typer.Option(
        envvar="BATON_API_KEY", help="API key or customer token (none for a --dev server)."
    ),
]
TlsCaOption = Annotated[
    str | None,
    typer.Option(envvar="BATON_TLS_CA", help="Connect with TLS, trusting this CA (PEM)."),
]


def open_channel(target: str, api_key: str, tls_ca: str | None) -> grpc.aio.Channel:
    """A channel that sends the credential on every call (and speaks TLS when given a CA)."""
    import pathlib

    import grpc

    interceptors = _bearer_interceptors(api_key) if api_key else []
    if tls_ca is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    credentials = grpc.ssl_channel_credentials(pathlib.Path(tls_ca).read_bytes())
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)


def _bearer_interceptors(credential: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors adding `authorization: Bearer …` (grpc.aio files an interceptor
    under one call type only, hence one per type)."""
    import grpc
    from grpc.aio import ClientCallDetails, UnaryStreamCall, UnaryUnaryCall

    header = ("authorization", f"Bearer {credential}")

    def with_header(details: ClientCallDetails) -> ClientCallDetails:
        return ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*(details.metadata or ()), header),
            details.credentials,
            details.wait_for_ready,
        )

    class Unary(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self,
            continuation: Callable[
                [ClientCallDetails, _Request], Awaitable[UnaryUnaryCall[_Request, _Response]]
            ],
            details: ClientCallDetails,
            request: _Request,
        ) -> UnaryUnaryCall[_Request, _Response]:
            return await continuation(with_header(details), request)

    class Stream(grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(
            self,
            continuation: Callable[
                [ClientCallDetails, _Request], Awaitable[UnaryStreamCall[_Request, _Response]]
            ],
            details: ClientCallDetails,
            request: _Request,
        ) -> UnaryStreamCall[_Request, _Response]:
            return await continuation(with_header(details), request)

    return [Unary(), Stream()]
