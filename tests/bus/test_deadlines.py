"""Subscription waits time out through the bus's shared deadlines, one entry per stream."""

from __future__ import annotations

import asyncio

from baton_server.bus import EventBus
from baton_server.domain import Event, EventKind, EventSource


def event(session_id: str, offset: int) -> Event:
    return Event(
        f"evt_{offset}", session_id, offset, EventKind.MESSAGE, EventSource.CUSTOMER, 0, "", "{}"
    )


async def test_a_wait_times_out_after_its_timeout_and_not_before() -> None:
    bus = EventBus()
    subscription = bus.subscribe("ses_1")
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(5):
        woke = await subscription.wait(0.2)
    elapsed = loop.time() - start
    assert woke is False
    assert 0.2 <= elapsed < 1.0


async def test_a_publish_wakes_the_wait_and_its_entry_does_not_fire_later() -> None:
    bus = EventBus()
    subscription = bus.subscribe("ses_1")
    waiter = subscription.wait(0.1)
    bus.publish([event("ses_1", 0)])
    assert await waiter is True
    assert [e.offset for e in subscription.take()] == [0]
    # The next wait has its own, later deadline: the first entry coming due must not end it.
    later = subscription.wait(0.5)
    await asyncio.sleep(0.25)
    assert not later.done()
    async with asyncio.timeout(5):
        assert await later is False


async def test_a_busy_stream_keeps_one_entry() -> None:
    bus = EventBus()
    subscription = bus.subscribe("ses_1")
    for offset in range(200):
        waiter = subscription.wait(10)
        bus.publish([event("ses_1", offset)])
        assert await waiter is True
        subscription.take()
    entries = sum(len(b) for b in bus._deadlines._buckets.values())
    assert entries == 1
    bus.close()
