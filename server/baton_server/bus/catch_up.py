"""One catch-up-then-live reader for every stream the server offers (KurrentDB's read model).

Subscribe first, then read the store in pages up to a snapshot of its head, send `CaughtUp` with
the position reached, then go live: deliver what the subscription brings, skipping any position
already sent, and go back to the store whenever live delivery cannot be trusted (the buffer
overflowed: `FellBehind`; an item arrived ahead of the cursor; a wake-up said only "the head
moved"). Idle streams get a `Heartbeat` with the position, so proxies keep them open and clients
learn where to resume.

A position is where an item ends in its log; the cursor is the position of the last item sent
(or skipped by a filter), which is exactly where a reader resumes. For an event log the position
after offset n is n + 1, the next offset.

What differs per stream (which store, which bus, which items) sits behind `CatchUpSource` and
`LiveFeed`; ListEvents (service/event_stream.py) and the operator inbox (handoff/inbox.py) each
provide one. Nothing here knows of events, handoffs, SQL or gRPC.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from baton_server.config import Settings


class Position(Protocol):
    """Positions only need an order (`<`); arithmetic, when a log has it, stays in the source."""

    def __lt__(self, other: Self, /) -> bool: ...


P = TypeVar("P", bound=Position)
T = TypeVar("T")  # a live item, as the subscription delivers it
M = TypeVar("M")  # a message the source sends besides the markers: batches, transient items
R = TypeVar("R")  # what the stream yields: an item or a marker as `render` makes it


@dataclass(frozen=True, slots=True)
class CaughtUp(Generic[P]):
    """Everything stored when the stream subscribed has been sent; live delivery follows."""

    position: P


@dataclass(frozen=True, slots=True)
class FellBehind(Generic[P]):
    """The live buffer overflowed; what follows comes from the store, from `position` on."""

    position: P


@dataclass(frozen=True, slots=True)
class Heartbeat(Generic[P]):
    """Nothing was sent for a heartbeat interval; everything up to `position` has been."""

    position: P


@dataclass(frozen=True, slots=True)
class Page(Generic[M, P]):
    """One bounded store read, as the messages to send."""

    out: Sequence[M]
    # Everything up to here has been read (items past a filter included).
    position: P
    # False when the range read is exhausted.
    more: bool


@dataclass(frozen=True, slots=True)
class Opening(Generic[M, P]):
    """Where a stream starts, and what it sends before catching up (e.g. a snapshot)."""

    position: P
    out: Sequence[M] = ()


# The server's heartbeat period (Settings.heartbeat_interval_s), written once there.
DEFAULT_HEARTBEAT_S = Settings().heartbeat_interval_s


@dataclass(frozen=True, slots=True)
class LiveSettings:
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_S
    # Ask the store for its head on every idle heartbeat: where live hints can be lost (another
    # replica's notification while our LISTEN connection was down), the store has the last word.
    reread_when_idle: bool = False


class LiveFeed(ABC, Generic[T, M, P]):
    """One stream's live subscription. Idle streams are the common case: keep it small."""

    __slots__ = ()

    @abstractmethod
    def wait(self, cursor: P, timeout: float) -> Awaitable[bool]:
        """Until something happened past `cursor` (items, an overflow, a close, a newer head);
        False when `timeout` seconds passed without (a `timeout` <= 0 only checks). A plain
        method may hand back the bus's own wait: one coroutine frame less per idle stream."""

    @abstractmethod
    def ended(self, cursor: P) -> bool:
        """Whether the stream ends now, quietly. Raises instead to end it with an error (which
        may name `cursor`, the resume point)."""

    @abstractmethod
    def close(self) -> None:
        """Unsubscribes; called once, however the stream ends."""

    def take_overflow(self) -> bool:
        """Whether live items were dropped since the last call; items published from now on
        are buffered again."""
        return False

    def take_extras(self) -> Sequence[M]:
        """Transient items to send as they are: never stored, no position."""
        return ()

    def take(self) -> Sequence[T]:
        """Live items buffered so far, in publication order."""
        return ()

    def known_head(self) -> P | None:
        """A position the store has reached, when the feed hears of it without the items."""
        return None


class CatchUpSource(ABC, Generic[T, M, P]):
    """What one stream reads: a store with positions, and a feed of what gets committed."""

    __slots__ = ()

    @abstractmethod
    def subscribe(self) -> LiveFeed[T, M, P]:
        """Called before anything is read, so nothing committed afterwards is missed."""

    @abstractmethod
    async def open(self) -> Opening[M, P]:
        """Where to start; may validate the request and send a snapshot first."""

    @abstractmethod
    async def head(self) -> P:
        """The newest position in the store; everything up to it is committed and readable."""

    @abstractmethod
    async def read_page(self, after: P, until: P) -> Page[M, P]:
        """Stored items past `after`, up to `until` (a page may go further), a bounded number
        of them. When it returns `more=False`, nothing else is stored up to `until`."""

    @abstractmethod
    def position_of(self, item: T) -> P:
        """Where a live item ends in the log."""

    @abstractmethod
    def live_out(self, items: list[T]) -> M | None:
        """The message for fresh live items (in order), or None when the filters keep none."""

    def follows(self, cursor: P, position: P) -> bool:
        """Whether an item ending at `position` comes right after `cursor` in the log. Logs
        without gaps say no when one is missing, and the store fills the hole."""
        return True


class _Pages(Generic[T, M, P]):
    """Everything stored in (after, until], page by page; the last page ends at `until` or
    past. `next()` says None at the end rather than raising StopAsyncIteration: an exception
    passing through the stream's frame gives it a frame object that every idle stream keeps."""

    __slots__ = ("_after", "_done", "_source", "_until")

    def __init__(self, source: CatchUpSource[T, M, P], after: P, until: P) -> None:
        self._source = source
        self._after = after
        self._until = until
        self._done = False

    async def next(self) -> Page[M, P] | None:
        if self._done or not self._after < self._until:
            return None
        page = await self._source.read_page(self._after, self._until)
        if not page.more and page.position < self._until:
            page = Page(page.out, self._until, False)  # nothing more up to `until`: skip to it
        self._done = not page.more
        self._after = page.position
        return page


Marker = CaughtUp[P] | FellBehind[P] | Heartbeat[P]


def as_is(item: Any) -> Any:
    """The `render` of streams whose readers take the items themselves."""
    return item


async def catch_up_then_live(
    source: CatchUpSource[T, M, P],
    follow: bool,
    settings: LiveSettings,
    render: Callable[[M | Marker[P]], R],
) -> AsyncGenerator[R, None]:
    """The stream: `source`'s messages and the markers, in order, no position twice, none
    missed, each as `render` makes it (a transport's response: rendered here rather than by a
    wrapping iterator, whose frame each idle stream would hold). Without `follow` it ends after
    the catch-up (no `CaughtUp`)."""
    feed = source.subscribe() if follow else None
    # Declared here so they can be dropped before each wait: a stream idles there, and should
    # not pin the last page, message or item it handled meanwhile.
    page: Page[M, P] | None = None
    out: M | None = None
    item: T | None = None
    batch: M | None = None
    try:
        opening = await source.open()
        cursor = opening.position
        for out in opening.out:
            yield render(out)
        del opening
        head = await source.head()
        pages = _Pages(source, cursor, head)
        while (page := await pages.next()) is not None:
            cursor = page.position
            for out in page.out:
                yield render(out)
        if feed is None:
            return
        # At the head (or past it: a start the log has not reached).
        yield render(CaughtUp(cursor))
        # Live, inlined rather than in nested generators: idle streams are many, and every
        # generator frame is memory each of them holds.
        loop = asyncio.get_running_loop()
        interval = settings.heartbeat_interval_s
        last_sent = loop.time()
        while True:
            page = out = item = batch = None
            waited_from = last_sent
            woke = await feed.wait(cursor, last_sent + interval - loop.time())
            if woke:
                if feed.ended(cursor):
                    return
                if feed.take_overflow():
                    yield render(FellBehind(cursor))
                    last_sent = loop.time()
                    pages = _Pages(source, cursor, await source.head())
                    while (page := await pages.next()) is not None:
                        cursor = page.position
                        for out in page.out:
                            yield render(out)
                    continue
                for out in feed.take_extras():
                    yield render(out)
                    last_sent = loop.time()
                known = feed.known_head()
                if known is not None:
                    pages = _Pages(source, cursor, known)
                    while (page := await pages.next()) is not None:
                        cursor = page.position
                        for out in page.out:
                            yield render(out)
                            last_sent = loop.time()
                ready: list[T] = []
                for item in feed.take():
                    position = source.position_of(item)
                    if not cursor < position:
                        continue  # already sent by the catch-up or a store read
                    if not source.follows(cursor, position):
                        # Published ahead of an earlier commit: the store has the hole (and
                        # this item: it was committed before it was published), so read them
                        # from there.
                        if ready and (batch := source.live_out(ready)) is not None:
                            yield render(batch)
                            last_sent = loop.time()
                        ready = []
                        pages = _Pages(source, cursor, position)
                        while (page := await pages.next()) is not None:
                            cursor = page.position
                            for out in page.out:
                                yield render(out)
                                last_sent = loop.time()
                        continue
                    cursor = position
                    ready.append(item)
                if ready and (batch := source.live_out(ready)) is not None:
                    yield render(batch)
                    last_sent = loop.time()
                ready = []
            elif settings.reread_when_idle:
                pages = _Pages(source, cursor, await source.head())
                while (page := await pages.next()) is not None:
                    cursor = page.position
                    for out in page.out:
                        yield render(out)
                        last_sent = loop.time()
            # Also after a wake-up that sent nothing (all filtered out): a busy log must not
            # starve the heartbeat of a reader with nothing of its own in it.
            if (not woke and last_sent == waited_from) or loop.time() - last_sent >= interval:
                yield render(Heartbeat(cursor))
                last_sent = loop.time()
    finally:
        if feed is not None:
            feed.close()
