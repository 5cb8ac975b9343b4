"""An offline provider whose reply waits for the test: races with the engine, made exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from baton_server.nlp.offline import OfflineProvider


class GatedProvider(OfflineProvider):
    """Writes the offline reply only once `release()` is called; `writing` is set while a
    reply waits at the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self._gate = asyncio.Event()

    def release(self) -> None:
        self._gate.set()

    async def write_reply(
        self, context: Any, matches: Any, outcomes: Any, on_delta: Callable[[str], None]
    ) -> str:
        reply = await super().write_reply(context, matches, outcomes, on_delta)
        self.writing.set()
        await self._gate.wait()
        return reply
