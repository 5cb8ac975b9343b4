"""Per-session fan-out with bounded per-subscriber buffers.

Publishing never blocks and never grows memory without bound: a subscriber whose buffer is full
is marked `overflowed` and its buffer dropped; it then re-reads what it missed from the store
(the store is the truth, the bus is only a fast path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from baton_server.domain import Event, TextDelta

# Deltas are a nicety (the full reply always lands in the log): a slow reader just loses some.
DELTA_CAPACITY = 256


class Subscription:
    """One live stream's mailbox. Idle streams are the common case (thousands per server), so
    it allocates nothing until something arrives: lists instead of deques, one bare future as
    the wake-up."""

    __slots__ = (
        "_buffer",
        "_capacity",
        "_deltas",
        "_timer",
        "_waiter",
        "closed_reason",
        "overflowed",
        "session_id",
    )

    def __init__(self, session_id: str, capacity: int) -> None:
        self.session_id = session_id
        self._capacity = capacity
        self._buffer: list[Event] | None = None
        self._deltas: list[TextDelta] | None = None
        # Resolves True when woken, False when the wait timed out.
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
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
        `timeout`. A future and a bare timer, no coroutine or asyncio.timeout(): idle streams
        are many, and each parks here."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        if self._buffer or self._deltas or self.overflowed or self.closed_reason:
            waiter.set_result(True)
            return waiter
        self._stop_waiting()
        self._waiter = waiter
        self._timer = loop.call_at(loop.time() + timeout, self._time_out)
        return waiter

    def _time_out(self) -> None:
        waiter, self._waiter, self._timer = self._waiter, None, None
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    def _stop_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._waiter = self._timer = None


class EventBus:
    def __init__(self, *, buffer_capacity: int = 4096) -> None:
        self._capacity = buffer_capacity
        self._by_session: dict[str, set[Subscription]] = {}
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._closed = False

    def add_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """`listener` sees every committed batch, all sessions (e.g. the engine). Must not block."""
        self._listeners.append(listener)

    def publish_delta(self, delta: TextDelta) -> None:
        for subscription in self._by_session.get(delta.session_id, ()):
            subscription._offer_delta(delta)

    def subscribe(self, session_id: str) -> Subscription:
        subscription = Subscription(session_id, self._capacity)
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
        for subscribers in self._by_session.values():
            for subscription in subscribers:
                subscription._close("shutdown")

    def subscribed_sessions(self) -> list[str]:
        return list(self._by_session)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_session.values())
