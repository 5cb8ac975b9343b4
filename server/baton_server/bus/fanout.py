"""Per-session fan-out with bounded per-subscriber buffers.

Publishing never blocks and never grows memory without bound: a subscriber whose buffer is full
is marked `overflowed` and its buffer dropped; it then re-reads what it missed from the store
(the store is the truth, the bus is only a fast path).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from baton_server.domain import Event, TextDelta

# Deltas are a nicety (the full reply always lands in the log): a slow reader just loses some.
DELTA_CAPACITY = 256


class Subscription:
    """One live stream's mailbox. Idle streams are the common case (thousands per server), so
    it allocates nothing until something arrives: lists instead of deques, one bare future as
    the wake-up."""

    __slots__ = (
        "_bucket",
        "_buffer",
        "_capacity",
        "_deadline",
        "_deadlines",
        "_deltas",
        "_waiter",
        "closed_reason",
        "overflowed",
        "session_id",
    )

    def __init__(self, session_id: str, capacity: int, deadlines: Deadlines) -> None:
        self.session_id = session_id
        self._capacity = capacity
        self._deadlines = deadlines
        self._deadline = 0.0
        # The deadlines bucket holding this subscription's one entry (None: none).
        self._bucket: int | None = None
        self._buffer: list[Event] | None = None
        self._deltas: list[TextDelta] | None = None
        # Resolves True when woken, False when the wait timed out.
        self._waiter: asyncio.Future[bool] | None = None
        self.overflowed = False
        # Set when the stream must end: "deleted" or "shutdown".
        self.closed_reason: str | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._stop_waiting()
            if not waiter.done():
                waiter.set_result(True)

    def _offer(self, events: list[Event]) -> None:
        if self.overflowed:
            return
        buffered = len(self._buffer) if self._buffer else 0
        if buffered + len(events) > self._capacity:
            self.overflowed = True
            self._buffer = None
        elif self._buffer is None:
            self._buffer = list(events)
        else:
            self._buffer.extend(events)
        self._wake()

    def _offer_delta(self, delta: TextDelta) -> None:
        if self._deltas is None:
            self._deltas = []
        self._deltas.append(delta)
        if len(self._deltas) > DELTA_CAPACITY:
            del self._deltas[0]
        self._wake()

    def take_deltas(self) -> list[TextDelta]:
        items, self._deltas = self._deltas or [], None
        return items

    def _close(self, reason: str) -> None:
        self.closed_reason = reason
        self._wake()

    def take(self) -> list[Event]:
        """Everything buffered so far, oldest first."""
        items, self._buffer = self._buffer or [], None
        return items

    def reset_overflow(self) -> None:
        """Call before re-reading the store: events published from now on are buffered again."""
        self.overflowed = False
        self._buffer = None

    def wait(self, timeout: float) -> asyncio.Future[bool]:
        """Resolves True once something is buffered, an overflow or a close; False after
        `timeout`. A future and a slot in the bus's shared deadlines: no coroutine, timer or
        asyncio.timeout() per wait, as idle streams are many and each parks here."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        if self._buffer or self._deltas or self.overflowed or self.closed_reason:
            waiter.set_result(True)
            return waiter
        self._waiter = waiter
        self._deadline = loop.time() + timeout
        # One entry per subscription: an entry due earlier than the new deadline moves on when
        # it comes due (_time_out), so a busy stream does not pile entries up.
        if self._bucket is None or self._deadlines.bucket_of(self._deadline) < self._bucket:
            self._bucket = self._deadlines.add(self, self._deadline)
        return waiter

    def _time_out(self, bucket: int, now: float) -> None:
        """Its entry in `bucket` came due: times the wait out, or moves the entry on to the
        wait's later deadline."""
        if bucket != self._bucket:
            return  # an entry superseded by an earlier one
        self._bucket = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._deadline <= now:
            self._waiter = None
            waiter.set_result(False)
        else:
            self._bucket = self._deadlines.add(self, self._deadline)

    def _stop_waiting(self) -> None:
        self._waiter = None


class Deadlines:
    """The wait deadlines of every subscription, in buckets of `tick_s`, checked by one timer
    that runs only while some wait is pending. A deadline fires up to one tick late."""

    def __init__(self, tick_s: float = 0.02) -> None:
        self._tick = tick_s
        self._buckets: dict[int, list[Subscription]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def bucket_of(self, deadline: float) -> int:
        return math.ceil(deadline / self._tick)

    def add(self, subscription: Subscription, deadline: float) -> int:
        bucket = self.bucket_of(deadline)
        entries = self._buckets.get(bucket)
        if entries is None:
            self._buckets[bucket] = [subscription]
        else:
            entries.append(subscription)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(bucket * self._tick, self._fire)
        return bucket

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = math.floor(now / self._tick)
        for bucket in [b for b in self._buckets if b <= due]:
            for subscription in self._buckets.pop(bucket):
                subscription._time_out(bucket, now)
        if self._buckets:
            self._timer = loop.call_at(min(self._buckets) * self._tick, self._fire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()


class EventBus:
    def __init__(self, *, buffer_capacity: int = 4096) -> None:
        self._capacity = buffer_capacity
        self._by_session: dict[str, set[Subscription]] = {}
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._closed = False
        self._deadlines = Deadlines()

    def add_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """`listener` sees every committed batch, all sessions (e.g. the engine). Must not block."""
        self._listeners.append(listener)

    def publish_delta(self, delta: TextDelta) -> None:
        for subscription in self._by_session.get(delta.session_id, ()):
            subscription._offer_delta(delta)

    def subscribe(self, session_id: str) -> Subscription:
        subscription = Subscription(session_id, self._capacity, self._deadlines)
        if self._closed:
            subscription._close("shutdown")
        self._by_session.setdefault(session_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription._stop_waiting()
        subscribers = self._by_session.get(subscription.session_id)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._by_session[subscription.session_id]

    def publish(self, events: list[Event]) -> None:
        """Hands committed events (in commit order) to the subscribers of their sessions."""
        start = 0
        for i in range(1, len(events) + 1):
            if i == len(events) or events[i].session_id != events[start].session_id:
                subscribers = self._by_session.get(events[start].session_id)
                if subscribers:
                    chunk = events[start:i]
                    for subscription in subscribers:
                        subscription._offer(chunk)
                start = i
        for listener in self._listeners:
            listener(events)

    def session_deleted(self, session_id: str) -> None:
        for subscription in self._by_session.get(session_id, ()):
            subscription._close("deleted")

    def close(self) -> None:
        """Ends every live subscription (server shutdown)."""
        self._closed = True
        self._deadlines.close()
        for subscribers in self._by_session.values():
            for subscription in subscribers:
                subscription._close("shutdown")

    def subscribed_sessions(self) -> list[str]:
        return list(self._by_session)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_session.values())
