"""HandoffService over gRPC: records, operator controls, epochs, queue, timeouts, inbox, stats."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.bus import EventBus
from baton_server.domain import HandoffChange, HandoffChangeType, now_us
from baton_server.handoff import policy
from baton_server.handoff.inbox import HandoffInbox
from tests.support import Stubs, collect, error_reason

TEXTS = policy.DEFAULT_TEXTS


class ManualClock:
    """Handoff time as the test says (timeouts, stats); starts at the real time."""

    def __init__(self) -> None:
        self.now = now_us()

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


def op(operator_id: str, name: str = "") -> pb.Participant:
    return pb.Participant(id=operator_id, display_name=name or operator_id.title())


async def request_handoff(
    baton: Stubs, session_id: str, reason: str = "Billing dispute!", **extra: Any
) -> rr.RequestHandoffResponse:
    return await baton.handoffs.RequestHandoff(
        rr.RequestHandoffRequest(session_id=session_id, reason=reason, **extra)
    )


async def log_of(baton: Stubs, session_id: str) -> list[pb.Event]:
    events, _ = await collect(baton.events.ListEvents(rr.ListEventsRequest(session_id=session_id)))
    return events


def kinds(events: list[pb.Event]) -> list[str]:
    """Custom events by type, messages by source and text."""
    out = []
    for e in events:
        if e.HasField("custom"):
            out.append(e.custom["type"])
        elif e.HasField("message"):
            out.append(f"{pb.EventSource.Name(e.source)}: {e.message.text}")
    return out


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def set_policy(baton: Stubs, agent_id: str, **fields: Any) -> None:
    await baton.agents.UpdateAgent(
        rr.UpdateAgentRequest(
            agent_id=agent_id,
            agent=pb.Agent(handoff_policy=pb.HandoffPolicy(**fields)),
            update_mask=field_mask_pb2.FieldMask(paths=["handoff_policy"]),
        )
    )


async def session_for(baton: Stubs, agent_id: str) -> pb.Session:
    customer = await baton.customers.CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
    )
    created = await baton.sessions.CreateSession(
        rr.CreateSessionRequest(
            session=pb.Session(agent_id=agent_id, customer_id=customer.customer.id)
        )
    )
    return created.session


def seconds(value: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(value), nanos=int((value % 1) * 1e9))


# ---------------------------------------------------------------- request


async def test_request_records_the_handoff_and_tells_the_customer(baton: Stubs) -> None:
    session = await baton.new_session()
    await baton.say(session.id, "I was charged twice")
    await baton.say(session.id, "for order 1234")
    response = await request_handoff(baton, session.id)
    handoff = response.handoff
    assert handoff.state == pb.HANDOFF_STATE_PENDING
    assert handoff.requested_by == pb.HANDOFF_REQUESTER_EXTERNAL_SYSTEM
    assert handoff.queue_position == 1
    # Offline summary: the reason and the last customer messages.
    assert "Billing dispute!" in handoff.summary
    assert "I was charged twice" in handoff.summary and "for order 1234" in handoff.summary
    # Nobody watches the inbox: the response and the customer both learn it.
    assert not response.operators_available
    assert response.unavailable_reason == "NO_OPERATOR_WATCHING"
    got = (await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))).session
    assert got.mode == pb.SESSION_MODE_MANUAL
    assert got.control_epoch == handoff.control_epoch == 1
    events = await log_of(baton, session.id)
    assert kinds(events[3:]) == [
        "baton.session_mode_changed",
        "baton.handoff_requested",
        f"EVENT_SOURCE_SYSTEM: {TEXTS['no_operator_message']}",
        "baton.handoff_queue_position",
    ]
    queue = events[-1].custom
    assert (queue["position"], queue["estimated_wait_seconds"]) == (1, 120)
    assert queue["text"] == "You are number 1 in the queue. Estimated wait: about 2 min."
    # At most one open handoff per session.
    error = await failure(request_handoff(baton, session.id))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert handoff.id in error.details()
    assert len(await log_of(baton, session.id)) == len(events)


async def test_an_operator_watching_makes_operators_available(baton: Stubs) -> None:
    watcher = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(operator=op("olga")))
    async with asyncio.timeout(10):
        async for response in watcher:
            if response.caught_up:
                break
    session = await baton.new_session()
    response = await request_handoff(baton, session.id)
    assert response.operators_available and response.unavailable_reason == ""
    assert TEXTS["no_operator_message"] not in "".join(kinds(await log_of(baton, session.id)))
    watcher.cancel()


async def test_outside_operating_hours_no_operator_is_available(start_server) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    _, baton = await start_server(clock=clock)
    session = await baton.new_session()
    # Open on Mondays 09:00-17:00 in Tokyo; the clock is set to a Sunday.
    await set_policy(
        baton,
        session.agent_id,
        time_zone="Asia/Tokyo",
        operating_hours=[pb.OperatingWindow(weekdays=[1], start="09:00", end="17:00")],
    )
    clock.now = 1_764_460_800 * 1_000_000  # Sunday 2025-11-30 00:00 UTC (09:00 in Tokyo)
    response = await request_handoff(baton, session.id)
    assert not response.operators_available
    assert response.unavailable_reason == "OUTSIDE_OPERATING_HOURS"


async def test_policy_is_validated(baton: Stubs) -> None:
    session = await baton.new_session()
    error = await failure(
        set_policy(
            baton,
            session.agent_id,
            time_zone="Mars/Olympus",
            operating_hours=[pb.OperatingWindow(start="9am", end="17:00")],
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.handoff_policy.time_zone" in error.details()
    assert "agent.handoff_policy.operating_hours[0].start" in error.details()


# ---------------------------------------------------------------- operator controls


async def test_twenty_operators_race_to_claim_and_exactly_one_wins(baton: Stubs) -> None:
    session = await baton.new_session()
    handoff = (await request_handoff(baton, session.id)).handoff
    operators = [op(f"op{i}") for i in range(20)]
    results = await asyncio.gather(
        *(
            baton.handoffs.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=o))
            for o in operators
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, rr.ClaimHandoffResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 19
    holder = winners[0].handoff.operator.id
    for loser in losers:
        assert loser.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"held by operator {holder!r}" in loser.details()
    events = await log_of(baton, session.id)
    assert [e.custom["type"] for e in events if e.HasField("custom")].count(
        "baton.handoff_claimed"
    ) == 1
    got = await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))
    assert got.handoff.state == pb.HANDOFF_STATE_CLAIMED and got.handoff.operator.id == holder


async def test_offer_decline_claim_transfer_and_resolve(baton: Stubs) -> None:
    session = await baton.new_session()
    handoff = (await request_handoff(baton, session.id)).handoff
    hid = handoff.id
    offered = await baton.handoffs.OfferHandoff(
        rr.OfferHandoffRequest(handoff_id=hid, operator=op("bob"))
    )
    assert offered.handoff.offered_to.id == "bob"
    # Reserved for Bob until he declines.
    error = await failure(
        baton.handoffs.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=hid, operator=op("alice")))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "'bob'" in error.details()
    declined = await baton.handoffs.RespondToOffer(
        rr.RespondToOfferRequest(handoff_id=hid, operator=op("bob"), accept=False)
    )
    assert not declined.handoff.HasField("offered_to")
    claimed = await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=hid, operator=op("alice", "Alice A."))
    )
    assert claimed.handoff.state == pb.HANDOFF_STATE_CLAIMED
    assert claimed.handoff.HasField("claimed_at")
    moved = await baton.handoffs.TransferHandoff(
        rr.TransferHandoffRequest(
            handoff_id=hid, from_operator_id="alice", to_operator=op("carol"), on_behalf_of_ai=True
        )
    )
    assert moved.handoff.operator.id == "carol" and moved.handoff.operator_on_behalf_of_ai
    error = await failure(
        baton.handoffs.ReleaseHandoff(
            rr.ReleaseHandoffRequest(
                handoff_id=hid, operator_id="alice", outcome=pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN
            )
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "'carol'" in error.details()
    assert error_reason(error) == "FAILED_PRECONDITION"
    ended = await baton.handoffs.ReleaseHandoff(
        rr.ReleaseHandoffRequest(
            handoff_id=hid,
            operator_id="carol",
            outcome=pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN,
            note="sorted",
        )
    )
    assert ended.handoff.state == pb.HANDOFF_STATE_ENDED
    assert ended.handoff.outcome == pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN
    got = (await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))).session
    assert got.mode == pb.SESSION_MODE_MANUAL  # resolved by a human: the AI stays out
    assert got.control_epoch == ended.handoff.control_epoch == 6
    story = kinds(await log_of(baton, session.id))
    start = story.index("baton.handoff_offered")
    assert story[start:] == [
        "baton.handoff_offered",
        "baton.handoff_offer_declined",
        "baton.handoff_claimed",
        "EVENT_SOURCE_SYSTEM: Alice A. has joined the conversation.",
        "baton.handoff_transferred",
        # Carol writes on behalf of the AI: her name is not shown.
        f"EVENT_SOURCE_SYSTEM: {TEXTS['operator_joined_anonymous_message']}",
        "baton.handoff_ended",
    ]


async def test_invalid_transitions_are_refused_and_change_nothing(baton: Stubs) -> None:
    session = await baton.new_session()
    handoff = (await request_handoff(baton, session.id)).handoff
    hid = handoff.id
    await baton.handoffs.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=hid, operator=op("ann")))
    ended_session = await baton.new_session()
    ended = (await request_handoff(baton, ended_session.id)).handoff
    await baton.handoffs.ReleaseHandoff(
        rr.ReleaseHandoffRequest(handoff_id=ended.id, outcome=pb.HANDOFF_OUTCOME_ABANDONED)
    )
    h = baton.handoffs
    cases = [
        (h.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=ended.id, operator=op("x"))), "FP"),
        (
            h.ReleaseHandoff(
                rr.ReleaseHandoffRequest(
                    handoff_id=hid, operator_id="bob", outcome=pb.HANDOFF_OUTCOME_RETURNED_TO_AI
                )
            ),
            "FP",
        ),
        (h.RequestHandoff(rr.RequestHandoffRequest(session_id=session.id, reason="again")), "AE"),
        (h.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=hid, operator=op("bob"))), "FP"),
        (h.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=hid, operator=op("ann"))), "FP"),
        (h.OfferHandoff(rr.OfferHandoffRequest(handoff_id=hid, operator=op("bob"))), "FP"),
        (
            h.RespondToOffer(rr.RespondToOfferRequest(handoff_id=hid, operator=op("bob"))),
            "FP",
        ),
        (
            h.TransferHandoff(
                rr.TransferHandoffRequest(
                    handoff_id=hid, from_operator_id="bob", to_operator=op("cat")
                )
            ),
            "FP",
        ),
        (
            h.TransferHandoff(
                rr.TransferHandoffRequest(
                    handoff_id=hid, from_operator_id="ann", to_operator=op("ann")
                )
            ),
            "FP",
        ),
        (
            h.ReleaseHandoff(
                rr.ReleaseHandoffRequest(
                    handoff_id=ended.id, outcome=pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN
                )
            ),
            "FP",
        ),
        (
            h.ReleaseHandoff(
                rr.ReleaseHandoffRequest(
                    handoff_id=hid, operator_id="ann", outcome=pb.HANDOFF_OUTCOME_TIMED_OUT
                )
            ),
            "IA",
        ),
        (h.ReleaseHandoff(rr.ReleaseHandoffRequest(handoff_id=hid, operator_id="ann")), "IA"),
        (h.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=hid)), "IA"),
        (h.RequestHandoff(rr.RequestHandoffRequest(session_id=session.id, reason=" ")), "IA"),
        (
            h.RequestHandoff(
                rr.RequestHandoffRequest(
                    session_id=ended_session.id,
                    reason="r",
                    requested_by=pb.HANDOFF_REQUESTER_TOOL,
                )
            ),
            "IA",
        ),
        (h.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id="hof_nope", operator=op("x"))), "NF"),
        (h.RequestHandoff(rr.RequestHandoffRequest(session_id="ses_nope", reason="r")), "NF"),
        (
            h.ClaimHandoff(
                rr.ClaimHandoffRequest(handoff_id=hid, operator=op("ann"), expected_epoch=0)
            ),
            "AB",
        ),
    ]
    codes = {
        "FP": grpc.StatusCode.FAILED_PRECONDITION,
        "AE": grpc.StatusCode.ALREADY_EXISTS,
        "IA": grpc.StatusCode.INVALID_ARGUMENT,
        "NF": grpc.StatusCode.NOT_FOUND,
        "AB": grpc.StatusCode.ABORTED,
    }

    async def picture() -> Any:
        sessions = [
            (await baton.sessions.GetSession(rr.GetSessionRequest(session_id=s))).session
            for s in (session.id, ended_session.id)
        ]
        handoffs = [
            (await h.GetHandoff(rr.GetHandoffRequest(handoff_id=i))).handoff
            for i in (hid, ended.id)
        ]
        return [(s.next_offset, s.control_epoch, s.mode) for s in sessions], handoffs

    before = await picture()
    for index, (call, expected) in enumerate(cases):
        error = await failure(call)
        assert error.code() == codes[expected], (index, error.details())
        assert error.details(), index
    assert await picture() == before


async def test_a_stale_epoch_is_aborted(baton: Stubs) -> None:
    session = await baton.new_session()
    handoff = (await request_handoff(baton, session.id)).handoff
    seen = handoff.control_epoch
    await baton.handoffs.OfferHandoff(
        rr.OfferHandoffRequest(handoff_id=handoff.id, operator=op("bob"), expected_epoch=seen)
    )
    # Acting on the picture from before the offer.
    error = await failure(
        baton.handoffs.OfferHandoff(
            rr.OfferHandoffRequest(handoff_id=handoff.id, operator=op("eve"), expected_epoch=seen)
        )
    )
    assert error.code() == grpc.StatusCode.ABORTED
    assert error_reason(error) == "STALE_CONTROL_EPOCH"
    error = await failure(
        baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=session.id,
                session=pb.Session(mode=pb.SESSION_MODE_AUTO),
                update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
                expected_epoch=seen,
            )
        )
    )
    assert error.code() == grpc.StatusCode.ABORTED
    got = await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))
    assert got.handoff.offered_to.id == "bob" and got.handoff.control_epoch == seen + 1


async def test_update_session_opens_and_ends_handoffs(baton: Stubs) -> None:
    session = await baton.new_session()

    async def set_mode(mode: int) -> pb.Session:
        response = await baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=session.id,
                session=pb.Session(mode=mode),
                update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
            )
        )
        return response.session

    await set_mode(pb.SESSION_MODE_MANUAL)
    listed = await baton.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    (handoff,) = listed.handoffs
    assert handoff.requested_by == pb.HANDOFF_REQUESTER_EXTERNAL_SYSTEM
    back = await set_mode(pb.SESSION_MODE_AUTO)
    assert back.mode == pb.SESSION_MODE_AUTO
    got = await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))
    assert got.handoff.outcome == pb.HANDOFF_OUTCOME_RETURNED_TO_AI
    assert kinds(await log_of(baton, session.id))[-2:] == [
        "baton.handoff_ended",
        f"EVENT_SOURCE_SYSTEM: {TEXTS['ai_back_message']}",
    ]


async def test_a_human_message_on_an_auto_session_takes_it_over(baton: Stubs) -> None:
    session = await baton.new_session()
    await baton.say(session.id, "hello")
    human = await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT,
            message=pb.MessageData(text="Olga here", participant=op("olga", "Olga")),
            idempotency_key="k1",
        )
    )
    listed = await baton.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    (handoff,) = listed.handoffs
    assert handoff.requested_by == pb.HANDOFF_REQUESTER_HUMAN_TAKEOVER
    assert handoff.state == pb.HANDOFF_STATE_CLAIMED and handoff.operator.id == "olga"
    assert handoff.HasField("first_human_reply_at")
    story = kinds(await log_of(baton, session.id))
    assert story[2:] == [
        "baton.session_mode_changed",
        "baton.handoff_requested",
        "baton.handoff_claimed",
        "EVENT_SOURCE_SYSTEM: Olga has joined the conversation.",
        "EVENT_SOURCE_HUMAN_AGENT: Olga here",
    ]
    # A retry with the same key returns the original message and takes nothing over again.
    again = await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT,
            message=pb.MessageData(text="Olga here", participant=op("olga", "Olga")),
            idempotency_key="k1",
        )
    )
    assert again.event.id == human.event.id
    assert kinds(await log_of(baton, session.id))[2:] == story[2:]


# ---------------------------------------------------------------- queue


async def test_queue_positions_move_as_handoffs_are_claimed(baton: Stubs) -> None:
    first = await baton.new_session()
    agent_id = first.agent_id
    others = [await session_for(baton, agent_id) for _ in range(2)]
    handoffs = [(await request_handoff(baton, s.id)).handoff for s in (first, *others)]
    assert [h.queue_position for h in handoffs] == [1, 2, 3]
    streams = [
        baton.events.ListEvents(
            rr.ListEventsRequest(
                session_id=s.id, follow=True, min_offset=s.next_offset, kinds=[pb.EVENT_KIND_CUSTOM]
            )
        )
        for s in others
    ]
    await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoffs[0].id, operator=op("ann"))
    )
    # Announced right after the claim commits, on each waiting customer's own log.
    for stream, position in zip(streams, (1, 2), strict=True):
        async with asyncio.timeout(10):
            async for response in stream:
                moved = [
                    e.custom["position"]
                    for e in response.events
                    if e.custom["type"] == "baton.handoff_queue_position"
                    and e.custom["position"] != position + 1
                ]
                if moved:
                    assert moved == [position]
                    break
        stream.cancel()
    got = await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoffs[2].id))
    assert got.handoff.queue_position == 2


# ---------------------------------------------------------------- timeouts


async def test_claim_timeout_tells_the_customer_once_and_keeps_waiting(start_server) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    app, baton = await start_server(clock=clock, handoff_timer_tick_s=3600)
    session = await baton.new_session()
    await set_policy(
        baton,
        session.agent_id,
        claim_timeout=seconds(60),
        claim_timeout_action=pb.CLAIM_TIMEOUT_ACTION_KEEP_WAITING,
        claim_timeout_message="Still looking for someone.",
    )
    handoff = (await request_handoff(baton, session.id)).handoff
    clock.advance(59)
    assert await app.handoff_timer.fire_due() == 0
    clock.advance(2)
    # Several timers (replicas) racing: it fires once.
    fired = await asyncio.gather(*(app.handoff_timer.fire_due() for _ in range(3)))
    assert sum(fired) == 1
    clock.advance(600)
    assert await app.handoff_timer.fire_due() == 0
    story = kinds(await log_of(baton, session.id))
    assert story.count("EVENT_SOURCE_SYSTEM: Still looking for someone.") == 1
    assert story[-2:] == [
        "baton.handoff_claim_timeout",
        "EVENT_SOURCE_SYSTEM: Still looking for someone.",
    ]
    got = await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))
    assert got.handoff.state == pb.HANDOFF_STATE_PENDING


async def test_claim_timeout_can_return_the_session_to_the_ai(start_server) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    app, baton = await start_server(clock=clock, handoff_timer_tick_s=3600)
    session = await baton.new_session()
    await set_policy(
        baton,
        session.agent_id,
        claim_timeout=seconds(30),
        claim_timeout_action=pb.CLAIM_TIMEOUT_ACTION_RETURN_TO_AI,
    )
    handoff = (await request_handoff(baton, session.id)).handoff
    clock.advance(31)
    assert await app.handoff_timer.fire_due() == 1
    got = await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))
    assert got.handoff.outcome == pb.HANDOFF_OUTCOME_TIMED_OUT
    current = await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
    assert current.session.mode == pb.SESSION_MODE_AUTO
    assert (
        kinds(await log_of(baton, session.id))[-1]
        == f"EVENT_SOURCE_SYSTEM: {TEXTS['ai_back_message']}"
    )


@pytest.mark.parametrize("action", ["return_to_ai", "end"])
async def test_inactivity_timeout_after_the_humans_last_reply(start_server, action: str) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    app, baton = await start_server(clock=clock, handoff_timer_tick_s=3600)
    session = await baton.new_session()
    await set_policy(
        baton,
        session.agent_id,
        inactivity_timeout=seconds(120),
        inactivity_timeout_action=(
            pb.INACTIVITY_TIMEOUT_ACTION_RETURN_TO_AI
            if action == "return_to_ai"
            else pb.INACTIVITY_TIMEOUT_ACTION_END
        ),
    )
    handoff = (await request_handoff(baton, session.id)).handoff
    await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=op("ann"))
    )
    clock.advance(100)
    await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT,
            message=pb.MessageData(text="Checking", participant=op("ann")),
        )
    )
    clock.advance(100)  # 200 s after the claim, 100 s after the reply: not yet
    assert await app.handoff_timer.fire_due() == 0
    clock.advance(21)
    assert await app.handoff_timer.fire_due() == 1
    assert await app.handoff_timer.fire_due() == 0
    got = (await baton.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))).handoff
    assert got.outcome == pb.HANDOFF_OUTCOME_TIMED_OUT
    mode = (await baton.sessions.GetSession(rr.GetSessionRequest(session_id=session.id))).session
    expected = pb.SESSION_MODE_AUTO if action == "return_to_ai" else pb.SESSION_MODE_MANUAL
    assert mode.mode == expected


async def test_a_short_real_claim_timeout_fires_by_itself_once(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server(handoff_timer_tick_s=0.05)
    session = await baton.new_session()
    await set_policy(baton, session.agent_id, claim_timeout=seconds(0.3))
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    await collect(stream, until_caught_up=True)
    await request_handoff(baton, session.id)
    seen: list[str] = []
    async with asyncio.timeout(10):
        async for response in stream:
            seen += kinds(list(response.events))
            if "baton.handoff_claim_timeout" in seen:
                break
    stream.cancel()
    # The timer keeps looking; the timeout stays fired once.
    passes = app.handoff_timer.passes
    async with asyncio.timeout(10):
        while app.handoff_timer.passes < passes + 5:
            await asyncio.sleep(0.01)
    assert kinds(await log_of(baton, session.id)).count("baton.handoff_claim_timeout") == 1


# ---------------------------------------------------------------- inbox stream


async def read_inbox(
    stream: Any, until: Any, timeout: float = 10
) -> list[rr.WatchHandoffsResponse]:
    got: list[rr.WatchHandoffsResponse] = []
    async with asyncio.timeout(timeout):
        async for response in stream:
            got.append(response)
            if until(got):
                return got
    raise AssertionError("inbox stream ended early")


def changes_of(responses: list[rr.WatchHandoffsResponse]) -> list[pb.HandoffChange]:
    return [c for r in responses for c in r.changes]


async def test_inbox_snapshot_then_live_then_resume_without_gaps(baton: Stubs) -> None:
    s1, s2, s3 = [await baton.new_session() for _ in range(3)]
    h1 = (await request_handoff(baton, s1.id)).handoff
    h2 = (await request_handoff(baton, s2.id)).handoff
    watch = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest())
    first = await read_inbox(watch, lambda got: got[-1].caught_up)
    snapshot = changes_of(first)
    assert [(c.type, c.handoff.id) for c in snapshot] == [
        (pb.HANDOFF_CHANGE_TYPE_OPEN, h1.id),
        (pb.HANDOFF_CHANGE_TYPE_OPEN, h2.id),
    ]
    position = first[-1].caught_up_position
    # Live: a claim and a customer message on the handed-off session.
    await baton.handoffs.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=h1.id, operator=op("ann")))
    said = await baton.say(s1.id, "are you there?")
    live = changes_of(await read_inbox(watch, lambda got: len(changes_of(got)) >= 2))
    assert [(c.type, c.handoff.id) for c in live] == [
        (pb.HANDOFF_CHANGE_TYPE_CLAIMED, h1.id),
        (pb.HANDOFF_CHANGE_TYPE_CUSTOMER_MESSAGE, h1.id),
    ]
    assert live[1].event_offset == said.offset
    assert live[0].handoff.operator.id == "ann"
    # The event recording a change names its inbox position (replicas learn the head from it).
    recorded = (await log_of(baton, s1.id))[live[0].event_offset]
    assert recorded.custom["type"] == "baton.handoff_claimed"
    assert recorded.custom["inbox_position"] == live[0].position
    watch.cancel()
    last_seen = live[-1].position
    # While disconnected.
    await baton.handoffs.ReleaseHandoff(
        rr.ReleaseHandoffRequest(
            handoff_id=h1.id, operator_id="ann", outcome=pb.HANDOFF_OUTCOME_RETURNED_TO_AI
        )
    )
    h3 = (await request_handoff(baton, s3.id)).handoff
    await baton.say(s2.id, "hello?")
    resumed = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(after_position=last_seen))
    missed_responses = await read_inbox(resumed, lambda got: got[-1].caught_up)
    missed = changes_of(missed_responses)
    assert [(c.type, c.handoff.id) for c in missed] == [
        (pb.HANDOFF_CHANGE_TYPE_ENDED, h1.id),
        (pb.HANDOFF_CHANGE_TYPE_REQUESTED, h3.id),
        (pb.HANDOFF_CHANGE_TYPE_CUSTOMER_MESSAGE, h2.id),
    ]
    # Positions continue without a gap or a repeat, and match the full history.
    seen_positions = [c.position for c in live] + [c.position for c in missed]
    assert seen_positions == list(range(live[0].position, live[0].position + len(seen_positions)))
    assert live[0].position == position + 1
    everything = changes_of(
        await read_inbox(
            baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(after_position=0)),
            lambda got: got[-1].caught_up,
        )
    )
    assert [c.position for c in everything] == list(range(1, missed[-1].position + 1))
    # And the resumed stream keeps going live.
    await baton.handoffs.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=h3.id, operator=op("bo")))
    more = changes_of(await read_inbox(resumed, lambda got: bool(changes_of(got))))
    assert [(c.type, c.position) for c in more] == [
        (pb.HANDOFF_CHANGE_TYPE_CLAIMED, missed[-1].position + 1)
    ]
    resumed.cancel()


async def test_inbox_filters_by_agent_and_sends_heartbeats(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server(heartbeat_interval_s=0.2)
    mine = await baton.new_session()
    other = await baton.new_session()
    watch = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(agent_id=mine.agent_id))
    await read_inbox(watch, lambda got: got[-1].caught_up)
    await request_handoff(baton, other.id)
    requested = (await request_handoff(baton, mine.id)).handoff

    async def busy_elsewhere() -> None:
        # Other agents' customers keep writing: wake-ups must not starve the heartbeat.
        while True:
            await baton.say(other.id, "still there?")

    def heartbeat_after_the_change(got: list[Any]) -> bool:
        # Under load the two requests can take longer than a heartbeat period: wait for the
        # change, then for a heartbeat after it.
        seen = [i for i, r in enumerate(got) if changes_of([r])]
        return bool(seen) and any(r.HasField("heartbeat") for r in got[seen[0] + 1 :])

    noise = asyncio.create_task(busy_elsewhere())
    try:
        got = await read_inbox(watch, heartbeat_after_the_change)
    finally:
        noise.cancel()
    assert [c.handoff.id for c in changes_of(got)] == [requested.id]
    first_change = next(i for i, r in enumerate(got) if changes_of([r]))
    heartbeat = next(r.heartbeat for r in got[first_change:] if r.HasField("heartbeat"))
    # The resume point: past every change, including other agents' skipped ones.
    assert heartbeat.position >= changes_of(got)[-1].position
    watch.cancel()


class _ChangeLog:
    """A HandoffReader stand-in for HandoffInbox: the change log is a list the test appends to."""

    def __init__(self) -> None:
        self.changes: list[HandoffChange] = []

    async def snapshot(self, agent_id: str) -> tuple[int, list[Any]]:
        return 0, []

    async def changes_after(self, position: int, agent_id: str, limit: int) -> list[Any]:
        return [c for c in self.changes if c.position > position][:limit]

    async def head_position(self) -> int:
        return max((c.position for c in self.changes), default=0)


async def test_inbox_sees_a_change_committed_while_it_sends_the_previous_one() -> None:
    """Found by bench/handoffs.py's review: a commit whose wake-up fired while the stream was
    suspended at its yield (sending) waited for the next commit or a heartbeat (15 s)."""
    log = _ChangeLog()
    inbox = HandoffInbox(None, log, EventBus(), heartbeat_interval_s=30)  # type: ignore[arg-type]
    stream = inbox.watch("", None, None)

    def commit(position: int) -> None:
        log.changes.append(HandoffChange(position, HandoffChangeType.REQUESTED, None, 0, 0))  # type: ignore[arg-type]
        inbox.notify()

    async with asyncio.timeout(5):
        assert (await anext(stream)).caught_up_position == 0
        commit(1)
        assert [c.position for c in (await anext(stream)).changes] == [1]
        # The stream holds change 1 (the servicer is sending it); change 2 commits meanwhile
        # and its wake-up runs before the stream waits again.
        commit(2)
        await asyncio.sleep(0.05)
        assert [c.position for c in (await anext(stream)).changes] == [2]
    await stream.aclose()


async def test_presence_is_renewed_while_the_inbox_is_busy(start_server) -> None:  # type: ignore[no-untyped-def]
    """Presence lasts 3 heartbeats; it used to be renewed only by an idle heartbeat, so an
    operator watching a busy inbox (a change at least every heartbeat) vanished after 3."""
    _, baton = await start_server(heartbeat_interval_s=0.2)
    watcher = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(operator=op("olga")))
    await read_inbox(watcher, lambda got: got[-1].caught_up)
    drain = asyncio.create_task(read_inbox(watcher, lambda got: False, timeout=30))
    available = []
    started = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < 1.5:  # > 3 heartbeats, never idle
        probe = await baton.new_session()
        available.append((await request_handoff(baton, probe.id)).operators_available)
        await asyncio.sleep(0.05)
    drain.cancel()
    watcher.cancel()
    assert all(available), available


# ---------------------------------------------------------------- stats


async def test_stats_match_hand_computed_numbers(start_server) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    _, baton = await start_server(clock=clock, handoff_timer_tick_s=3600)
    first = await baton.new_session()
    agent_id = first.agent_id
    sessions = [first] + [await session_for(baton, agent_id) for _ in range(4)]  # 5 sessions
    h = baton.handoffs

    async def claim(handoff_id: str, who: str) -> None:
        await h.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=handoff_id, operator=op(who)))

    async def reply(session_id: str, who: str) -> None:
        await baton.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=session_id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=pb.EVENT_SOURCE_HUMAN_AGENT,
                message=pb.MessageData(text="hi", participant=op(who)),
            )
        )

    async def release(handoff_id: str, who: str, outcome: int) -> None:
        await h.ReleaseHandoff(
            rr.ReleaseHandoffRequest(handoff_id=handoff_id, operator_id=who, outcome=outcome)
        )

    # Session 0: claimed after 10 s, first reply 30 s after the request, returned to the AI;
    # 20 minutes later a second handoff (a re-handoff), claimed after 50 s, resolved.
    a = (await request_handoff(baton, sessions[0].id, "Billing dispute!")).handoff
    clock.advance(10)
    await claim(a.id, "ann")
    clock.advance(20)
    await reply(sessions[0].id, "ann")
    await release(a.id, "ann", pb.HANDOFF_OUTCOME_RETURNED_TO_AI)
    clock.advance(20 * 60)
    b = (await request_handoff(baton, sessions[0].id, "billing   DISPUTE")).handoff
    clock.advance(50)
    await claim(b.id, "bob")
    await release(b.id, "bob", pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN)
    # Session 1: abandoned while queued.
    c = (await request_handoff(baton, sessions[1].id, "Wants a refund")).handoff
    clock.advance(5)
    await release(c.id, "", pb.HANDOFF_OUTCOME_ABANDONED)
    # Session 2: claimed after 30 s, replied after 90 s, returned to the AI; 40 minutes later
    # another handoff (not a re-handoff within 30 minutes), still pending.
    d = (await request_handoff(baton, sessions[2].id, "wants a refund.")).handoff
    clock.advance(30)
    await claim(d.id, "cat")
    clock.advance(60)
    await reply(sessions[2].id, "cat")
    await release(d.id, "cat", pb.HANDOFF_OUTCOME_RETURNED_TO_AI)
    clock.advance(40 * 60)
    await request_handoff(baton, sessions[2].id, "Legal question")
    # Sessions 3 and 4: no handoff.

    stats = (await h.GetHandoffStats(rr.GetHandoffStatsRequest(agent_id=agent_id))).stats
    assert stats.sessions == 5
    assert stats.sessions_with_handoff == 3
    assert stats.handoff_rate == pytest.approx(3 / 5)
    assert stats.handoffs == 5
    assert dict(stats.by_reason) == {
        "billing dispute": 2,
        "wants a refund": 2,
        "legal question": 1,
    }
    assert dict(stats.by_outcome) == {"RETURNED_TO_AI": 2, "RESOLVED_BY_HUMAN": 1, "ABANDONED": 1}
    # Claim waits 10, 50, 30 s: p50 30, p90 50 (nearest rank).
    assert stats.time_to_claim.count == 3
    assert (stats.time_to_claim.p50.seconds, stats.time_to_claim.p90.seconds) == (30, 50)
    # First replies 30 and 90 s after the request.
    assert stats.time_to_first_human_reply.count == 2
    assert (
        stats.time_to_first_human_reply.p50.seconds,
        stats.time_to_first_human_reply.p90.seconds,
    ) == (30, 90)
    assert stats.abandoned_while_queued == 1
    assert stats.returned_to_ai_share == pytest.approx(2 / 4)
    assert stats.rehandoffs_within_30_minutes == 1
    # Another agent's view is empty; a range is validated.
    other = await baton.new_session()
    empty = (await h.GetHandoffStats(rr.GetHandoffStatsRequest(agent_id=other.agent_id))).stats
    assert (empty.sessions, empty.handoffs, empty.handoff_rate) == (1, 0, 0.0)
    error = await failure(
        h.GetHandoffStats(
            rr.GetHandoffStatsRequest(
                start_time={"seconds": 2_000_000_000}, end_time={"seconds": 1_000_000_000}
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_presence_ends_with_the_watch_stream(baton: Stubs) -> None:
    watcher = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(operator=op("olga")))
    await read_inbox(watcher, lambda got: got[-1].caught_up)
    probe = await baton.new_session()
    assert (await request_handoff(baton, probe.id)).operators_available
    watcher.cancel()
    # The stream's presence row goes when the server sees the cancellation.
    async with asyncio.timeout(10):
        while True:
            probe = await baton.new_session()
            if not (await request_handoff(baton, probe.id)).operators_available:
                break
            await asyncio.sleep(0.02)


async def test_malformed_times_are_invalid_argument(baton: Stubs) -> None:
    """Found by the fuzzer: an out-of-range Timestamp used to surface as INTERNAL."""
    error = await failure(
        baton.handoffs.GetHandoffStats(
            rr.GetHandoffStatsRequest(start_time={"seconds": 1, "nanos": -2_147_483_647})
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "start_time" in error.details()
    session = await baton.new_session()
    error = await failure(
        set_policy(baton, session.agent_id, claim_timeout=duration_pb2.Duration(seconds=-5))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.handoff_policy.claim_timeout" in error.details()


# ---------------------------------------------------------------- review findings


async def test_a_resume_position_from_the_future_is_refused(baton: Stubs) -> None:
    honest = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest())
    await read_inbox(honest, lambda got: got[-1].caught_up)
    bogus = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest(after_position=1_000_000))
    error = await failure(read_inbox(bogus, lambda got: False))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "after_position" in error.details()
    # And it did not disturb anyone else's stream.
    session = await baton.new_session()
    requested = (await request_handoff(baton, session.id)).handoff
    got = changes_of(await read_inbox(honest, lambda got: bool(changes_of(got))))
    assert [c.handoff.id for c in got] == [requested.id]
    honest.cancel()


async def test_only_the_holder_writes_on_a_claimed_handoff(baton: Stubs) -> None:
    session = await baton.new_session()
    handoff = (await request_handoff(baton, session.id)).handoff
    await baton.handoffs.OfferHandoff(
        rr.OfferHandoffRequest(handoff_id=handoff.id, operator=op("bob"))
    )
    error = await failure(baton.events.CreateEvent(human_message(session.id, "carol")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "'bob'" in error.details()
    await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=op("bob"))
    )
    error = await failure(baton.events.CreateEvent(human_message(session.id, "ann")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "'bob'" in error.details()
    before = len(await log_of(baton, session.id))
    # The holder, and a message on behalf of the AI without a name (counted as the holder's).
    await baton.events.CreateEvent(human_message(session.id, "bob"))
    await baton.events.CreateEvent(
        rr.CreateEventRequest(
            session_id=session.id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
            message=pb.MessageData(text="(as the assistant)"),
        )
    )
    assert len(await log_of(baton, session.id)) == before + 2
    # Nobody holds this one: a nameless message cannot take it over.
    other = await baton.new_session()
    error = await failure(
        baton.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=other.id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
                message=pb.MessageData(text="who am I?"),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message.participant.id" in error.details()
    error = await failure(baton.events.CreateEvent(human_message(other.id, "x" * 300)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def human_message(session_id: str, who: str) -> rr.CreateEventRequest:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=pb.EVENT_SOURCE_HUMAN_AGENT,
        message=pb.MessageData(text=f"{who} here", participant=op(who)),
    )


async def test_the_inbox_hears_of_deleted_sessions_and_of_customers_after_the_end(
    baton: Stubs,
) -> None:
    gone = await baton.new_session()
    ended = await baton.new_session()
    watch = baton.handoffs.WatchHandoffs(rr.WatchHandoffsRequest())
    await read_inbox(watch, lambda got: got[-1].caught_up)
    doomed = (await request_handoff(baton, gone.id)).handoff
    done = (await request_handoff(baton, ended.id)).handoff
    await baton.handoffs.ClaimHandoff(rr.ClaimHandoffRequest(handoff_id=done.id, operator=op("a")))
    await baton.handoffs.ReleaseHandoff(
        rr.ReleaseHandoffRequest(
            handoff_id=done.id, operator_id="a", outcome=pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN
        )
    )
    await baton.sessions.DeleteSession(rr.DeleteSessionRequest(session_id=gone.id))
    # The session stays MANUAL after a human resolved it: the customer writing again is news.
    said = await baton.say(ended.id, "one more question")
    got = changes_of(await read_inbox(watch, lambda got: len(changes_of(got)) >= 6))
    watch.cancel()
    assert [(c.type, c.handoff.id) for c in got] == [
        (pb.HANDOFF_CHANGE_TYPE_REQUESTED, doomed.id),
        (pb.HANDOFF_CHANGE_TYPE_REQUESTED, done.id),
        (pb.HANDOFF_CHANGE_TYPE_CLAIMED, done.id),
        (pb.HANDOFF_CHANGE_TYPE_ENDED, done.id),
        (pb.HANDOFF_CHANGE_TYPE_ENDED, doomed.id),
        (pb.HANDOFF_CHANGE_TYPE_CUSTOMER_MESSAGE, done.id),
    ]
    assert got[4].handoff.outcome == pb.HANDOFF_OUTCOME_ABANDONED and got[4].event_offset == -1
    assert got[5].event_offset == said.offset


async def test_a_big_backlog_of_long_conversations_still_streams(baton: Stubs) -> None:
    long_text = "log line " * 3500  # ~31 KB pasted by each customer
    first = await baton.new_session()
    sessions = [first] + [await session_for(baton, first.agent_id) for _ in range(44)]
    for session in sessions:
        for _ in range(3):
            await baton.say(session.id, long_text)
        summary = (await request_handoff(baton, session.id)).handoff.summary
        assert len(summary) < 1500
    for request in (rr.WatchHandoffsRequest(), rr.WatchHandoffsRequest(after_position=0)):
        got = await read_inbox(
            baton.handoffs.WatchHandoffs(request), lambda got: got[-1].caught_up, timeout=30
        )
        assert len({c.handoff.id for c in changes_of(got)}) == 45
