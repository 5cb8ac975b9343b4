"""Per-session fan-out with bounded per-subscriber buffers.

Publishing never blocks and never grows memory without bound: a subscriber whose buffer is full
is marked `overflowed` and its buffer dropped; it then re-reads what it missed from the store
(the store is the truth, the bus is only a fast path).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from baton_server.domain import Event, TextDelta

# Deltas are a nicety (the full reply always lands in the log): a slow reader just loses some.
DELTA_CAPACITY = 256


class Subscription:
    __slots__ = (
        "_buffer",
        "_capacity",
        "_deltas",
        "_wakeup",
        "closed_reason",
        "overflowed",
        "session_id",
    )

    def __init__(self, session_id: str, capacity: int) -> None:
        self.session_id = session_id
        self._buffer: deque[Event] = deque()
        self._deltas: deque[TextDelta] = deque(maxlen=DELTA_CAPACITY)
        self._capacity = capacity
        self._wakeup = asyncio.Event()
        self.overflowed = False
        # Set when the stream must end: "deleted" or "shutdown".
        self.closed_reason: str | None = None

    def _offer(self, events: list[Event]) -> None:
        if self.overflowed:
            return
        if len(self._buffer) + len(events) > self._capacity:
            self.overflowed = True
            self._buffer.clear()
        else:
            self._buffer.extend(events)
        self._wakeup.set()

    def _offer_delta(self, delta: TextDelta) -> None:
        self._deltas.append(delta)
        self._wakeup.set()

    def take_deltas(self) -> list[TextDelta]:
        items = list(self._deltas)
        self._deltas.clear()
        return items

    def _close(self, reason: str) -> None:
        self.closed_reason = reason
        self._wakeup.set()

    def take(self) -> list[Event]:
        """Everything buffered so far, oldest first."""
        items = list(self._buffer)
        self._buffer.clear()
        return items

    def reset_overflow(self) -> None:
        """Call before re-reading the store: events published from now on are buffered again."""
        self.overflowed = False
        self._buffer.clear()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline, not a cancel
        """Waits until something is buffered, an overflow or a close; False on timeout."""
        if self._buffer or self._deltas or self.overflowed or self.closed_reason:
            self._wakeup.clear()
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
        except TimeoutError:
            return False
        self._wakeup.clear()
        return True


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
