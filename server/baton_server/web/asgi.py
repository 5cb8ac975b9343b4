"""The HTTP port's ASGI application: the Connect/gRPC-Web services by path, the web apps'
static files, CORS for the origins allowed to call from a browser."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any
from urllib.parse import quote

from baton_server.web.connect import ConnectService
from baton_server.web.static import StaticApps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# What a browser may send and read cross-origin: Connect's and gRPC-Web's own headers, plus the
# bearer credential.
ALLOW_HEADERS = (
    "authorization, content-type, accept, accept-encoding, content-encoding, "
    "connect-protocol-version, connect-timeout-ms, connect-accept-encoding, "
    "connect-content-encoding, grpc-timeout, grpc-accept-encoding, grpc-encoding, "
    "x-grpc-web, x-user-agent, traceparent, tracestate"
)
EXPOSE_HEADERS = (
    "grpc-status, grpc-message, grpc-status-details-bin, grpc-encoding, "
    "connect-content-encoding, connect-accept-encoding, content-encoding"
)
ALLOW_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE = "7200"


class BatonHttpApp:
    def __init__(
        self,
        services: Sequence[ConnectService],
        unserved: dict[str, str],
        static: StaticApps | None,
        cors_origins: Iterable[str],
    ) -> None:
        """`unserved`: path prefix of a service not served over HTTP, and why (answered
        UNIMPLEMENTED)."""
        self._services = {service.prefix: service.app for service in services}
        self._unserved = unserved
        self._static = static
        self._origins = frozenset(origin.rstrip("/") for origin in cors_origins)
        self._any_origin = "*" in self._origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets: not served (the server closes them)
        headers = _headers(scope)
        origin = headers.get("origin")
        allowed = origin is not None and (self._any_origin or origin in self._origins)
        if scope["method"] == "OPTIONS":
            await _preflight(send, origin if allowed else None)
            return
        if allowed:
            send = _with_cors(send, origin or "")
        path: str = scope["path"]
        prefix = path[: path.rfind("/") + 1] if path.count("/") == 2 else ""
        app = self._services.get(prefix)
        if app is not None:
            await app(scope, receive, send)
            return
        if prefix in self._unserved:
            await _unimplemented(send, headers.get("content-type", ""), self._unserved[prefix])
            return
        if self._static is not None and self._static.owns(path):
            if scope["method"] not in ("GET", "HEAD"):
                await _plain(send, 405, "GET or HEAD only", [(b"allow", b"GET, HEAD")])
                return
            found = await self._static.get(path, headers.get("if-none-match"))
            body = b"" if scope["method"] == "HEAD" else found.body
            headers_out = [*found.headers, (b"content-length", str(len(found.body)).encode())]
            await send(
                {"type": "http.response.start", "status": found.status, "headers": headers_out}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await _plain(
            send,
            404,
            "not found: Connect and gRPC-Web calls are POSTed to /baton.v1.<Service>/<Method>"
            + ("; the web apps are at /widget/ and /console/" if self._static else ""),
        )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _with_cors(send: Send, origin: str) -> Send:
    extra = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return cors_send


async def _preflight(send: Send, origin: str | None) -> None:
    """A CORS preflight: allowed origins get what they may send and read; others get no CORS
    headers, so the browser refuses the call (the server itself refuses nothing here)."""
    headers = [(b"vary", b"Origin"), (b"content-length", b"0")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _plain(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _unimplemented(send: Send, content_type: str, message: str) -> None:
    """UNIMPLEMENTED in the caller's protocol: gRPC-Web's trailers-only response, or Connect's
    JSON error (HTTP 501)."""
    if content_type.startswith("application/grpc"):
        headers = [
            (b"content-type", content_type.encode("latin-1")),
            (b"grpc-status", b"12"),
            (b"grpc-message", quote(message, safe=" ").encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"code": "unimplemented", "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 501, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
