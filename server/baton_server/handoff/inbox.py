"""The operator inbox stream: open handoffs, then every change, resumable by position.

Changes live in the store's change log (positions in commit order), so the stream is the catch-up
streamer (bus/catch_up.py) over that log: the snapshot of open handoffs, pages of changes,
`caught_up`, then live. Live means "the head moved, read the log again": wake-ups come from
committed events on the bus (local commits and, with PostgreSQL, other replicas' commits relayed
by LISTEN/NOTIFY), and an idle stream also re-reads on every heartbeat, so a lost wake-up delays a
change by at most one heartbeat and never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from baton_server.bus import EventBus
from baton_server.bus.catch_up import (
    CatchUpSource,
    CaughtUp,
    Heartbeat,
    LiveFeed,
    LiveSettings,
    Opening,
    Page,
    as_is,
    catch_up_then_live,
)
from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    INBOX_POSITION,
    Event,
    EventKind,
    EventSource,
    Handoff,
    HandoffChange,
    HandoffChangeType,
    Operator,
    now_us,
)
from baton_server.errors import InvalidArgument
from baton_server.store import Repository, Transaction
from baton_server.store import handoffs as rows
from baton_server.store.ids import new_id

PAGE = 500


@dataclass(frozen=True, slots=True)
class InboxItem:
    changes: list[HandoffChange] = field(default_factory=list)
    caught_up_position: int | None = None
    heartbeat_position: int | None = None


class ChangeLog(Protocol):
    """The reads the inbox makes (store.handoffs.HandoffReader; tests pass a list)."""

    async def head_position(self) -> int: ...

    async def snapshot(self, agent_id: str) -> tuple[int, list[Handoff]]: ...

    async def changes_after(
        self, position: int, agent_id: str, limit: int
    ) -> list[HandoffChange]: ...


def touches_inbox(event: Event) -> bool:
    if event.kind is EventKind.MESSAGE and event.source is EventSource.CUSTOMER:
        return True  # may be a message on a handed-off session
    return event.kind is EventKind.CUSTOM and str(event.data.get("type", "")).startswith(
        HANDOFF_EVENT_PREFIX
    )


class HandoffInbox:
    """What every watcher of this replica shares: the newest change position known here (and
    a wake-up when it moves), and operator presence rows."""

    def __init__(
        self,
        repository: Repository,
        reader: ChangeLog,
        bus: EventBus,
        heartbeat_interval_s: float,
    ) -> None:
        self._repo = repository
        self.reader = reader
        self._heartbeat_s = heartbeat_interval_s
        self._live = LiveSettings(heartbeat_interval_s, reread_when_idle=True)
        # The newest change position this replica knows of; watchers behind it read the log.
        self.head = 0
        self._head_changed = asyncio.Condition()
        self._refresh: asyncio.Task[None] | None = None
        self._stale = False
        self.closed = False
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
        self.learn_head(announced)
        if unknown:
            self.notify()

    def learn_head(self, position: int) -> None:
        """A change up to `position` is committed: wake the watchers behind it."""
        if position > self.head:
            self.head = position
            asyncio.get_running_loop().create_task(self._wake_all())

    def notify(self) -> None:
        """Something may have changed: re-read the head once (coalesced across wake-ups), so
        a busy log costs one query per burst, not one per watcher per event."""
        self._stale = True
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_head())

    async def _refresh_head(self) -> None:
        while self._stale and not self.closed:
            self._stale = False
            try:
                head = await self.reader.head_position()
            except Exception:
                return  # watchers re-read on their heartbeat
            if head > self.head:
                self.head = head
                async with self._head_changed:
                    self._head_changed.notify_all()

    def close(self) -> None:
        self.closed = True
        asyncio.get_running_loop().create_task(self._wake_all())

    async def _wake_all(self) -> None:
        async with self._head_changed:
            self._head_changed.notify_all()

    async def wait_past(self, position: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Until the known head passes `position` or the inbox closes; False on timeout."""
        if self.head > position or self.closed:
            return True
        try:
            async with asyncio.timeout(max(0.0, timeout)), self._head_changed:
                await self._head_changed.wait_for(lambda: self.head > position or self.closed)
        except TimeoutError:
            return False
        return True

    async def watch(
        self, agent_id: str, after_position: int | None, operator: Operator | None
    ) -> AsyncIterator[InboxItem]:
        stream = catch_up_then_live(
            _Changes(self, agent_id, after_position), True, self._live, as_is
        )
        stream_id = new_id("watch")
        loop = asyncio.get_running_loop()
        if operator is not None:
            await self._renew_presence(stream_id, operator, agent_id)
        present_since = loop.time()
        try:
            async for item in stream:
                # Renewed busy or idle (something comes at least every heartbeat interval):
                # presence lasts three heartbeats.
                now = loop.time()
                if operator is not None and now - present_since >= self._heartbeat_s:
                    await self._renew_presence(stream_id, operator, agent_id)
                    present_since = now
                if isinstance(item, InboxItem):
                    yield item
                elif isinstance(item, CaughtUp):
                    yield InboxItem(caught_up_position=item.position)
                elif isinstance(item, Heartbeat):
                    yield InboxItem(heartbeat_position=item.position)
                # (No FellBehind: the inbox reads only the store, it has no buffer to overflow.)
        finally:
            await stream.aclose()
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


class _Changes(CatchUpSource[HandoffChange, InboxItem, int]):
    """One watcher's view of the change log: one agent's changes, or all of them."""

    __slots__ = ("_after", "_agent_id", "_inbox")

    def __init__(self, inbox: HandoffInbox, agent_id: str, after_position: int | None) -> None:
        self._inbox = inbox
        self._agent_id = agent_id
        self._after = after_position

    def subscribe(self) -> _HeadFeed:
        return _HeadFeed(self._inbox)

    async def open(self) -> Opening[InboxItem, int]:
        if self._after is None:
            position, open_handoffs = await self._inbox.reader.snapshot(self._agent_id)
            if not open_handoffs:
                return Opening(position)
            now = now_us()
            snapshot = [
                HandoffChange(position, HandoffChangeType.OPEN, h, -1, now) for h in open_handoffs
            ]
            return Opening(position, [InboxItem(changes=snapshot)])
        head = await self.head()
        if self._after > head:
            raise InvalidArgument.single(
                "after_position",
                f"{self._after} is past the newest change ({head}); resume from a "
                "position this server sent",
            )
        return Opening(self._after)

    async def head(self) -> int:
        head = await self._inbox.reader.head_position()
        # Learnt from the store (never from a client): other watchers may be behind it too.
        self._inbox.learn_head(head)
        return head

    async def read_page(self, after: int, until: int) -> Page[InboxItem, int]:
        # Positions are in commit order: reading past `until` only sends committed changes early.
        changes = await self._inbox.reader.changes_after(after, self._agent_id, PAGE)
        out = [InboxItem(changes=changes)] if changes else []
        if len(changes) == PAGE:
            return Page(out, changes[-1].position, more=True)
        return Page(out, max(until, changes[-1].position) if changes else until, more=False)

    def position_of(self, item: HandoffChange) -> int:
        return item.position

    def live_out(self, items: list[HandoffChange]) -> InboxItem | None:
        return InboxItem(changes=items) if items else None


class _HeadFeed(LiveFeed[HandoffChange, InboxItem, int]):
    """Live for the inbox is the shared head moving: no items, the log is read instead."""

    __slots__ = ("_inbox",)

    def __init__(self, inbox: HandoffInbox) -> None:
        self._inbox = inbox

    def wait(self, cursor: int, timeout: float) -> Awaitable[bool]:
        return self._inbox.wait_past(cursor, timeout)

    def ended(self, cursor: int) -> bool:
        return self._inbox.closed  # server shutdown: the stream just ends

    def close(self) -> None:
        pass  # nothing to unsubscribe: the head is shared

    def known_head(self) -> int:
        return self._inbox.head
