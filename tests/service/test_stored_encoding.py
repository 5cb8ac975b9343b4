"""Each event is encoded once, at append: replay, live delivery and relayed commits send those
bytes; rows stored under another encoding version are encoded anew from their columns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from baton_server.bus import EventBus
from baton_server.domain import Event, EventDraft, EventFilter, EventKind, EventSource, SessionMode
from baton_server.service.event_stream import (
    CaughtUp,
    EncodedBatch,
    EventStreamer,
    StreamItem,
    StreamSettings,
)
from baton_server.store import Database, EventEncoding, Repository, open_database


@dataclass
class CountingEncoding:
    """Encodes an event as `<label>:<offset>` (opaque bytes to the store) and counts calls."""

    label: str
    calls: list[int] = field(default_factory=list)

    def encode(self, event: Event) -> bytes:
        self.calls.append(event.offset)
        return f"{self.label}:{event.offset}".encode()

    def encoding(self, version: int) -> EventEncoding:
        return EventEncoding(version=version, encode=self.encode)


def message(text: str) -> EventDraft:
    return EventDraft(EventKind.MESSAGE, EventSource.CUSTOMER, {"text": text})


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    try:
        yield database
    finally:
        await database.dispose()


async def open_repository(
    database: Database, encoding: EventEncoding, publish: Callable[[list[Event]], None]
) -> Repository:
    repository = Repository(
        database, on_commit=publish, on_session_deleted=lambda _: None, encoding=encoding
    )
    repository.start()
    return repository


async def new_session(repository: Repository) -> str:
    agent = await repository.create_agent("a", "")
    customer = await repository.create_customer("c", {})
    return (await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})).id


async def collect_encoded(stream: AsyncIterator[StreamItem], count: int) -> list[bytes]:
    """The encoded events of the next `count` events; fails on a decoded batch."""
    got: list[bytes] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            item = await anext(stream)
            if isinstance(item, CaughtUp):
                continue
            assert isinstance(item, EncodedBatch), f"expected stored bytes, got {item!r}"
            got += item.encoded
    return got


async def test_followers_get_the_bytes_encoded_at_append(database: Database) -> None:
    bus = EventBus()
    encoding = CountingEncoding("v1")
    repository = await open_repository(database, encoding.encoding(1), bus.publish)
    try:
        session_id = await new_session(repository)  # offset 0: baton.session_created
        streamer = EventStreamer(repository, bus, StreamSettings(heartbeat_interval_s=5))
        streams = [streamer.stream(session_id, 0, EventFilter(), follow=True) for _ in range(3)]
        for stream in streams:  # catch-up: the creation event, from the store
            assert await collect_encoded(stream, 1) == [b"v1:0"]
        appended = [await repository.append_event(session_id, message(str(i))) for i in range(4)]
        assert [e.encoded for e in appended] == [f"v1:{i}".encode() for i in range(1, 5)]
        for stream in streams:  # live: the same bytes, for every follower
            assert await collect_encoded(stream, 4) == [f"v1:{i}".encode() for i in range(1, 5)]
            await stream.aclose()
        # Once per event, however many followers and reads.
        assert sorted(encoding.calls) == [0, 1, 2, 3, 4]
    finally:
        await repository.close()


async def test_rows_of_another_version_are_encoded_anew(database: Database) -> None:
    old = CountingEncoding("v1")
    repository = await open_repository(database, old.encoding(1), lambda _: None)
    try:
        session_id = await new_session(repository)
        for i in range(3):
            await repository.append_event(session_id, message(str(i)))
    finally:
        await repository.close()
    # A row stored before encodings had versions (migration 0010 leaves those NULL).
    async with database.reader.begin() as conn:
        await conn.execute(
            text('UPDATE events SET wire_format = NULL WHERE session_id = :s AND "offset" = 2'),
            {"s": session_id},
        )

    new = CountingEncoding("v2")
    repository = await open_repository(database, new.encoding(2), lambda _: None)
    try:
        everything = EventFilter()
        replayed = await repository.read_encoded_events(session_id, 0, 4, everything, 100)
        assert replayed == [(i, f"v2:{i}".encode()) for i in range(4)]
        relayed = await repository.read_events(session_id, 0, 4, everything, 100, with_encoded=True)
        assert [e.encoded for e in relayed] == [f"v2:{i}".encode() for i in range(4)]
    finally:
        await repository.close()

    # Under the version they were written with, the stored bytes are used as they are.
    same = CountingEncoding("again")
    repository = await open_repository(database, same.encoding(1), lambda _: None)
    try:
        replayed = await repository.read_encoded_events(session_id, 0, 2, EventFilter(), 100)
        assert replayed == [(0, b"v1:0"), (1, b"v1:1")]
        assert same.calls == []
    finally:
        await repository.close()
