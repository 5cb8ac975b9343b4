"""The HTTP port, served by Hypercorn inside the server's own event loop.

Hypercorn (PyPI) speaks HTTP/1.1 and HTTP/2, cleartext HTTP/2 (h2c) included, with ASGI's
trailers extension; it runs as a task of the loop that runs the gRPC server, so the Connect
handlers call the same servicers, bus and database as gRPC's, with no thread or process
between them (bench/README.md, "Browser transport", has the comparison with uvicorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets

log = logging.getLogger(__name__)

Asgi = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (OSError when the port is taken: the caller says which flag)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """`start()` binds and serves; `stop(grace)` stops accepting, lets requests in flight finish
    for `grace` seconds, then cancels what is left."""

    def __init__(self, app: Asgi, host: str, port: int) -> None:
        self._app = app
        self._sock = bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._stopping = asyncio.Event()
        self._requests: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[None] | None = None

    async def _tracked(self, scope: Any, receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        if task is not None and scope["type"] == "http":
            self._requests.add(task)
        try:
            await self._app(scope, receive, send)
        finally:
            if task is not None:
                self._requests.discard(task)

    async def start(self, grace_s: float) -> None:
        config = Config()
        config.graceful_timeout = grace_s
        config.accesslog = None  # Baton's own access log covers the RPCs
        config.errorlog = logging.getLogger("hypercorn.error")
        config.h2_max_concurrent_streams = 1000
        sockets = Sockets(secure_sockets=[], insecure_sockets=[self._sock], quic_sockets=[])
        self._task = asyncio.create_task(
            worker_serve(
                ASGIWrapper(self._tracked),
                config,
                sockets=sockets,
                shutdown_trigger=self._stopping.wait,
            ),
            name="baton-http",
        )
        # The socket already listens: connections made before Hypercorn accepts wait in its
        # backlog. Let it start, and report a failure to start now rather than later.
        await asyncio.sleep(0)
        if self._task.done():
            self._task.result()

    async def stop(self, grace_s: float) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), grace_s + 1.0)
        for task in list(self._requests):
            task.cancel()
        if self._requests:
            await asyncio.wait(list(self._requests), timeout=2.0)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._sock.close()
