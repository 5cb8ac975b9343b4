"""The operator inbox stream: open handoffs, then every change, resumable by position.

Changes live in the store's change log (positions in commit order), so the stream is a reader
of that log: catch up in pages, send `caught_up`, then wait for a wake-up and read again. Wake-ups
come from committed events on the bus (local commits and, with PostgreSQL, other replicas' commits
relayed by LISTEN/NOTIFY); an idle stream also re-reads on every heartbeat, so a lost wake-up
delays a change by at most one heartbeat and never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from baton_server.bus import EventBus
from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    Event,
    EventKind,
    EventSource,
    HandoffChange,
    HandoffChangeType,
    Operator,
    now_us,
)
from baton_server.store import Repository
from baton_server.store import handoffs as rows
from baton_server.store.handoffs import HandoffReader
from baton_server.store.ids import new_id

PAGE = 500


@dataclass(frozen=True, slots=True)
class InboxItem:
    changes: list[HandoffChange] = field(default_factory=list)
    caught_up_position: int | None = None
    heartbeat_position: int | None = None


def touches_inbox(event: Event) -> bool:
    if event.kind is EventKind.MESSAGE and event.source is EventSource.CUSTOMER:
        return True  # may be a message on a handed-off session
    return event.kind is EventKind.CUSTOM and str(event.data.get("type", "")).startswith(
        HANDOFF_EVENT_PREFIX
    )


class HandoffInbox:
    def __init__(
        self,
        repository: Repository,
        reader: HandoffReader,
        bus: EventBus,
        heartbeat_interval_s: float,
    ) -> None:
        self._repo = repository
        self._reader = reader
        self._heartbeat_s = heartbeat_interval_s
        self._wake = asyncio.Condition()
        self._generation = 0
        self._closed = False
        bus.add_listener(self._on_commit)

    def _on_commit(self, events: list[Event]) -> None:
        if any(touches_inbox(e) for e in events):
            self.notify()

    def notify(self) -> None:
        self._generation += 1
        asyncio.get_running_loop().create_task(self._wake_all())

    async def _wake_all(self) -> None:
        async with self._wake:
            self._wake.notify_all()

    def close(self) -> None:
        self._closed = True
        self.notify()

    async def _wait(self, seen_generation: int) -> bool:
        """Waits for a commit after `seen_generation` (at once if one already happened); False
        after a heartbeat interval without one."""
        async with self._wake:
            if self._generation != seen_generation or self._closed:
                return True
            try:
                await asyncio.wait_for(self._wake.wait(), self._heartbeat_s)
            except TimeoutError:
                return False
            return True

    async def watch(
        self, agent_id: str, after_position: int | None, operator: Operator | None
    ) -> AsyncIterator[InboxItem]:
        stream_id = new_id("watch")
        if operator is not None:
            await self._renew_presence(stream_id, operator, agent_id)
        try:
            if after_position is None:
                position, open_handoffs = await self._reader.snapshot(agent_id)
                if open_handoffs:
                    yield InboxItem(
                        changes=[
                            HandoffChange(position, HandoffChangeType.OPEN, h, -1, now_us())
                            for h in open_handoffs
                        ]
                    )
            else:
                position = after_position
            while True:
                generation = self._generation
                changes = await self._reader.changes_after(position, agent_id, PAGE)
                if not changes:
                    break
                position = changes[-1].position
                yield InboxItem(changes=changes)
            yield InboxItem(caught_up_position=position)
            # `generation` is always taken before the read it guards: a commit during that read
            # or while the stream is suspended at a yield (sending) makes the next wait return
            # at once, so its change is never left for the next heartbeat.
            renew_at = time.monotonic() + self._heartbeat_s
            while not self._closed:
                woken = await self._wait(generation)
                # Presence lasts three heartbeats: renew on time, also on a busy inbox.
                if operator is not None and time.monotonic() >= renew_at:
                    await self._renew_presence(stream_id, operator, agent_id)
                    renew_at = time.monotonic() + self._heartbeat_s
                generation = self._generation
                changes = await self._reader.changes_after(position, agent_id, PAGE)
                if changes:
                    position = changes[-1].position
                    yield InboxItem(changes=changes)
                elif not woken:  # idle for a heartbeat interval
                    yield InboxItem(heartbeat_position=position)
        finally:
            if operator is not None:
                with contextlib.suppress(Exception):
                    await self._end_presence(stream_id)

    async def _renew_presence(self, stream_id: str, operator: Operator, agent_id: str) -> None:
        expires = now_us() + int(self._heartbeat_s * 3 * 1_000_000)

        async def job(conn: object) -> tuple[None, list[Event]]:
            await rows.upsert_presence(conn, stream_id, operator.id, agent_id, expires)  # type: ignore[arg-type]
            return None, []

        await self._repo.run_write(job)

    async def _end_presence(self, stream_id: str) -> None:
        now = now_us()

        async def job(conn: object) -> tuple[None, list[Event]]:
            await rows.remove_presence(conn, stream_id, now)  # type: ignore[arg-type]
            return None, []

        await self._repo.run_write(job)
