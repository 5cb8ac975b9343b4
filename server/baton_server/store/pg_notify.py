"""PostgreSQL LISTEN/NOTIFY connections for the cross-replica relay (bus/relay.py).

The store is the only room that talks to database drivers, so the two asyncpg connections the
relay needs live here: one that NOTIFYs (reconnected after a failure) and one that LISTENs
(reconnected with jittered backoff when it drops; the owner is told, so it can re-read from the
store what it may have missed while deaf).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgNotifyChannel:
    def __init__(
        self,
        database_url: str,
        channel: str,
        on_payload: Callable[[str], None],
        on_reconnected: Callable[[], None],
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._channel = channel
        self._on_payload = on_payload
        self._on_reconnected = on_reconnected
        self._notifier: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.reconnects = 0

    async def start(self) -> None:
        self._notifier = await self._connect("baton-notify")
        await self._listen()

    async def notify(self, payload: str) -> None:
        assert self._notifier is not None, "start() first"
        await self._notifier.execute("SELECT pg_notify($1, $2)", self._channel, payload)

    async def reconnect_notifier(self) -> None:
        """A new NOTIFY connection after a failure (a failed attempt is left to the next)."""
        with contextlib.suppress(Exception):
            self._notifier = await self._connect("baton-notify")

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for connection in (self._listener, self._notifier):
            if connection is not None and not connection.is_closed():
                await connection.close()

    async def _connect(self, name: str) -> asyncpg.Connection:
        return await asyncpg.connect(self._dsn, server_settings={"application_name": name})

    async def _listen(self) -> None:
        listener = await self._connect("baton-listen")
        await listener.add_listener(self._channel, self._received)
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener

    def _received(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._on_payload(str(payload))  # a NOTIFY payload is text

    def _on_listener_lost(self, _connection: object) -> None:
        if not self._closing:
            log.warning("LISTEN connection lost; reconnecting")
            self._tasks.append(asyncio.create_task(self._relisten(), name="baton-relisten"))

    async def _relisten(self) -> None:
        delay = 0.05
        while not self._closing:
            try:
                await self._listen()
                break
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("LISTEN reconnect failed: %s", error)
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 5.0)
        self.reconnects += 1
        self._on_reconnected()
