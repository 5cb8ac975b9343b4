"""A value fetched now and then (an async query), read at scrape time without waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class PeriodicSample(Generic[T]):
    """Keeps the last value `fetch` returned, refreshed every `interval_s`; a failed fetch keeps
    the previous value (readiness reports the database being down)."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], initial: T, interval_s: float) -> None:
        self._fetch = fetch
        self.value = initial
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="baton-metrics-sample")

    async def refresh(self) -> None:
        try:
            self.value = await self._fetch()
        except Exception as error:
            log.debug("metrics sample not refreshed: %r", error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval_s)
