"""The openai provider with the real `openai` client against a scripted local server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.domain import (
    Agent,
    Event,
    EventKind,
    EventSource,
    Guideline,
)
from baton_server.handoff import policy
from baton_server.nlp import ProviderError, TurnContext
from baton_server.nlp.openai_provider import OpenAIProvider
from baton_server.tools.api import tool
from tests import fake_openai
from tests.engine.test_turns import describe, ends_with, open_session, turn_events
from tests.fake_openai import FakeOpenAI, completion, error, matches, streamed


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def provider(fake: FakeOpenAI, **overrides: Any) -> OpenAIProvider:
    options = {
        "model": "test-model",
        "api_key": "k",
        "base_url": fake.base_url,
        "timeout_s": 5.0,
        "max_retries": 0,
        **overrides,
    }
    return OpenAIProvider(**options)


GUIDELINE = Guideline(
    "gdl_1",
    "agt_1",
    "The customer asks for a human",
    "Connect them with a colleague",
    ("handoff",),
    True,
    0,
)


def context(text: str = "I want a human") -> TurnContext:
    trigger = Event(
        "evt_1",
        "ses_1",
        1,
        EventKind.MESSAGE,
        EventSource.CUSTOMER,
        0,
        "evt_1",
        json.dumps({"text": text}),
    )
    return TurnContext(
        "ses_1",
        Agent("agt_1", "Ada", "Shop support", 0),
        "cus_1",
        [trigger],
        trigger,
        [GUIDELINE],
        [],
    )


async def test_guideline_matching_uses_structured_output(fake: FakeOpenAI) -> None:
    fake.script(matches("gdl_1"))
    nlp = provider(fake)
    found = await nlp.match_guidelines(context())
    await nlp.close()
    assert [m.guideline.id for m in found] == ["gdl_1"]
    request = fake.requests[0]
    assert request["model"] == "test-model"
    assert request["response_format"]["type"] == "json_schema"
    assert request["messages"][1] == {"role": "user", "content": "I want a human"}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (completion("this is not json"), "malformed guideline matching output"),
        (fake_openai.Answer(raw=b"{truncated"), "could not be parsed"),
        (error(429, "slow down"), "HTTP 429"),
        (error(500, "boom"), "HTTP 500"),
        (fake_openai.Answer(body=matches("gdl_1").body, delay_s=1.5), "did not answer in time"),
    ],
)
async def test_provider_failures_become_provider_errors(
    fake: FakeOpenAI, answer: fake_openai.Answer, message: str
) -> None:
    fake.script(answer)
    nlp = provider(fake, timeout_s=0.5)
    with pytest.raises(ProviderError) as caught:
        await nlp.match_guidelines(context())
    await nlp.close()
    assert message in str(caught.value)


async def test_retries_a_429_then_succeeds(fake: FakeOpenAI) -> None:
    fake.script(error(429), matches("gdl_1"))
    nlp = provider(fake, max_retries=2)
    found = await nlp.match_guidelines(context())
    await nlp.close()
    assert len(found) == 1 and len(fake.requests) == 2


async def test_tool_calls_and_malformed_arguments(fake: FakeOpenAI) -> None:
    @tool(description="Hand off.")
    async def handoff(ctx: Any, reason: str) -> Any:
        return None

    fake.script(
        completion(tool_calls=[{"name": "handoff", "arguments": '{"reason": "asked"}'}]),
        completion(tool_calls=[{"name": "handoff", "arguments": "{not json"}]),
    )
    nlp = provider(fake)
    match = [fake_openai_match()]
    plans = await nlp.plan_tool_calls(context(), match, [handoff])
    assert [(p.name, p.arguments) for p in plans] == [("handoff", {"reason": "asked"})]
    assert fake.requests[0]["tools"][0]["function"]["parameters"]["required"] == ["reason"]
    with pytest.raises(ProviderError, match="malformed arguments"):
        await nlp.plan_tool_calls(context(), match, [handoff])
    await nlp.close()


def fake_openai_match() -> Any:
    from baton_server.nlp import GuidelineMatch

    return GuidelineMatch(GUIDELINE, 1.0)


async def test_reply_streams_pieces(fake: FakeOpenAI) -> None:
    fake.script(streamed("Hel", "lo ", "there"))
    nlp = provider(fake)
    pieces: list[str] = []
    reply = await nlp.write_reply(context(), [], [], pieces.append)
    await nlp.close()
    assert reply == "Hello there" and pieces == ["Hel", "lo ", "there"]
    assert fake.requests[0]["stream"] is True


OPENAI = {
    "engine_enabled": True,
    "example_agent": True,
    "nlp_provider": "openai",
    "openai_api_key": "k",
    "openai_max_retries": 0,
    "openai_timeout_s": 5.0,
}


async def start_with_fake(start_server, fake: FakeOpenAI):  # type: ignore[no-untyped-def]
    return await open_session(start_server, **OPENAI, openai_base_url=fake.base_url)


async def test_end_to_end_streamed_reply_then_handoff(start_server, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await start_with_fake(start_server, fake)
    guidelines = await app.repository.agent_guidelines(app.example_agent_id)
    human = next(g for g in guidelines if "human" in g.condition)
    # A reply streams to followers as deltas, then lands as one message.
    fake.script(matches(), streamed("Happy ", "to ", "help."))
    hello = await baton.say(session.id, "hello")
    deltas: list[pb.MessageDelta] = []
    events: list[pb.Event] = []
    async with asyncio.timeout(20):
        async for response in stream:
            if response.HasField("delta"):
                deltas.append(response.delta)
            events += [e for e in response.events if e.correlation_id == hello.id]
            if events and ends_with(pb.STATUS_READY)(events[-1]):
                break
    assert [d.text for d in deltas] == ["Happy ", "to ", "help."]
    assert [d.index for d in deltas] == [0, 1, 2]
    assert all(d.correlation_id == hello.id for d in deltas)
    assert describe(events[-2]) == ("message", "EVENT_SOURCE_AI_AGENT", "Happy to help.")
    # A tool hands off: the handoff's one message tells the customer, then the queue place;
    # the model is not asked for a reply that would say it again.
    fake.script(
        matches(human.id),
        completion(
            tool_calls=[
                {"name": "initiate_human_handoff", "arguments": '{"reason": "customer asked"}'}
            ]
        ),
        completion("Customer wants to talk to a person; nothing tried yet."),
    )
    ask = await baton.say(session.id, "get me a person")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    assert [describe(e) for e in events] == [
        ("status", "STATUS_ACKNOWLEDGED", None),
        ("status", "STATUS_PROCESSING", "interpreting"),
        ("status", "STATUS_PROCESSING", "considering tools"),
        ("tool", "EVENT_SOURCE_SYSTEM", (("initiate_human_handoff", ""),)),
        ("custom", "baton.session_mode_changed", "manual"),
        ("custom", "baton.handoff_requested", None),
        ("message", "EVENT_SOURCE_SYSTEM", policy.DEFAULT_TEXTS["no_operator_message"]),
        ("custom", "baton.handoff_queue_position", None),
        ("status", "STATUS_READY", None),
    ]
    # The operator's brief was written by the model.
    assert events[5].custom["summary"] == "Customer wants to talk to a person; nothing tried yet."
    assert len(fake.requests) == 5
    assert fake.requests[3]["tools"][0]["function"]["name"] == "initiate_human_handoff"


async def test_provider_failure_ends_the_turn_with_error(start_server, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await start_with_fake(start_server, fake)
    fake.script(error(500, "model crashed"))
    ask = await baton.say(session.id, "hello?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_ERROR))
    assert [describe(e)[:2] for e in events] == [
        ("status", "STATUS_ACKNOWLEDGED"),
        ("status", "STATUS_PROCESSING"),
        ("status", "STATUS_ERROR"),
    ]
    assert "HTTP 500" in events[-1].status.detail
    # The server stays up, and the next turn works.
    fake.script(matches(), streamed("Hi!"))
    again = await baton.say(session.id, "hello again")
    events = await turn_events(stream, again.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    assert describe(events[-2]) == ("message", "EVENT_SOURCE_AI_AGENT", "Hi!")


async def test_history_after_a_human_is_context(start_server, fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await start_with_fake(start_server, fake)
    await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT,
            message=pb.MessageData(
                text="I refunded order 12.",
                participant=pb.Participant(id="op1", display_name="Olga"),
            ),
        )
    )
    # Writing took the session over; the operator hands it back to the AI.
    await baton.sessions.UpdateSession(
        rr.UpdateSessionRequest(
            session_id=session.id,
            session=pb.Session(mode=pb.SESSION_MODE_AUTO),
            update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
        )
    )
    fake.script(matches(), streamed("Anything else?"))
    ask = await baton.say(session.id, "thanks")
    await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    sent = fake.requests[-1]["messages"]
    human = {"role": "assistant", "content": "[Olga, human agent] I refunded order 12."}
    customer = {"role": "user", "content": "thanks"}
    assert sent.index(human) < sent.index(customer)
    assert [m for m in sent if m["role"] == "user"] == [customer], "human turns are not questions"
