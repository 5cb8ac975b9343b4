"""ListEvents as a transport-free async iterator: a session's log through the catch-up streamer.

The log's positions are next offsets (the position of the event at offset n is n + 1), so every
marker carries the offset to resume from. Live events come from the bus; offsets have no gaps,
so an event published ahead of an earlier commit (commits published out of order) sends the
stream to the store for the hole.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from baton_server.bus import EventBus, Subscription
from baton_server.bus.catch_up import (
    DEFAULT_HEARTBEAT_S,
    CatchUpSource,
    CaughtUp,
    FellBehind,
    Heartbeat,
    LiveFeed,
    LiveSettings,
    Opening,
    Page,
    catch_up_then_live,
)
from baton_server.domain import Event, EventFilter, EventKind, EventSource, TextDelta
from baton_server.errors import NotFound, ShuttingDown
from baton_server.store import Repository

_Item = TypeVar("_Item")
_Out = TypeVar("_Out")

__all__ = [
    "CaughtUp",
    "Delta",
    "EncodedBatch",
    "EventStreamer",
    "EventsBatch",
    "FellBehind",
    "Heartbeat",
    "StreamItem",
    "StreamSettings",
    "wants_deltas",
]


@dataclass(frozen=True, slots=True)
class EventsBatch:
    events: list[Event]


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Stored events in their encoded form (see Repository.read_encoded_events), in order."""

    encoded: list[bytes]


@dataclass(frozen=True, slots=True)
class Delta:
    delta: TextDelta


# What the log itself sends; the markers (CaughtUp, FellBehind, Heartbeat) carry next offsets.
LogItem = EventsBatch | EncodedBatch | Delta
StreamItem = LogItem | CaughtUp[int] | FellBehind[int] | Heartbeat[int]


def wants_deltas(event_filter: EventFilter) -> bool:
    """Deltas are pieces of AI agent messages: sent when the filters admit those."""
    return (not event_filter.kinds or EventKind.MESSAGE in event_filter.kinds) and (
        not event_filter.sources or EventSource.AI_AGENT in event_filter.sources
    )


@dataclass(frozen=True, slots=True)
class StreamSettings:
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_S
    # Rows per store read and events per catch-up message (500 doubled replay here over 100:
    # each message has a fixed cost on both ends; bytes stay capped below).
    read_page: int = 1000
    batch_events: int = 500
    # Rough cap on the payload bytes of one catch-up message (clients accept 4 MiB by default).
    batch_bytes: int = 1 << 20
    # Compare with the store's head on every idle heartbeat (on when replicas share a database,
    # where live delivery depends on notifications that can be lost).
    verify_head_when_idle: bool = False


class EventStreamer:
    def __init__(self, repository: Repository, bus: EventBus, settings: StreamSettings) -> None:
        self._repository = repository
        self._bus = bus
        self._settings = settings
        self._live = LiveSettings(settings.heartbeat_interval_s, settings.verify_head_when_idle)
        # Subscribers told `fell_behind` so far (read by metrics when scraped).
        self.fell_behind_total = 0

    def stream(
        self,
        session_id: str,
        min_offset: int,
        event_filter: EventFilter,
        follow: bool,
        *,
        decoded: bool = False,
    ) -> AsyncGenerator[StreamItem, None]:
        """`decoded`: stored events as Event objects only (for readers that transform each
        event), never as their stored encoding."""
        return self.rendered(
            session_id, min_offset, event_filter, follow, _same_item, decoded=decoded
        )

    def rendered(
        self,
        session_id: str,
        min_offset: int,
        event_filter: EventFilter,
        follow: bool,
        render: Callable[[StreamItem], _Out],
        *,
        decoded: bool = False,
    ) -> AsyncGenerator[_Out, None]:
        """`stream`, each item as `render` makes it (e.g. a transport's response)."""
        encoded = self._repository.stores_encoded_events and not decoded
        source = _SessionLog(self, session_id, min_offset, event_filter, encoded)
        return catch_up_then_live(source, follow, self._live, render)


def _same_item(item: StreamItem) -> StreamItem:
    return item


class _SessionLog(CatchUpSource[Event, LogItem, int], LiveFeed[Event, LogItem, int]):
    """One stream's view of one session's log, and its bus subscription: one object plays both
    parts, because idle streams are many and each of them holds it."""

    __slots__ = ("_encoded", "_filter", "_min_offset", "_session_id", "_streamer", "_subscription")

    def __init__(
        self,
        streamer: EventStreamer,
        session_id: str,
        min_offset: int,
        event_filter: EventFilter,
        encoded: bool,
    ) -> None:
        self._streamer = streamer
        self._session_id = session_id
        self._min_offset = min_offset
        self._filter = event_filter
        # Catch-up sends the bytes stored at append (no per-event encoding) when it may.
        self._encoded = encoded
        self._subscription: Subscription | None = None

    # ---------------------------------------------------------------- the store

    def subscribe(self) -> _SessionLog:
        self._subscription = self._streamer._bus.subscribe(self._session_id)
        return self

    async def open(self) -> Opening[LogItem, int]:
        return Opening(self._min_offset)

    async def head(self) -> int:
        # NotFound here also ends streams of a session deleted through another replica.
        return await self._streamer._repository.next_offset(self._session_id)

    async def read_page(self, after: int, until: int) -> Page[LogItem, int]:
        """Events with after <= offset < until matching the filter, as size-capped batches."""
        repository, settings = self._streamer._repository, self._streamer._settings
        limit = settings.read_page
        out: list[LogItem]
        if self._encoded:
            pairs = await repository.read_encoded_events(
                self._session_id, after, until, self._filter, limit
            )
            count = len(pairs)
            last = pairs[-1][0] if pairs else after
            wires = [wire for _, wire in pairs]
            out = [EncodedBatch(run) for run in _runs(wires, len, settings)]
        else:
            events = await repository.read_events(
                self._session_id, after, until, self._filter, limit
            )
            count = len(events)
            last = events[-1].offset if events else after
            out = [EventsBatch(run) for run in _runs(events, _approximate_size, settings)]
        if count < limit:
            return Page(out, until, more=False)
        return Page(out, last + 1, more=True)

    def position_of(self, item: Event) -> int:
        return item.offset + 1

    def follows(self, cursor: int, position: int) -> bool:
        return position == cursor + 1  # offsets have no gaps

    def live_out(self, items: list[Event]) -> LogItem | None:
        event_filter = self._filter
        if not event_filter.is_everything:
            items = [e for e in items if event_filter.matches(e)]
        if not items:
            return None
        if self._encoded:
            # The bytes stored at append, shared by every follower: nothing encoded per stream.
            encoded = [e.encoded for e in items]
            if all(e is not None for e in encoded):
                return EncodedBatch(cast(list[bytes], encoded))
        return EventsBatch(items)

    # ---------------------------------------------------------------- live

    def _live(self) -> Subscription:
        assert self._subscription is not None, "subscribe() first"
        return self._subscription

    def wait(self, cursor: int, timeout: float) -> Awaitable[bool]:
        return self._live().wait(timeout)

    def ended(self, cursor: int) -> bool:
        subscription = self._live()
        if subscription.closed_reason == "deleted":
            raise NotFound("session", subscription.session_id)
        if subscription.closed_reason == "shutdown":
            raise ShuttingDown(
                f"the server is shutting down; resume with min_offset={cursor}",
                metadata={"next_offset": str(cursor)},
            )
        return False

    def close(self) -> None:
        self._streamer._bus.unsubscribe(self._live())

    def take_overflow(self) -> bool:
        subscription = self._live()
        if not subscription.overflowed:
            return False
        subscription.reset_overflow()
        self._streamer.fell_behind_total += 1
        return True

    def take_extras(self) -> Sequence[Delta]:
        deltas = self._live().take_deltas()  # always drained, wanted or not
        return [Delta(d) for d in deltas] if deltas and wants_deltas(self._filter) else ()

    def take(self) -> list[Event]:
        return self._live().take()


def _runs(
    items: list[_Item], size_of: Callable[[_Item], int], settings: StreamSettings
) -> list[list[_Item]]:
    """Consecutive runs of at most `batch_events` items and about `batch_bytes` each."""
    runs: list[list[_Item]] = []
    begin, size = 0, 0
    for i, item in enumerate(items):
        if i > begin and (i - begin >= settings.batch_events or size >= settings.batch_bytes):
            runs.append(items[begin:i])
            begin, size = i, 0
        size += size_of(item)
    if begin < len(items):
        runs.append(items[begin:])
    return runs


def _approximate_size(event: Event) -> int:
    return len(event.data_json) + 128
