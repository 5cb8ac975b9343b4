"""Fires the claim and inactivity timeouts of agents' handoff policies.

Deadlines are stored on the handoff rows; this loop asks the store what is due and fires each
in its own transaction, which clears the deadline — so a timeout fires once, even with several
replicas running the loop. Tests drive `fire_due()` directly with a controlled clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from baton_server.errors import BatonError
from baton_server.handoff.commands import TimeoutKind
from baton_server.handoff.controls import HandoffControls
from baton_server.store.handoffs import HandoffReader

log = logging.getLogger(__name__)


class HandoffTimer:
    def __init__(
        self, controls: HandoffControls, reader: HandoffReader, tick_s: float = 1.0
    ) -> None:
        self._controls = controls
        self._reader = reader
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None
        # Completed passes of the loop (lets tests wait for "the timer looked again").
        self.passes = 0

    async def fire_due(self) -> int:
        """Fires every timeout due by the controls' clock; returns how many fired."""
        due = await self._reader.due_deadlines(self._controls.clock())
        fired = 0
        for kind, handoff_ids in (
            (TimeoutKind.CLAIM, due.claim),
            (TimeoutKind.INACTIVITY, due.inactivity),
        ):
            for handoff_id in handoff_ids:
                try:
                    fired += await self._controls.fire_timeout(handoff_id, kind)
                except BatonError as error:  # e.g. the session was deleted meanwhile
                    log.info("timeout of handoff %s not fired: %s", handoff_id, error)
        return fired

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="baton-handoff-timer")

    async def _run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except Exception:
                log.exception("handoff timeouts failed; retrying")
            self.passes += 1
            await asyncio.sleep(self._tick_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
