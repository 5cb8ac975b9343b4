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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from baton_server.bus import EventBus
from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    INBOX_POSITION,
    Event,
    EventKind,
    EventSource,
    HandoffChange,
    HandoffChangeType,
    Operator,
    now_us,
)
from baton_server.errors import InvalidArgument
from baton_server.store import Repository, Transaction
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
        # The newest change position this replica knows of; watchers behind it read the log.
        self._head = 0
        self._head_changed = asyncio.Condition()
        self._refresh: asyncio.Task[None] | None = None
        self._stale = False
        self._closed = False
        bus.add_listener(self._on_commit)

    def _on_commit(self, events: list[Event]) -> None:
        announced = 0
        unknown = False
        for event in events:
            if not touches_inbox(event):
                continue
            position = event.data.get(INBOX_POSITION) if event.kind is EventKind.CUSTOM else None
            if isinstance(position, int):
                announced = max(announced, position)
            else:
                unknown = True  # e.g. a customer message: maybe a change, position unknown
        if announced > self._head:
            self._head = announced
            asyncio.get_running_loop().create_task(self._wake_all())
        if unknown:
            self.notify()

    def notify(self) -> None:
        """Something may have changed: re-read the head once (coalesced across wake-ups), so
        a busy log costs one query per burst, not one per watcher per event."""
        self._stale = True
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_head())

    async def _refresh_head(self) -> None:
        while self._stale and not self._closed:
            self._stale = False
            try:
                head = await self._reader.head_position()
            except Exception:
                return  # watchers re-read on their heartbeat
            if head > self._head:
                self._head = head
                async with self._head_changed:
                    self._head_changed.notify_all()

    def close(self) -> None:
        self._closed = True
        asyncio.get_running_loop().create_task(self._wake_all())

    async def _wake_all(self) -> None:
        async with self._head_changed:
            self._head_changed.notify_all()

    async def _wait_past(self, position: int) -> None:
        """Until the known head passes `position` or the inbox closes."""
        async with self._head_changed:
            await self._head_changed.wait_for(lambda: self._head > position or self._closed)

    async def watch(
        self, agent_id: str, after_position: int | None, operator: Operator | None
    ) -> AsyncIterator[InboxItem]:
        stream_id = new_id("watch")
        loop = asyncio.get_running_loop()
        if operator is not None:
            await self._renew_presence(stream_id, operator, agent_id)
        present_since = loop.time()
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
                head = await self._reader.head_position()
                if after_position > head:
                    raise InvalidArgument.single(
                        "after_position",
                        f"{after_position} is past the newest change ({head}); resume from a "
                        "position this server sent",
                    )
                position = after_position
            while changes := await self._reader.changes_after(position, agent_id, PAGE):
                position = changes[-1].position
                yield InboxItem(changes=changes)
            yield InboxItem(caught_up_position=position)
            self.notify()  # learn the current head from the store (never from a client)
            last_sent = loop.time()
            while not self._closed:
                idle_for = loop.time() - last_sent
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, self._heartbeat_s - idle_for)):
                        await self._wait_past(position)
                if self._closed:
                    break
                # Filtered watchers may be behind the head with nothing of theirs to send:
                # remember the head read so they do not re-read for the same changes.
                head = self._head
                changes = await self._reader.changes_after(position, agent_id, PAGE)
                now = loop.time()
                # Renewed busy or idle: presence lasts three heartbeats.
                if operator is not None and now - present_since >= self._heartbeat_s:
                    await self._renew_presence(stream_id, operator, agent_id)
                    present_since = now
                if changes:
                    position = changes[-1].position
                    last_sent = now
                    yield InboxItem(changes=changes)
                    continue
                position = max(position, head)
                if now - last_sent >= self._heartbeat_s:
                    last_sent = now
                    yield InboxItem(heartbeat_position=position)
        finally:
            if operator is not None:
                with contextlib.suppress(Exception):
                    await self._end_presence(stream_id)

    async def _renew_presence(self, stream_id: str, operator: Operator, agent_id: str) -> None:
        expires = now_us() + int(self._heartbeat_s * 3 * 1_000_000)

        async def job(conn: Transaction) -> tuple[None, list[Event]]:
            await rows.upsert_presence(conn, stream_id, operator.id, agent_id, expires)
            return None, []

        await self._repo.run_write(job)

    async def _end_presence(self, stream_id: str) -> None:
        now = now_us()

        async def job(conn: Transaction) -> tuple[None, list[Event]]:
            await rows.remove_presence(conn, stream_id, now)
            return None, []

        await self._repo.run_write(job)
