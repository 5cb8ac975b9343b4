"""How the `baton` client commands (tail, chat, stats) reach a server: credentials and TLS."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from baton_server.config import Settings

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


def open_channel(target: str, api_key: str, tls_ca: str | None) -> Any:
    """A channel that sends the credential on every call (and speaks TLS when given a CA)."""
    import pathlib

    import grpc

    interceptors = _bearer_interceptors(api_key) if api_key else []
    if tls_ca is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    credentials = grpc.ssl_channel_credentials(pathlib.Path(tls_ca).read_bytes())
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)


def _bearer_interceptors(credential: str) -> list[Any]:
    """Client interceptors adding `authorization: Bearer …` (grpc.aio files an interceptor
    under one call type only, hence one per type)."""
    import grpc

    header = ("authorization", f"Bearer {credential}")

    def with_header(details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), header])

    class Unary(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
            return await continuation(with_header(details), request)

    class Stream(grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
            return await continuation(with_header(details), request)

    return [Unary(), Stream()]
