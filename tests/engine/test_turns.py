"""The agent's turn over gRPC with the offline provider: statuses, tools, handoff, cancellation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.examples import support
from baton_server.handoff import policy
from tests import engine_tools
from tests.support import ROOT, Stubs, bad_request_fields, collect

ENGINE = {"engine_enabled": True, "example_agent": True, "tool_modules": ("tests.engine_tools",)}


def describe(event: pb.Event) -> tuple[Any, ...]:
    """A compact, comparable view of an event."""
    data = event.WhichOneof("data")
    if data == "status":
        detail = event.status.detail if event.status.HasField("detail") else None
        return ("status", pb.Status.Name(event.status.status), detail)
    if data == "tool":
        return (
            "tool",
            pb.EventSource.Name(event.source),
            tuple((c.name, c.error) for c in event.tool.tool_calls),
        )
    if data == "custom":
        mode = event.custom["mode"] if "mode" in event.custom else None
        return ("custom", event.custom["type"], mode)
    return ("message", pb.EventSource.Name(event.source), event.message.text)


async def turn_events(stream: Any, correlation_id: str, until: Any) -> list[pb.Event]:
    """Events of one turn, read from a follow stream until `until(event)` holds."""
    seen: list[pb.Event] = []
    async with asyncio.timeout(20):
        async for response in stream:
            for event in response.events:
                if event.correlation_id == correlation_id and event.id != correlation_id:
                    seen.append(event)
                    if until(event):
                        return seen
    raise AssertionError("stream ended")


def ends_with(status: int):  # type: ignore[no-untyped-def]
    return lambda e: e.WhichOneof("data") == "status" and e.status.status == status


async def open_session(start_server, **overrides: Any):  # type: ignore[no-untyped-def]
    app, baton = await start_server(**{**ENGINE, **overrides})
    customer = await baton.customers.CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
    )
    session = (
        await baton.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=app.example_agent_id, customer_id=customer.customer.id)
            )
        )
    ).session
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    await collect(stream, until_caught_up=True)
    return app, baton, session, stream


async def add_guideline(baton: Stubs, agent_id: str, condition: str, tools: list[str]) -> None:
    await baton.channel.unary_unary(
        "/baton.v1.GuidelineService/CreateGuideline",
        request_serializer=rr.CreateGuidelineRequest.SerializeToString,
        response_deserializer=rr.CreateGuidelineResponse.FromString,
    )(
        rr.CreateGuidelineRequest(
            guideline=pb.Guideline(
                agent_id=agent_id,
                condition=condition,
                action="Tell the customer what was found",
                tool_names=tools,
                enabled=True,
            )
        )
    )


async def test_seed_scenario_handoff_and_back(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server)
    ask = await baton.say(session.id, "Can I talk to a human please?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
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
    # The customer reads one transition message, then their place in the queue: not also
    # "connecting you" from the handoff and the agent's own "connecting you with a colleague".
    told = [e.message.text for e in events if e.kind == pb.EVENT_KIND_MESSAGE]
    assert told == [policy.DEFAULT_TEXTS["no_operator_message"]]
    assert events[-2].custom["text"].startswith("You are number 1 in the queue")
    offsets = [e.offset for e in events]
    assert offsets == list(range(ask.offset + 1, ask.offset + 1 + len(events)))
    tool_call = events[3].tool.tool_calls[0]
    assert tool_call.arguments["reason"] == "Can I talk to a human please?"
    got = await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    assert got.session.mode == pb.SESSION_MODE_MANUAL

    # Manual mode: the customer's next message is stored and acknowledged, nothing more.
    again = await baton.say(session.id, "Hello? Is anyone there?")
    events = await turn_events(stream, again.id, ends_with(pb.STATUS_ACKNOWLEDGED))
    await app.engine.idle()
    human = await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT,
            message=pb.MessageData(
                text="Hi, I'm Olga. I'll sort this out.",
                participant=pb.Participant(id="op-7", display_name="Olga"),
            ),
        )
    )
    behalf = await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
            message=pb.MessageData(text="Your replacement is on its way."),
        )
    )
    live, _ = await collect(stream, until_offset=behalf.event.offset)
    assert [describe(e) for e in live] == [
        # The first human to answer a pending handoff claims it.
        ("custom", "baton.handoff_claimed", None),
        ("message", "EVENT_SOURCE_SYSTEM", "Olga has joined the conversation."),
        ("message", "EVENT_SOURCE_HUMAN_AGENT", "Hi, I'm Olga. I'll sort this out."),
        (
            "message",
            "EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT",
            "Your replacement is on its way.",
        ),
    ]
    assert live[2].message.participant.display_name == "Olga"
    assert human.event.offset == again.offset + 4  # `acknowledged`, the claim, "joined"

    # Back to the AI, which answers the next customer message.
    await baton.sessions.UpdateSession(
        rr.UpdateSessionRequest(
            session_id=session.id,
            session=pb.Session(mode=pb.SESSION_MODE_AUTO),
            update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
        )
    )
    refund = await baton.say(session.id, "One more thing: how does a refund work?")
    events = await turn_events(stream, refund.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    assert [describe(e) for e in events] == [
        ("status", "STATUS_ACKNOWLEDGED", None),
        ("status", "STATUS_PROCESSING", "interpreting"),
        ("status", "STATUS_PROCESSING", "articulating"),
        ("status", "STATUS_TYPING", None),
        ("message", "EVENT_SOURCE_AI_AGENT", support.CANNED_RESPONSES[1]),
        ("status", "STATUS_READY", None),
    ]


async def test_human_agent_messages_need_a_participant(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(start_server)
    stream.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await baton.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=session.id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=pb.EVENT_SOURCE_HUMAN_AGENT,
                message=pb.MessageData(text="hi"),
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == ["message.participant.id"]


async def test_second_message_cancels_and_restarts_the_turn(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server)
    await add_guideline(
        baton, app.example_agent_id, "The customer wants a slow lookup", ["slow_lookup"]
    )
    first = await baton.say(session.id, "Please do a slow lookup for me")
    async with asyncio.timeout(20):
        await engine_tools.STARTED[session.id].wait()
    second = await baton.say(session.id, "Actually, never mind")
    cancelled = await turn_events(stream, first.id, ends_with(pb.STATUS_CANCELLED))
    assert [describe(e) for e in cancelled] == [
        ("status", "STATUS_ACKNOWLEDGED", None),
        ("status", "STATUS_PROCESSING", "interpreting"),
        ("status", "STATUS_PROCESSING", "considering tools"),
        ("status", "STATUS_CANCELLED", "superseded by a newer customer message"),
    ]
    events = await turn_events(stream, second.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    assert events[0].offset > cancelled[-1].offset, "the old turn ends before the new one starts"
    assert [describe(e)[:2] for e in events][-2:] == [
        ("message", "EVENT_SOURCE_AI_AGENT"),
        ("status", "STATUS_READY"),
    ]


async def test_switch_to_manual_mid_turn_cancels_without_a_reply(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server)
    await add_guideline(
        baton, app.example_agent_id, "The customer wants a slow lookup", ["slow_lookup"]
    )
    ask = await baton.say(session.id, "Please do a slow lookup for me")
    async with asyncio.timeout(20):
        await engine_tools.STARTED[session.id].wait()
    await baton.sessions.UpdateSession(
        rr.UpdateSessionRequest(
            session_id=session.id,
            session=pb.Session(mode=pb.SESSION_MODE_MANUAL),
            update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
        )
    )
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_CANCELLED))
    await app.engine.idle()
    stream.cancel()
    assert describe(events[-1]) == ("status", "STATUS_CANCELLED", "a human took over the session")
    log, _ = await collect(baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id)))
    assert not [
        e for e in log if e.source == pb.EVENT_SOURCE_AI_AGENT and e.WhichOneof("data") == "message"
    ]


@pytest.mark.parametrize(
    ("tool", "timeout", "error"),
    [
        ("broken_tool", 10.0, "RuntimeError: database on fire"),
        ("slow_lookup", 0.2, "timed out after 0.2 s"),
    ],
)
async def test_failing_tool_becomes_an_error_in_the_tool_event(
    start_server,
    tool: str,
    timeout: float,
    error: str,  # type: ignore[no-untyped-def]
) -> None:
    app, baton, session, stream = await open_session(start_server, tool_timeout_s=timeout)
    await add_guideline(baton, app.example_agent_id, "The customer wants the special check", [tool])
    ask = await baton.say(session.id, "Could you run the special check?")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    kinds = [describe(e) for e in events]
    assert ("tool", "EVENT_SOURCE_SYSTEM", ((tool, error),)) in kinds
    assert kinds[-2][:2] == ("message", "EVENT_SOURCE_AI_AGENT")
    health = await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    assert health.session.mode == pb.SESSION_MODE_AUTO


async def test_tools_get_context_and_list_tools_describes_them(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server)
    await add_guideline(
        baton, app.example_agent_id, "The customer wants a message count", ["count_messages"]
    )
    ask = await baton.say(session.id, "Give me a message count")
    events = await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    tool_event = next(e for e in events if e.WhichOneof("data") == "tool")
    assert tool_event.tool.tool_calls[0].result.struct_value["customer_messages"] == 1

    listed = await baton.channel.unary_unary(
        "/baton.v1.ToolService/ListTools",
        request_serializer=rr.ListToolsRequest.SerializeToString,
        response_deserializer=rr.ListToolsResponse.FromString,
    )(rr.ListToolsRequest())
    tools = {t.name: t for t in listed.tools}
    assert {"initiate_human_handoff", "check_order_status", "count_messages"} <= set(tools)
    schema = tools["count_messages"].parameters
    assert schema["properties"]["limit"]["type"] == "integer"
    assert list(schema["required"]) == ["query"]


async def test_guideline_with_unknown_tool_is_rejected(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, _, stream = await open_session(start_server)
    stream.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await add_guideline(baton, app.example_agent_id, "x y z", ["no_such_tool"])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == ["guideline.tool_names[0]"]


async def test_customer_message_in_manual_session_only_acknowledged(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server(**ENGINE)
    session = await baton.new_session(mode=pb.SESSION_MODE_MANUAL)
    ask = await baton.say(session.id, "hello")
    await app.engine.idle()
    log, _ = await collect(
        baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, min_offset=ask.offset))
    )
    assert [describe(e) for e in log] == [
        ("message", "EVENT_SOURCE_CUSTOMER", "hello"),
        ("status", "STATUS_ACKNOWLEDGED", None),
    ]


async def test_chat_command_talks_to_the_example_agent(start_server) -> None:  # type: ignore[no-untyped-def]
    app, _ = await start_server(**ENGINE)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton_server",
        "chat",
        "--target",
        f"127.0.0.1:{app.port}",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(
        process.communicate(b"How does a refund work?\nCan I talk to a human?\nhello?\n"), 60
    )
    text = out.decode()
    assert process.returncode == 0, text
    assert support.CANNED_RESPONSES[1] in text
    # The handoff's one message, not also the agent's own "connecting you with a colleague".
    assert "No one from our team is available right now" in text
    assert support.CANNED_RESPONSES[0] not in text
    assert "initiate_human_handoff" in text and '"mode": "manual"' in text
    # The last message, in manual mode, is only acknowledged.
    assert text.rstrip().splitlines()[-1].endswith("acknowledged")


async def test_messages_learned_out_of_order_still_get_the_newest_answered(
    database_url: str,
) -> None:
    """Replicas may learn of customer messages out of order; only the newest one gets a turn,
    and an older one arriving late must not cancel it."""
    from baton_server.bus import EventBus
    from baton_server.domain import (
        Event,
        EventDraft,
        EventFilter,
        EventKind,
        EventSource,
        SessionMode,
    )
    from baton_server.engine import Engine, EngineSettings
    from baton_server.handoff.controls import HandoffControls
    from baton_server.handoff.summary import Summarizer
    from baton_server.nlp.offline import OfflineProvider
    from baton_server.store import Repository, open_database
    from baton_server.store.handoffs import HandoffReader
    from baton_server.tools import ToolRegistry

    bus = EventBus()
    held: list[list[Event]] = []

    def publish(events: list[Event]) -> None:
        if any(e.data.get("text") == "first" for e in events):
            held.append(events)  # learned late
            return
        bus.publish(events)

    database = await open_database(database_url, sqlite_synchronous="NORMAL")
    repository = Repository(database, on_commit=publish, on_session_deleted=bus.session_deleted)
    repository.start()
    # The engine takes the handoff controls the composition root builds (no fallback of its own).
    handoffs = HandoffControls(
        repository, HandoffReader(repository.database), Summarizer(repository, None)
    )
    engine = Engine(
        repository,
        bus,
        OfflineProvider(),
        ToolRegistry(),
        EngineSettings(use_turn_lease=False),
        handoffs,
    )
    try:
        agent = await repository.create_agent("a", "")
        customer = await repository.create_customer("c", {})
        session = await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})
        say = lambda text: EventDraft(EventKind.MESSAGE, EventSource.CUSTOMER, {"text": text})  # noqa: E731
        await repository.append_event(session.id, say("first"))
        second = await repository.append_event(session.id, say("second"))
        await engine.idle()
        bus.publish(held.pop())  # the older message arrives now
        await engine.idle()
        log = await repository.read_events(session.id, 0, 100, EventFilter(), 100)
        statuses = [
            (e.correlation_id == second.id, e.data.get("status"))
            for e in log
            if e.kind is EventKind.STATUS
        ]
        assert statuses[-1] == (True, "ready")
        assert all(is_second for is_second, _ in statuses), "no turn for the older message"
        assert (True, "cancelled") not in statuses
    finally:
        await engine.close()
        await repository.close()
        await database.dispose()


async def test_a_restarted_server_answers_what_a_stop_cut_short(start_server) -> None:  # type: ignore[no-untyped-def]
    # The message is committed while no engine runs (as if the server died right after it).
    app, baton = await start_server(engine_enabled=False, example_agent=True)
    customer = await baton.customers.CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
    )
    session = (
        await baton.sessions.CreateSession(
            rr.CreateSessionRequest(
                session=pb.Session(agent_id=app.example_agent_id, customer_id=customer.customer.id)
            )
        )
    ).session
    ask = await baton.say(session.id, "How does a refund work?")
    await app.stop(grace=1.0)

    restarted, baton = await start_server(**ENGINE)
    await restarted.engine.idle()
    log, _ = await collect(
        baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, min_offset=ask.offset))
    )
    assert [describe(e)[:2] for e in log][-2:] == [
        ("message", "EVENT_SOURCE_AI_AGENT"),
        ("status", "STATUS_READY"),
    ]
    assert all(e.correlation_id == ask.id for e in log)
    # Once answered, a further restart finds nothing to resume.
    await restarted.stop(grace=1.0)
    again, _ = await start_server(**ENGINE)
    assert await again.engine.resume_unanswered(600) == 0
