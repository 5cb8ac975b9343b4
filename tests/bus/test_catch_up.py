"""The catch-up-then-live streamer (bus/catch_up.py) on an in-memory log: no server, no store.

The fake log numbers its items 1, 2, 3, … (the position of an item is its number, as for the
inbox; ListEvents uses next offsets, the same arithmetic shifted by one). Commits go to the store
first and then, unless held back, to every live feed, as the server's bus does after a commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from baton_server.bus.catch_up import (
    CatchUpSource,
    CaughtUp,
    FellBehind,
    Heartbeat,
    LiveFeed,
    LiveSettings,
    Opening,
    Page,
    as_is,
    catch_up_then_live,
)


@dataclass(frozen=True, slots=True)
class Item:
    position: int
    noise: bool = False  # filtered out by sources that only want signal


@dataclass(frozen=True, slots=True)
class Batch:
    items: list[Item]
    live: bool

    @property
    def positions(self) -> list[int]:
        return [i.position for i in self.items]


Out = Batch | CaughtUp[int] | FellBehind[int] | Heartbeat[int]


class Gone(Exception):
    """What a feed raises when its stream must end with an error (a deleted session)."""


class FakeFeed(LiveFeed[Item, Batch, int]):
    def __init__(
        self, log: FakeLog, capacity: int, head: Callable[[], int | None] | None = None
    ) -> None:
        self.log = log
        self.capacity = capacity
        self.head = head
        self.buffer: list[Item] = []
        self.overflowed = False
        self.closed_with: str | None = None
        self.closes = 0
        self.wakeup = asyncio.Event()

    def offer(self, items: list[Item]) -> None:
        if len(self.buffer) + len(items) > self.capacity:
            self.overflowed, self.buffer = True, []
        elif not self.overflowed:
            self.buffer += items
        self.wakeup.set()

    async def wait(self, cursor: int, timeout: float) -> bool:
        if self.buffer or self.overflowed or self.closed_with:
            return True
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self.wakeup.wait()
        except TimeoutError:
            return False
        self.wakeup.clear()
        return True

    def ended(self, cursor: int) -> bool:
        if self.closed_with == "error":
            raise Gone(f"resume at {cursor}")
        return self.closed_with == "quietly"

    def close(self) -> None:
        self.closes += 1
        self.log.feeds.remove(self)

    def take_overflow(self) -> bool:
        overflowed, self.overflowed = self.overflowed, False
        return overflowed

    def take(self) -> Sequence[Item]:
        items, self.buffer = self.buffer, []
        return items

    def known_head(self) -> int | None:
        return self.head() if self.head is not None else None


@dataclass
class FakeLog:
    items: list[Item] = field(default_factory=list)
    feeds: list[FakeFeed] = field(default_factory=list)
    reads: int = 0

    def commit(self, count: int = 1, *, publish: bool = True, noise: bool = False) -> list[Item]:
        new = [Item(len(self.items) + 1 + i, noise) for i in range(count)]
        self.items += new
        if publish:
            self.publish(new)
        return new

    def publish(self, items: list[Item]) -> None:
        for feed in list(self.feeds):
            feed.offer(items)


class FakeSource(CatchUpSource[Item, Batch, int]):
    def __init__(
        self,
        log: FakeLog,
        start: int = 0,
        *,
        page_size: int = 100,
        capacity: int = 1000,
        opening: Sequence[Batch] = (),
        before_head: Callable[[], object] | None = None,
        during_read: Callable[[], object] | None = None,
        known_head: Callable[[], int | None] | None = None,
    ) -> None:
        self.log = log
        self.start = start
        self.page_size = page_size
        self.capacity = capacity
        self.opening = opening
        self.before_head = before_head
        self.during_read = during_read
        self.known_head = known_head
        self.feed: FakeFeed | None = None

    def subscribe(self) -> FakeFeed:
        self.feed = FakeFeed(self.log, self.capacity, self.known_head)
        self.log.feeds.append(self.feed)
        return self.feed

    async def open(self) -> Opening[Batch, int]:
        return Opening(self.start, self.opening)

    async def head(self) -> int:
        if self.before_head is not None:
            self.before_head()
            self.before_head = None
        return len(self.log.items)

    async def read_page(self, after: int, until: int) -> Page[Batch, int]:
        self.log.reads += 1
        if self.during_read is not None:
            self.during_read()
            self.during_read = None
        found = [i for i in self.log.items if after < i.position <= until][: self.page_size]
        out = [Batch([i for i in found if not i.noise], live=False)] if found else []
        if len(found) == self.page_size:
            return Page(out, found[-1].position, more=True)
        return Page(out, until, more=False)

    def position_of(self, item: Item) -> int:
        return item.position

    def follows(self, cursor: int, position: int) -> bool:
        return position == cursor + 1

    def live_out(self, items: list[Item]) -> Batch | None:
        kept = [i for i in items if not i.noise]
        return Batch(kept, live=True) if kept else None


def stream(
    source: FakeSource, *, follow: bool = True, heartbeat_s: float = 30, reread: bool = False
) -> AsyncGenerator[Out, None]:
    return catch_up_then_live(source, follow, LiveSettings(heartbeat_s, reread), as_is)


async def read_until(
    items: AsyncGenerator[Out, None], done: Callable[[list[Out]], bool], timeout: float = 5
) -> list[Out]:
    got: list[Out] = []
    async with asyncio.timeout(timeout):
        while not got or not done(got):
            got.append(await anext(items))
    return got


def positions(got: list[Out]) -> list[int]:
    return [p for item in got if isinstance(item, Batch) for p in item.positions]


def caught_up(got: list[Out]) -> bool:
    return isinstance(got[-1], CaughtUp)


async def test_catch_up_in_pages_then_live_without_gap_or_duplicate() -> None:
    log = FakeLog()
    log.commit(250, publish=False)
    source = FakeSource(log, page_size=100)
    items = stream(source)
    history = await read_until(items, caught_up)
    assert history[-1] == CaughtUp(250)
    assert [len(b.items) for b in history if isinstance(b, Batch)] == [100, 100, 50]
    assert all(isinstance(b, Batch) and not b.live for b in history[:-1])
    log.commit(3)
    log.commit(2)
    live = await read_until(items, lambda got: positions(got)[-1:] == [255])
    assert all(isinstance(b, Batch) and b.live for b in live)
    assert positions(history) + positions(live) == list(range(1, 256))
    await items.aclose()
    assert source.feed is not None and source.feed.closes == 1 and log.feeds == []


@pytest.mark.parametrize("when", ["before the head is read", "while a page is read"])
async def test_an_item_committed_during_the_catch_up_is_delivered_once(when: str) -> None:
    """Before the head snapshot, the item is both stored up to the head and in the live buffer;
    after it, only in the buffer. Either way it comes once, in order."""
    log = FakeLog()
    log.commit(10, publish=False)

    def commit() -> None:
        log.commit(1)

    if when == "before the head is read":
        source = FakeSource(log, before_head=commit)
    else:
        source = FakeSource(log, during_read=commit)
    items = stream(source)
    got = await read_until(items, caught_up)
    assert got[-1] == CaughtUp(11 if when == "before the head is read" else 10)
    log.commit(1)
    got += await read_until(items, lambda more: 12 in positions(more))
    assert positions(got) == list(range(1, 13))
    await items.aclose()


async def test_an_overflow_sends_fell_behind_with_the_resume_point_then_reads_the_store() -> None:
    log = FakeLog()
    log.commit(10, publish=False)
    source = FakeSource(log, capacity=3)
    items = stream(source)
    await read_until(items, caught_up)
    for _ in range(8):
        log.commit(1)  # more than the feed holds: it drops its buffer
    got = await read_until(items, lambda got: 18 in positions(got))
    assert got[0] == FellBehind(10)
    assert all(isinstance(b, Batch) and not b.live for b in got[1:])  # from the store
    assert positions(got) == list(range(11, 19))
    log.commit(1)
    live = await read_until(items, lambda got: bool(positions(got)))
    assert positions(live) == [19] and isinstance(live[0], Batch) and live[0].live
    await items.aclose()


async def test_an_idle_stream_gets_heartbeats_with_its_position() -> None:
    log = FakeLog()
    log.commit(3, publish=False)
    items = stream(FakeSource(log), heartbeat_s=0.05)
    await read_until(items, caught_up)
    assert await anext(items) == Heartbeat(3)
    log.commit(1)
    assert positions([await anext(items)]) == [4]
    assert await anext(items) == Heartbeat(4)
    await items.aclose()


async def test_items_the_reader_filters_out_do_not_starve_its_heartbeat() -> None:
    """A busy log with nothing for this reader: the heartbeat still comes, past the noise."""
    log = FakeLog()
    items = stream(FakeSource(log), heartbeat_s=0.1)
    await read_until(items, caught_up)

    async def noise() -> None:
        while True:
            log.commit(1, noise=True)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(noise())
    try:
        heartbeat = await anext(items)
    finally:
        task.cancel()
    assert isinstance(heartbeat, Heartbeat) and heartbeat.position > 0
    await items.aclose()


async def test_an_item_published_ahead_of_an_earlier_one_is_read_from_the_store() -> None:
    log = FakeLog()
    log.commit(10, publish=False)
    items = stream(FakeSource(log))
    await read_until(items, caught_up)
    first, second = log.commit(2, publish=False)
    log.publish([second])  # the later commit's notification arrives first
    log.publish([first])
    got = await read_until(items, lambda got: 12 in positions(got))
    assert positions(got) == [11, 12]
    log.commit(1)
    assert positions(await read_until(items, lambda got: bool(positions(got)))) == [13]
    await items.aclose()


async def test_idle_rereads_find_what_no_notification_announced() -> None:
    log = FakeLog()
    items = stream(FakeSource(log), heartbeat_s=0.05, reread=True)
    await read_until(items, caught_up)
    log.commit(2, publish=False)  # e.g. another replica's commit while LISTEN was down
    got = await read_until(items, lambda got: isinstance(got[-1], Heartbeat))
    assert positions(got) == [1, 2] and got[-1] == Heartbeat(2)
    await items.aclose()


async def test_a_known_head_without_items_sends_the_reader_to_the_store() -> None:
    """Feeds that only hear "the head moved" (the operator inbox) get the items from the store."""
    log = FakeLog()
    items = stream(FakeSource(log, known_head=lambda: len(log.items)))
    await read_until(items, caught_up)
    log.commit(2, publish=False)
    for feed in log.feeds:
        feed.wakeup.set()  # "the head moved", and nothing else
    got = await read_until(items, lambda got: 2 in positions(got))
    assert positions(got) == [1, 2]
    await items.aclose()


async def test_without_follow_the_stream_ends_after_the_catch_up() -> None:
    log = FakeLog()
    log.commit(5, publish=False)
    source = FakeSource(log, start=2)
    got = [item async for item in stream(source, follow=False)]
    assert positions(got) == [3, 4, 5]
    assert not any(isinstance(i, CaughtUp) for i in got)
    assert source.feed is None


async def test_a_start_past_the_head_waits_for_it() -> None:
    log = FakeLog()
    log.commit(5, publish=False)
    items = stream(FakeSource(log, start=8))
    assert await read_until(items, caught_up) == [CaughtUp(8)]
    log.commit(4)
    assert positions(await read_until(items, lambda got: bool(positions(got)))) == [9]
    await items.aclose()


async def test_the_opening_comes_first() -> None:
    log = FakeLog()
    log.commit(2, publish=False)
    snapshot = Batch([Item(0)], live=False)
    items = stream(FakeSource(log, opening=[snapshot]))
    got = await read_until(items, caught_up)
    assert got[0] is snapshot and positions(got[1:]) == [1, 2]
    await items.aclose()


async def test_a_closed_feed_ends_the_stream_quietly_or_with_its_error() -> None:
    log = FakeLog()
    quiet, failing = FakeSource(log), FakeSource(log)
    quiet_items, failing_items = stream(quiet), stream(failing)
    await read_until(quiet_items, caught_up)
    await read_until(failing_items, caught_up)
    log.commit(1)
    assert quiet.feed is not None and failing.feed is not None
    quiet.feed.closed_with, failing.feed.closed_with = "quietly", "error"
    assert [item async for item in quiet_items] == []
    with pytest.raises(Gone, match="resume at 0"):
        await anext(failing_items)
    assert quiet.feed.closes == 1 and failing.feed.closes == 1 and log.feeds == []
