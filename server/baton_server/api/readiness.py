"""Readiness follows the database: health turns NOT_SERVING while it cannot be reached.

A load balancer or Kubernetes probe then sends traffic to replicas that can serve it, and a
replica whose database comes back says SERVING again without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DatabaseReadiness:
    """Probes the database every `interval_s` (each probe bounded by `timeout_s`) and sets the
    overall health status and every service's to match."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        health_servicer: health.aio.HealthServicer,
        service_names: Sequence[str],
        *,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self._ping = ping
        self._health = health_servicer
        self._names = ("", *service_names)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.database_up = True
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sets SERVING (the server just reached the database) and starts probing."""
        await self._set(SERVING)
        self._task = asyncio.create_task(self._probe_forever(), name="baton-readiness")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def probe(self) -> bool:
        """One probe; updates the status when it changed. Returns whether the database is up."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._ping()
            up, why = True, ""
        except Exception as error:  # any failure to answer means not ready
            up, why = False, f"{type(error).__name__}: {error}".strip()
        if up != self.database_up:
            self.database_up = up
            if up:
                log.warning("database reachable again: SERVING")
            else:
                log.error("database unreachable (%s): NOT_SERVING until it answers", why[:300])
            await self._set(SERVING if up else NOT_SERVING)
        return up

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.probe()

    async def _set(self, status: int) -> None:
        for name in self._names:
            await self._health.set(name, status)
