"""How the `baton` client commands (tail, chat, stats) reach a server: a `BatonClient` (the
Python client, clients/python) with the credential and TLS options of the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from baton_server.config import Settings

if TYPE_CHECKING:
    import grpc

    from baton_client import BatonClient

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


def open_client(target: str, api_key: str, tls_ca: str | None) -> BatonClient:
    """A client that sends the credential on every call (and speaks TLS when given a CA), with
    the client's keepalive, retries and reconnecting follow. Make it inside the event loop
    that uses it."""
    from baton_client import BatonClient

    return BatonClient(target, api_key=api_key or None, ca=tls_ca)


def open_channel(target: str, api_key: str, tls_ca: str | None) -> grpc.aio.Channel:
    """A bare channel that sends the credential on every call (and speaks TLS when given a
    CA), for raw stubs; the commands use `open_client`."""
    import grpc

    from baton_client import metadata_interceptors, tls_credentials

    interceptors = (
        metadata_interceptors([("authorization", f"Bearer {api_key}")]) if api_key else []
    )
    if tls_ca is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    return grpc.aio.secure_channel(target, tls_credentials(tls_ca), interceptors=interceptors)
