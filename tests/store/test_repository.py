"""Repository behaviour that the gRPC tests do not pin down directly."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.bus import EventBus
from baton_server.domain import (
    Event,
    EventDraft,
    EventKind,
    EventSource,
    GuardFailure,
    HandoffRequester,
    SessionMode,
    TurnGuard,
)
from baton_server.errors import TurnAborted
from baton_server.handoff.controls import HandoffControls
from baton_server.handoff.summary import Summarizer
from baton_server.store import Repository, open_database
from baton_server.store.handoffs import HandoffReader


async def open_repository(database_url: str) -> tuple[Repository, EventBus]:
    bus = EventBus()
    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    repository = Repository(database, on_commit=bus.publish, on_session_deleted=bus.session_deleted)
    repository.start()
    return repository, bus


def message(text: str, source: EventSource = EventSource.CUSTOMER) -> EventDraft:
    return EventDraft(EventKind.MESSAGE, source, {"text": text})


async def new_session(repository: Repository) -> str:
    agent = await repository.create_agent("a", "")
    customer = await repository.create_customer("c", {})
    session = await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})
    return session.id


async def test_close_finishes_every_queued_append(database_url: str) -> None:
    """Regression: the stop marker queued behind a batch must not be lost (close hung)."""
    repository, _ = await open_repository(database_url)
    session_id = await new_session(repository)
    appends = [
        asyncio.create_task(repository.append_event(session_id, message(str(i)))) for i in range(50)
    ]
    await asyncio.sleep(0)  # every append is queued
    async with asyncio.timeout(20):
        await repository.close()
    events = await asyncio.gather(*appends)
    assert sorted(e.offset for e in events) == list(range(1, 51))


async def test_turn_guard_discards_a_stale_reply(database_url: str) -> None:
    repository, _ = await open_repository(database_url)
    try:
        session_id = await new_session(repository)
        trigger = await repository.append_event(session_id, message("first"))
        guard = TurnGuard(trigger_offset=trigger.offset)
        reply = message("an answer", EventSource.AI_AGENT)
        # A newer customer message supersedes the turn.
        await repository.append_event(session_id, message("second"))
        try:
            await repository.append_turn_events(session_id, [reply], guard)
            raise AssertionError("a superseded turn must not post")
        except TurnAborted as aborted:
            assert aborted.failed is GuardFailure.SUPERSEDED
        # A human took over: the newest turn may not post either.
        newest = TurnGuard(trigger_offset=await repository.next_offset(session_id) - 1)
        await repository.update_session(session_id, mode=SessionMode.MANUAL)
        try:
            await repository.append_turn_events(session_id, [reply], newest)
            raise AssertionError("a turn must not talk over a human")
        except TurnAborted as aborted:
            assert aborted.failed is GuardFailure.NOT_AUTO
        log = await repository.read_events(session_id, 0, 100, _everything(), 100)
        assert not [e for e in log if e.source is EventSource.AI_AGENT]
    finally:
        await repository.close()


def _everything():  # type: ignore[no-untyped-def]
    from baton_server.domain import EventFilter

    return EventFilter()


async def test_after_a_handoff_a_human_message_silences_the_turn(database_url: str) -> None:
    repository, _ = await open_repository(database_url)
    try:
        session_id = await new_session(repository)
        trigger = await repository.append_event(session_id, message("I want a human"))
        guard = TurnGuard(trigger_offset=trigger.offset)
        tool = EventDraft(EventKind.TOOL, EventSource.SYSTEM, {"tool_calls": []})
        controls = HandoffControls(
            repository, HandoffReader(repository.database), Summarizer(repository, None)
        )
        opening = await controls.prepare(session_id, "asked", HandoffRequester.TOOL)

        async def hand_off(conn: AsyncConnection) -> list[Event]:
            return (await controls.open_in(conn, opening))[1]

        await repository.append_turn_events(session_id, [tool], guard, hand_off=hand_off)
        handed_off = TurnGuard(trigger_offset=trigger.offset, handed_off=True)
        # The turn's own transition message may still go out...
        await repository.append_turn_events(
            session_id, [message("Connecting you", EventSource.AI_AGENT)], handed_off
        )
        # ...but not once a human agent has spoken.
        await repository.append_event(session_id, message("Hi, Olga here", EventSource.HUMAN_AGENT))
        try:
            await repository.append_turn_events(
                session_id, [message("late AI words", EventSource.AI_AGENT)], handed_off
            )
            raise AssertionError("the AI must not talk over a human")
        except TurnAborted as aborted:
            assert aborted.failed is GuardFailure.HUMAN_ANSWERED
    finally:
        await repository.close()


async def test_turn_lease_refuses_a_message_already_handled(database_url: str) -> None:
    repository, _ = await open_repository(database_url)
    try:
        session_id = await new_session(repository)
        assert await repository.acquire_turn(session_id, "replica-a", "c5", 5, 60)
        assert not await repository.acquire_turn(session_id, "replica-b", "c6", 6, 60), "held"
        await repository.release_turn(session_id, "replica-a")
        # Replica B learns of message 5 late: it was handled; message 6 is new.
        assert not await repository.acquire_turn(session_id, "replica-b", "c5", 5, 60)
        assert await repository.acquire_turn(session_id, "replica-b", "c6", 6, 60)
    finally:
        await repository.close()
