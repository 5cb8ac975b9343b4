"""How the `baton` client commands (tail, chat, stats) reach a server: a `BatonClient` (the
Python client, clients/python) with the credential and TLS options of the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from baton_server.config import Settings

if TYPE_CHECKING:
    import grpc

    from baton_client import BatonClient


def _default_target() -> str:
    settings = Settings()
    host = settings.host
    if host in ("", "0.0.0.0", "::"):  # serving on every address: reach it over loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{settings.port}"


# Where `baton tail`, `chat` and `stats` connect by default: `baton serve`'s default address.
DEFAULT_TARGET = _default_target()

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
TlsOption = Annotated[
    bool,
    typer.Option(
        "--tls",
        envvar="BATON_TLS",
        help="Connect with TLS, trusting the system's roots (the default for a credential sent"
        " to a non-loopback target).",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        envvar="BATON_INSECURE",
        help="Plaintext even to a non-loopback target with a credential (sent in clear text).",
    ),
]


def open_client(
    target: str,
    api_key: str,
    tls_ca: str | None,
    *,
    tls: bool = False,
    insecure: bool = False,
) -> BatonClient:
    """A client that sends the credential on every call, with the client's keepalive, retries
    and reconnecting follow. Transport as `BatonClient` chooses it: TLS with `tls_ca` or `tls`;
    otherwise plaintext to a loopback target (or with `insecure`), TLS with the system's roots
    for a credential sent anywhere else. Make it inside the event loop that uses it."""
    from baton_client import BatonClient

    return BatonClient(target, api_key=api_key or None, ca=tls_ca, tls=tls, insecure=insecure)


def open_channel(
    target: str,
    api_key: str,
    tls_ca: str | None,
    *,
    tls: bool = False,
    insecure: bool = False,
) -> grpc.aio.Channel:
    """A bare channel that sends the credential on every call (transport chosen as by
    `open_client`), for raw stubs; the commands use `open_client`."""
    import grpc

    from baton_client import channel_credentials, metadata_interceptors

    interceptors = (
        metadata_interceptors([("authorization", f"Bearer {api_key}")]) if api_key else []
    )
    credentials = channel_credentials(
        target, sends_credentials=bool(api_key), ca=tls_ca, tls=tls, insecure=insecure
    )
    if credentials is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
