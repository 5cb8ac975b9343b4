"""The transport-free ListEvents use case against a real SQLite repository."""

from __future__ import annotations

import asyncio

from baton_server.bus import EventBus
from baton_server.domain import Event, EventDraft, EventFilter, EventKind, EventSource, SessionMode
from baton_server.service.event_stream import (
    CaughtUp,
    EventsBatch,
    EventStreamer,
    FellBehind,
    Heartbeat,
    StreamSettings,
)
from baton_server.store import Repository, open_database


def message(text: str) -> EventDraft:
    return EventDraft(EventKind.MESSAGE, EventSource.CUSTOMER, {"text": text})


async def test_out_of_order_publish_is_filled_from_the_store(database_url: str) -> None:
    """Commits published out of order (as can happen across writers) leave no gap."""
    bus = EventBus()
    held: list[list[Event]] = []
    hold_next = asyncio.Event()

    def publish(events: list[Event]) -> None:
        if hold_next.is_set() and not held:
            held.append(events)  # delay this commit's notification...
            return
        bus.publish(events)
        if held:  # ...and deliver it after a later one
            bus.publish(held.pop())

    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    repository = Repository(database, on_commit=publish, on_session_deleted=bus.session_deleted)
    repository.start()
    try:
        agent = await repository.create_agent("a", "")
        customer = await repository.create_customer("c", {})
        session = await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})
        streamer = EventStreamer(repository, bus, StreamSettings(heartbeat_interval_s=5))
        stream = streamer.stream(session.id, 0, EventFilter(), follow=True)
        seen: list[int] = []
        assert isinstance(await anext(stream), EventsBatch)
        seen.append(0)
        assert isinstance(await anext(stream), CaughtUp)
        hold_next.set()
        await repository.append_event(session.id, message("one"))  # offset 1, held back
        await repository.append_event(session.id, message("two"))  # offset 2, published first
        async with asyncio.timeout(10):
            while len(seen) < 3:
                item = await anext(stream)
                assert isinstance(item, EventsBatch)
                seen += [e.offset for e in item.events]
        assert seen == [0, 1, 2]
        await stream.aclose()
        assert bus.subscriber_count == 0
    finally:
        await repository.close()
        await database.dispose()


async def test_overflow_goes_back_to_the_store(database_url: str) -> None:
    bus = EventBus(buffer_capacity=4)
    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    repository = Repository(database, on_commit=bus.publish, on_session_deleted=bus.session_deleted)
    repository.start()
    try:
        agent = await repository.create_agent("a", "")
        customer = await repository.create_customer("c", {})
        session = await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})
        streamer = EventStreamer(repository, bus, StreamSettings(heartbeat_interval_s=5))
        only_messages = EventFilter(kinds=frozenset({EventKind.MESSAGE}))
        stream = streamer.stream(session.id, 0, only_messages, follow=True)
        assert isinstance(await anext(stream), CaughtUp)  # offset 0 is filtered out
        await asyncio.gather(
            *(repository.append_event(session.id, message(str(i))) for i in range(50))
        )
        items = []
        seen: list[int] = []
        async with asyncio.timeout(10):
            while len(seen) < 50:
                item = await anext(stream)
                items.append(item)
                if isinstance(item, EventsBatch):
                    seen += [e.offset for e in item.events]
        assert seen == list(range(1, 51))
        assert any(isinstance(i, FellBehind) for i in items)
        await stream.aclose()
    finally:
        await repository.close()
        await database.dispose()


async def test_markers_carry_the_offset_to_resume_from(database_url: str) -> None:
    """CaughtUp at the session's next offset; FellBehind just past what was sent before it,
    where the store re-read starts; Heartbeat where an idle stream stands."""
    bus = EventBus(buffer_capacity=4)
    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    repository = Repository(database, on_commit=bus.publish, on_session_deleted=bus.session_deleted)
    repository.start()
    try:
        agent = await repository.create_agent("a", "")
        customer = await repository.create_customer("c", {})
        session = await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})
        await repository.append_event(session.id, message("before"))
        streamer = EventStreamer(repository, bus, StreamSettings(heartbeat_interval_s=0.2))
        stream = streamer.stream(session.id, 0, EventFilter(), follow=True)
        items = [await anext(stream), await anext(stream)]
        assert isinstance(items[0], EventsBatch) and items[1] == CaughtUp(2)
        await asyncio.gather(
            *(repository.append_event(session.id, message(str(i))) for i in range(50))
        )
        sent, fell_behind = 2, 0
        async with asyncio.timeout(10):
            while sent < 52:
                item = await anext(stream)
                if isinstance(item, FellBehind):
                    fell_behind += 1
                    assert item.position == sent  # resume point: just past what was sent
                elif isinstance(item, EventsBatch):
                    assert item.events[0].offset == sent  # and the stream goes on from there
                    sent = item.events[-1].offset + 1
            assert await anext(stream) == Heartbeat(52)
        assert fell_behind
        await stream.aclose()
    finally:
        await repository.close()
        await database.dispose()
