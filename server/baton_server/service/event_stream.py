"""ListEvents as a transport-free async iterator (KurrentDB's read-stream model).

Subscribe to the bus first, then catch up from the store up to a snapshot of the head, then
deliver live events, skipping any offset already sent. When the live buffer overflowed, or a live
event arrives ahead of the cursor (commits published out of order), the missing range is read
from the store. The offset cursor makes the catch-up→live switch gap- and duplicate-free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from baton_server.bus import EventBus
from baton_server.domain import Event, EventFilter, EventKind, EventSource, TextDelta
from baton_server.errors import NotFound, ShuttingDown
from baton_server.store import Repository


@dataclass(frozen=True, slots=True)
class EventsBatch:
    events: list[Event]
    # Live batches go to every subscriber of the session, so encodings are worth caching.
    live: bool = False


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Stored events in their encoded form (see Repository.read_encoded_events), in order."""

    encoded: list[bytes]


@dataclass(frozen=True, slots=True)
class CaughtUp:
    pass


@dataclass(frozen=True, slots=True)
class FellBehind:
    pass


@dataclass(frozen=True, slots=True)
class Heartbeat:
    next_offset: int


@dataclass(frozen=True, slots=True)
class Delta:
    delta: TextDelta


StreamItem = EventsBatch | EncodedBatch | CaughtUp | FellBehind | Heartbeat | Delta


def wants_deltas(event_filter: EventFilter) -> bool:
    """Deltas are pieces of AI agent messages: sent when the filters admit those."""
    return (not event_filter.kinds or EventKind.MESSAGE in event_filter.kinds) and (
        not event_filter.sources or EventSource.AI_AGENT in event_filter.sources
    )


@dataclass(frozen=True, slots=True)
class StreamSettings:
    heartbeat_interval_s: float = 15.0
    # Rows per store read and events per catch-up message.
    read_page: int = 1000
    batch_events: int = 100
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

    async def stream(
        self,
        session_id: str,
        min_offset: int,
        event_filter: EventFilter,
        follow: bool,
        *,
        decoded: bool = False,
    ) -> AsyncIterator[StreamItem]:
        """`decoded`: stored events as Event objects only (for readers that transform each
        event), never as their stored encoding."""
        encoded = self._repository.stores_encoded_events and not decoded
        subscription = self._bus.subscribe(session_id) if follow else None
        try:
            head = await self._repository.next_offset(session_id)
            cursor = min_offset
            async for batch in self._read_store(session_id, cursor, head, event_filter, encoded):
                yield batch
            batch = None  # do not pin the last catch-up page for the stream's whole life
            if subscription is None:
                return
            cursor = max(cursor, head)
            yield CaughtUp()
            # Live (inlined rather than a nested generator: idle streams are many, and every
            # generator frame is memory each of them holds).
            session_id = subscription.session_id
            settings = self._settings
            deltas_wanted = wants_deltas(event_filter)
            while True:
                if not await subscription.wait(settings.heartbeat_interval_s):
                    if settings.verify_head_when_idle:
                        # Live hints can be lost (e.g. another replica's notification while our
                        # LISTEN connection was down): the store has the last word. NotFound here
                        # also ends streams of a session deleted through another replica.
                        head = await self._repository.next_offset(session_id)
                        if head > cursor:
                            async for batch in self._read_store(
                                session_id, cursor, head, event_filter, encoded
                            ):
                                yield batch
                            batch = None
                            cursor = head
                    yield Heartbeat(cursor)
                    continue
                if subscription.closed_reason == "deleted":
                    raise NotFound("session", session_id)
                if subscription.closed_reason == "shutdown":
                    raise ShuttingDown(
                        f"the server is shutting down; resume with min_offset={cursor}",
                        metadata={"next_offset": str(cursor)},
                    )
                if subscription.overflowed:
                    subscription.reset_overflow()
                    yield FellBehind()
                    head = await self._repository.next_offset(session_id)
                    async for batch in self._read_store(
                        session_id, cursor, head, event_filter, encoded
                    ):
                        yield batch
                    batch = None
                    cursor = max(cursor, head)
                    continue
                for delta in subscription.take_deltas():
                    if deltas_wanted:
                        yield Delta(delta)
                ready: list[Event] = []
                for event in subscription.take():
                    if event.offset < cursor:
                        continue  # already sent during catch-up or a store re-read
                    if event.offset > cursor:
                        # A commit published ahead of an earlier one: fetch the hole from the store.
                        if ready:
                            yield EventsBatch(ready, live=True)
                            ready = []
                        async for batch in self._read_store(
                            session_id, cursor, event.offset, event_filter, encoded
                        ):
                            yield batch
                        batch = None
                    cursor = event.offset + 1
                    if event_filter.matches(event):
                        ready.append(event)
                if ready:
                    yield EventsBatch(ready, live=True)
                # Drop references before waiting again, so an idle stream pins no events.
                ready = []
                event = None
        finally:
            if subscription is not None:
                self._bus.unsubscribe(subscription)

    async def _read_store(
        self, session_id: str, start: int, end: int, event_filter: EventFilter, encoded: bool
    ) -> AsyncIterator[EventsBatch | EncodedBatch]:
        """Stored events in [start, end) matching the filter, as size-capped batches."""
        settings = self._settings
        while start < end:
            if encoded:
                pairs = await self._repository.read_encoded_events(
                    session_id, start, end, event_filter, settings.read_page
                )
                offsets = [offset for offset, _ in pairs]
                sizes = [len(wire) for _, wire in pairs]
                items: list = [wire for _, wire in pairs]
            else:
                events = await self._repository.read_events(
                    session_id, start, end, event_filter, settings.read_page
                )
                offsets = [e.offset for e in events]
                sizes = [len(e.data_json) + 128 for e in events]
                items = events
            if not items:
                return
            begin, size = 0, 0
            for i, item_size in enumerate(sizes):
                if i > begin and (
                    i - begin >= settings.batch_events or size >= settings.batch_bytes
                ):
                    yield _batch(items[begin:i], encoded)
                    begin, size = i, 0
                size += item_size
            yield _batch(items[begin:], encoded)
            if len(items) < settings.read_page:
                return
            start = offsets[-1] + 1


def _batch(items: list, encoded: bool) -> EventsBatch | EncodedBatch:
    return EncodedBatch(items) if encoded else EventsBatch(items)
