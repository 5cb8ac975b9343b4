"""The offline provider end to end: the example agent over gRPC understands paraphrases, looks
up the order number it was given and answers with the canned response that fits."""

from __future__ import annotations

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.examples import support
from baton_server.nlp.offline import OfflineProvider
from tests.engine.test_turns import describe, ends_with, open_session, turn_events


async def test_the_example_agent_understands_paraphrases(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server)
    assert isinstance(app.provider, OfflineProvider) and app.provider.matcher == "embedding"

    money = await baton.say(session.id, "I want my money back")
    events = await turn_events(stream, money.id, ends_with(pb.STATUS_READY))
    assert [describe(e) for e in events][-2:] == [
        ("message", "EVENT_SOURCE_AI_AGENT", support.CANNED_RESPONSES[1]),
        ("status", "STATUS_READY", None),
    ]
    assert not [e for e in events if e.WhichOneof("data") == "tool"]

    where = await baton.say(session.id, "hi, has my order #48213 shipped yet?")
    events = await turn_events(stream, where.id, ends_with(pb.STATUS_READY))
    (tool,) = [e for e in events if e.WhichOneof("data") == "tool"]
    (call,) = tool.tool.tool_calls
    assert call.name == "check_order_status"
    assert dict(call.arguments) == {"order_id": "48213"}  # the number, not the whole message
    assert describe(events[-2]) == (
        "message",
        "EVENT_SOURCE_AI_AGENT",
        "I've checked order 48213: it is in transit.",
    )

    person = await baton.say(session.id, "is a person around?")
    events = await turn_events(stream, person.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    (tool,) = [e for e in events if e.WhichOneof("data") == "tool"]
    assert [c.name for c in tool.tool.tool_calls] == ["initiate_human_handoff"]
    assert tool.tool.tool_calls[0].arguments["reason"] == "is a person around?"
    # The handoff tells the customer (then their place in the queue); the agent adds nothing.
    assert [
        e for e in events if e.HasField("message") and e.source == pb.EVENT_SOURCE_AI_AGENT
    ] == []
    got = await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    assert got.session.mode == pb.SESSION_MODE_MANUAL


async def test_chatter_gets_the_fallback_reply(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server)
    ask = await baton.say(session.id, "Who won the football game last night?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    assert [describe(e)[:2] for e in events] == [
        ("status", "STATUS_ACKNOWLEDGED"),
        ("status", "STATUS_PROCESSING"),
        ("status", "STATUS_PROCESSING"),
        ("status", "STATUS_TYPING"),
        ("message", "EVENT_SOURCE_AI_AGENT"),
        ("status", "STATUS_READY"),
    ]
    assert events[-2].message.text.startswith("Thanks for your message.")
