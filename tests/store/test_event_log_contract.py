"""The event log's contract, run against every implementation of it: plain sqlite3 threads
(store/sqlite_log.py, SQLite's default), asyncpg directly (store/pg_log.py, PostgreSQL's
default), and SQLAlchemy on both.
The paths share their rules (store/append_plan.py) but not their I/O, so they must not drift."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from baton_server.domain import (
    Event,
    EventDraft,
    EventFilter,
    EventKind,
    EventSource,
    GuardFailure,
    SessionMode,
    TurnGuard,
)
from baton_server.errors import IdempotencyKeyReused, NotFound, TurnAborted
from baton_server.store import EventEncoding, Repository, open_database

ENCODING = EventEncoding(version=1, encode=lambda e: f"{e.session_id}:{e.offset}:{e.id}".encode())


@dataclass
class Log:
    repository: Repository
    published: list[Event] = field(default_factory=list)

    async def session(self, mode: SessionMode = SessionMode.AUTO) -> str:
        agent = await self.repository.create_agent("a", "")
        customer = await self.repository.create_customer("c", {})
        created = await self.repository.create_session(agent.id, customer.id, "", mode, {})
        return created.id


@pytest.fixture(params=["plain_driver", "sqlalchemy"])
async def log(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Log]:
    plain = request.param == "plain_driver"
    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    published: list[Event] = []
    repository = Repository(
        database,
        on_commit=published.extend,
        on_session_deleted=lambda _: None,
        encoding=ENCODING,
        plain_driver=plain,
    )
    repository.start()
    try:
        yield Log(repository, published)
    finally:
        await repository.close()
        await database.dispose()


def message(text: str, source: EventSource = EventSource.CUSTOMER, key: str = "") -> EventDraft:
    return EventDraft(EventKind.MESSAGE, source, {"text": text}, idempotency_key=key)


async def test_concurrent_appends_get_contiguous_offsets_and_read_back(log: Log) -> None:
    repository = log.repository
    sessions = [await log.session() for _ in range(3)]
    appended = await asyncio.gather(
        *(
            repository.append_event(sid, message(f"{sid} {i}"))
            for i in range(40)
            for sid in sessions
        )
    )
    for sid in sessions:
        mine = sorted(e.offset for e in appended if e.session_id == sid)
        assert mine == list(range(1, 41))  # offset 0: baton.session_created
        assert await repository.next_offset(sid) == 41
        stored = await repository.read_events(sid, 0, 41, EventFilter(), 1000)
        assert [e.offset for e in stored] == list(range(41))
        by_id = {e.id: e for e in appended}
        for event in stored[1:]:
            assert event == by_id[event.id]
        encoded = await repository.read_encoded_events(sid, 0, 41, EventFilter(), 1000)
        assert encoded == [(e.offset, ENCODING.encode(e)) for e in stored]
    # Published once each, after commit, in each session's offset order.
    published_ids = [e.id for e in log.published]
    assert len(published_ids) == len(set(published_ids))
    assert {e.id for e in appended} <= set(published_ids)
    for sid in sessions:
        assert [e.offset for e in log.published if e.session_id == sid] == list(range(41))


async def test_appended_events_carry_their_stored_bytes(log: Log) -> None:
    sid = await log.session()
    event = await log.repository.append_event(sid, message("hi"))
    assert event.encoded == ENCODING.encode(event)
    relayed = await log.repository.read_events(sid, 1, 2, EventFilter(), 10, with_encoded=True)
    assert [e.encoded for e in relayed] == [event.encoded]
    plain = await log.repository.read_events(sid, 1, 2, EventFilter(), 10)
    assert plain[0].encoded is None and plain[0] == event


async def test_reads_filter_page_and_stop_at_the_range(log: Log) -> None:
    repository = log.repository
    sid = await log.session()
    for i in range(6):
        source = EventSource.CUSTOMER if i % 2 == 0 else EventSource.HUMAN_AGENT
        await repository.append_event(sid, message(str(i), source))
    customers = EventFilter(sources=frozenset({EventSource.CUSTOMER}))
    got = await repository.read_events(sid, 0, 7, customers, 100)
    assert [e.offset for e in got] == [1, 3, 5]
    only_custom = EventFilter(kinds=frozenset({EventKind.CUSTOM}))
    assert [o for o, _ in await repository.read_encoded_events(sid, 0, 7, only_custom, 100)] == [0]
    assert [e.offset for e in await repository.read_events(sid, 2, 5, EventFilter(), 2)] == [2, 3]
    assert await repository.read_events(sid, 7, 9, EventFilter(), 10) == []


async def test_idempotent_retries_return_the_original_and_reuse_is_refused(log: Log) -> None:
    repository = log.repository
    sid = await log.session()
    first = await repository.append_event(sid, message("pay", key="k1"))
    retried = await asyncio.gather(
        *(repository.append_event(sid, message("pay", key="k1")) for _ in range(5))
    )
    assert {(e.id, e.offset) for e in retried} == {(first.id, first.offset)}
    with pytest.raises(IdempotencyKeyReused) as refused:
        await repository.append_event(sid, message("refund", key="k1"))
    assert refused.value.metadata["offset"] == str(first.offset)
    assert await repository.next_offset(sid) == 2
    assert [e.id for e in log.published if e.session_id == sid][1:] == [first.id]


async def test_unknown_sessions_fail_alone_in_their_batch(log: Log) -> None:
    repository = log.repository
    sid = await log.session()
    results = await asyncio.gather(
        repository.append_event(sid, message("a")),
        repository.append_event("ses_missing", message("b")),
        repository.append_event(sid, message("c")),
        return_exceptions=True,
    )
    assert isinstance(results[1], NotFound)
    assert sorted(r.offset for r in results if isinstance(r, Event)) == [1, 2]
    with pytest.raises(NotFound):
        await repository.next_offset("ses_missing")


async def test_turn_guards_report_which_condition_failed(log: Log) -> None:
    repository = log.repository
    reply = EventDraft(EventKind.MESSAGE, EventSource.AI_AGENT, {"text": "answer"})

    sid = await log.session()
    trigger = await repository.append_event(sid, message("question"))
    await repository.append_event(sid, message("newer question"))
    with pytest.raises(TurnAborted) as aborted:
        await repository.append_turn_events(sid, [reply], TurnGuard(trigger.offset))
    assert aborted.value.failed is GuardFailure.SUPERSEDED

    sid = await log.session()
    trigger = await repository.append_event(sid, message("question"))
    await repository.append_event(sid, message("on it", EventSource.HUMAN_AGENT))
    with pytest.raises(TurnAborted) as aborted:
        await repository.append_turn_events(sid, [reply], TurnGuard(trigger.offset))
    assert aborted.value.failed is GuardFailure.HUMAN_ANSWERED

    sid = await log.session(SessionMode.MANUAL)
    trigger = await repository.append_event(sid, message("question"))
    with pytest.raises(TurnAborted) as aborted:
        await repository.append_turn_events(sid, [reply], TurnGuard(trigger.offset))
    assert aborted.value.failed is GuardFailure.NOT_AUTO
    guard = TurnGuard(trigger.offset, handed_off=True, control_epoch=99)
    with pytest.raises(TurnAborted) as aborted:
        await repository.append_turn_events(sid, [reply], guard)
    assert aborted.value.failed is GuardFailure.CONTROL_CHANGED

    sid = await log.session()
    trigger = await repository.append_event(sid, message("question"))
    (answer,) = await repository.append_turn_events(sid, [reply], TurnGuard(trigger.offset))
    assert answer.offset == trigger.offset + 1


async def test_each_backend_appends_on_its_plain_driver(database_url: str) -> None:
    """The default repository writes appends on the plain driver: SQLite's writer thread, or
    (seen from PostgreSQL's own view of its sessions) the asyncpg connection named
    baton-append; the SQLAlchemy-only repository never opens that connection."""
    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    repositories = []
    try:
        for plain in (False, True):
            repository = Repository(
                database,
                on_commit=lambda _: None,
                on_session_deleted=lambda _: None,
                encoding=ENCODING,
                plain_driver=plain,
            )
            repository.start()
            repositories.append(repository)
            log = Log(repository)
            session_id = await log.session()
            await repository.append_event(session_id, message("hi"))
            if database.is_sqlite:
                writers = {t.name for t in threading.enumerate()}
                assert ("baton-sqlite-writer-0" in writers) is plain
            else:
                async with database.reader.connect() as conn:
                    appenders = await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND application_name = 'baton-append'"
                        )
                    )
                assert appenders == (1 if plain else 0)
    finally:
        for repository in repositories:
            await repository.close()
        await database.dispose()
