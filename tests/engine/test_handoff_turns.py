"""Handoffs and the engine: the AI never talks over a human, and after a return to the AI the
human part of the conversation is context, not turns owed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.handoff.policy import DEFAULT_TEXTS
from tests.engine.test_turns import ends_with, open_session, turn_events
from tests.fake_openai import FakeOpenAI, matches, streamed
from tests.gated_provider import GatedProvider
from tests.handoff.test_controls import kinds, log_of, op, request_handoff
from tests.support import ROOT

OPENAI = {
    "engine_enabled": True,
    "example_agent": True,
    "nlp_provider": "openai",
    "openai_api_key": "k",
    "openai_max_retries": 0,
    "openai_timeout_s": 10.0,
}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def human(session_id: str, text: str, who: str = "olga") -> rr.CreateEventRequest:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=pb.EVENT_SOURCE_HUMAN_AGENT,
        message=pb.MessageData(text=text, participant=op(who, who.title())),
    )


async def test_a_reply_in_flight_is_discarded_when_a_human_takes_over(start_server) -> None:  # type: ignore[no-untyped-def]
    provider = GatedProvider()
    app, baton, session, stream = await open_session(start_server, provider=provider)
    ask = await baton.say(session.id, "where is my parcel?")
    await provider.writing.wait()  # the reply exists and waits at the gate
    taken = await baton.events.CreateEvent(human(session.id, "Olga here, checking now."))
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_CANCELLED))
    assert events[-1].status.detail == "a human took over the session"
    provider.release()
    await app.engine.idle()  # the turn is over: nothing of it can still be posted
    stream.cancel()
    log = await log_of(baton, session.id)
    assert [e for e in log if e.source == pb.EVENT_SOURCE_AI_AGENT and e.HasField("message")] == []
    assert log[-1].offset >= taken.event.offset


async def test_after_its_own_handoff_the_ai_says_nothing_more(
    start_server,
) -> None:  # type: ignore[no-untyped-def]
    """The handoff's own message is the transition (one message, then the place in the queue):
    the turn that handed off writes no reply of its own, so it never says "connecting you" a
    second time, nor talks over an operator who claims at once."""
    provider = GatedProvider()
    app, baton, session, stream = await open_session(start_server, provider=provider)
    ask = await baton.say(session.id, "Can I talk to a human please?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    (handoff,) = (
        await baton.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    ).handoffs
    await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=op("olga", "Olga"))
    )
    await app.engine.idle()
    stream.cancel()
    assert not provider.writing.is_set(), "the turn asked the model for a reply"
    assert kinds(events)[-2:] == [
        "EVENT_SOURCE_SYSTEM: " + DEFAULT_TEXTS["no_operator_message"],
        "baton.handoff_queue_position",
    ]
    log = await log_of(baton, session.id)
    assert [e for e in log if e.source == pb.EVENT_SOURCE_AI_AGENT and e.HasField("message")] == []
    assert kinds(log)[-1] == "EVENT_SOURCE_SYSTEM: Olga has joined the conversation."


async def test_after_a_return_to_the_ai_humans_turns_are_context(start_server, fake) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(
        start_server, **OPENAI, openai_base_url=fake.base_url
    )
    handoff = (await request_handoff(baton, session.id, "wants a person")).handoff
    waiting = await baton.say(session.id, "hello? anyone?")
    await turn_events(stream, waiting.id, ends_with(pb.STATUS_ACKNOWLEDGED))
    await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=op("olga"))
    )
    await baton.events.CreateEvent(human(session.id, "I refunded order 12."))
    await baton.handoffs.ReleaseHandoff(
        rr.ReleaseHandoffRequest(
            handoff_id=handoff.id,
            operator_id="olga",
            outcome=pb.HANDOFF_OUTCOME_RETURNED_TO_AI,
            note="Refund of 40 EUR issued for order 12.",
        )
    )
    await app.engine.idle()
    # No turn for what the customer said while humans answered, now or after a restart.
    log = await log_of(baton, session.id)
    of_waiting = [e for e in log if e.correlation_id == waiting.id and e.id != waiting.id]
    assert [e.status.status for e in of_waiting] == [pb.STATUS_ACKNOWLEDGED]
    assert not [
        e
        for e in await app.repository.unanswered_customer_messages(0)
        if e.session_id == session.id
    ]
    assert kinds(log)[-1] == "EVENT_SOURCE_SYSTEM: You're back with our virtual assistant."
    # The next customer message gets an answer that sees the operator's note and words.
    fake.script(matches(), streamed("Glad to help!"))
    thanks = await baton.say(session.id, "thanks!")
    await turn_events(stream, thanks.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    sent = fake.requests[-1]["messages"]
    contents = "\n".join(str(m["content"]) for m in sent)
    assert "Refund of 40 EUR issued for order 12." in contents
    assert {"role": "assistant", "content": "[Olga, human agent] I refunded order 12."} in sent


async def test_tool_handoff_summary_names_the_matched_guideline(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server)
    ask = await baton.say(session.id, "Can I talk to a human please?")
    await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    (handoff,) = (
        await baton.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    ).handoffs
    assert handoff.requested_by == pb.HANDOFF_REQUESTER_TOOL
    assert handoff.state == pb.HANDOFF_STATE_PENDING
    assert "Matched guideline: when" in handoff.summary
    assert "- Can I talk to a human please?" in handoff.summary


async def test_baton_stats_prints_the_figures(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server()
    session = await baton.new_session()
    handoff = (await request_handoff(baton, session.id, "Billing dispute")).handoff
    await baton.handoffs.ReleaseHandoff(
        rr.ReleaseHandoffRequest(handoff_id=handoff.id, outcome=pb.HANDOFF_OUTCOME_ABANDONED)
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "baton_server", "stats", "--target", f"127.0.0.1:{app.port}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = {" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()}
    assert "handoff rate 100.0%" in lines
    assert "abandoned while queued 1" in lines
    assert "reason 'billing dispute' 1" in lines
