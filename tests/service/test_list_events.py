"""ListEvents: catch-up, caught_up, live follow, filters, heartbeats, overflow, deletion."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest
from google.protobuf import field_mask_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.support import Stubs, collect, customer_message, follow_while_not_reading, wait_until


async def test_concurrent_appends_get_contiguous_distinct_offsets(baton: Stubs) -> None:
    session = await baton.new_session()
    expected_next = 1
    for round_ in range(5):
        release = asyncio.Event()

        async def append(i: int, round_: int = round_, release: asyncio.Event = release) -> int:
            await release.wait()
            return (await baton.say(session.id, f"r{round_} m{i}")).offset

        tasks = [asyncio.create_task(append(i)) for i in range(50)]
        await asyncio.sleep(0)  # let every task reach the gate
        release.set()
        offsets = await asyncio.gather(*tasks)
        assert sorted(offsets) == list(range(expected_next, expected_next + 50))
        expected_next += 50
    events, _ = await collect(baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id)))
    assert [e.offset for e in events] == list(range(expected_next))


async def test_catch_up_to_live_switch_under_concurrent_writes(baton: Stubs) -> None:
    """Subscribers join at random moments while 8 writers append: each sees min..last once."""
    session = await baton.new_session()
    writers, per_writer = 8, 60
    total = 1 + writers * per_writer
    last = total - 1
    rng = random.Random(7)

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await baton.say(session.id, f"w{w} #{i}")
            if rng.random() < 0.2:
                await asyncio.sleep(0.001)

    async def subscriber(delay: float, min_offset: int) -> list[int]:
        await asyncio.sleep(delay)
        stream = baton.events.ListEvents(
            rr.ListEventsRequest(session_id=session.id, min_offset=min_offset, follow=True)
        )
        # Until both `last` and caught_up arrived: a subscriber joining after the writers
        # finished gets everything from the catch-up, and caught_up after it.
        events: list[pb.Event] = []
        caught_up = 0
        async with asyncio.timeout(60):
            async for response in stream:
                events.extend(response.events)
                caught_up += response.caught_up
                if caught_up and events and events[-1].offset >= last:
                    break
        stream.cancel()
        assert caught_up == 1
        return [e.offset for e in events]

    starts = [rng.choice([0, 0, 5, 100, 300]) for _ in range(24)]
    subscribers = [asyncio.create_task(subscriber(rng.uniform(0, 0.6), start)) for start in starts]
    await asyncio.gather(*(writer(w) for w in range(writers)))
    results = await asyncio.gather(*subscribers)
    for start, offsets in zip(starts, results, strict=True):
        # From exactly where it asked, to the end, no gap, no duplicate.
        assert offsets == list(range(start, last + 1))


async def test_follow_waits_for_offsets_past_the_end(baton: Stubs) -> None:
    session = await baton.new_session()
    # Without follow: ends empty.
    events, responses = await collect(
        baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, min_offset=5))
    )
    assert events == [] and not any(r.caught_up for r in responses)
    # With follow: caught_up, then only offsets >= 5 arrive.
    stream = baton.events.ListEvents(
        rr.ListEventsRequest(session_id=session.id, min_offset=5, follow=True)
    )
    history, responses = await collect(stream, until_caught_up=True)
    assert history == [] and len(responses) == 1
    for i in range(6):
        await baton.say(session.id, f"m{i}")
    events, _ = await collect(stream, until_offset=6)
    stream.cancel()
    assert [e.offset for e in events] == [5, 6]


async def test_filters_by_kind_and_source_in_catch_up_and_live(baton: Stubs) -> None:
    session = await baton.new_session()

    async def post_mix() -> list[int]:
        """Posts a customer message, a status and a human message; returns the offsets of
        (customer message, status, human message). The first human message takes the session
        over, which records a few handoff events in between."""
        said = await baton.say(session.id, "customer words")
        typing = await baton.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=session.id,
                kind=pb.EVENT_KIND_STATUS,
                source=pb.EVENT_SOURCE_AI_AGENT,
                status=pb.StatusData(status=pb.STATUS_TYPING),
            )
        )
        human = await baton.events.CreateEvent(
            rr.CreateEventRequest(
                session_id=session.id,
                kind=pb.EVENT_KIND_MESSAGE,
                source=pb.EVENT_SOURCE_HUMAN_AGENT,
                message=pb.MessageData(
                    text="human words", participant=pb.Participant(id="op1", display_name="Olga")
                ),
            )
        )
        return [said.offset, typing.event.offset, human.event.offset]

    first = await post_mix()
    request = rr.ListEventsRequest(
        session_id=session.id,
        follow=True,
        kinds=[pb.EVENT_KIND_MESSAGE],
        sources=[pb.EVENT_SOURCE_HUMAN_AGENT, pb.EVENT_SOURCE_CUSTOMER],
    )
    stream = baton.events.ListEvents(request)
    history, _ = await collect(stream, until_caught_up=True)
    assert [e.offset for e in history] == [first[0], first[2]]
    second = await post_mix()
    live, _ = await collect(stream, until_offset=second[2])
    stream.cancel()
    assert [e.offset for e in live] == [second[0], second[2]]
    assert live[1].message.participant.display_name == "Olga"
    # Status-only, no follow.
    statuses, _ = await collect(
        baton.events.ListEvents(
            rr.ListEventsRequest(session_id=session.id, kinds=[pb.EVENT_KIND_STATUS])
        )
    )
    assert [(e.offset, e.status.status) for e in statuses] == [
        (first[1], pb.STATUS_TYPING),
        (second[1], pb.STATUS_TYPING),
    ]


async def test_catch_up_is_batched(baton: Stubs) -> None:
    session = await baton.new_session()
    await asyncio.gather(*(baton.say(session.id, f"m{i}") for i in range(350)))
    events, responses = await collect(
        baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id))
    )
    assert [e.offset for e in events] == list(range(351))
    assert len(responses) <= 5, "catch-up should send events in batches, not one per message"


async def test_idle_follow_stream_gets_heartbeats_with_next_offset(start_server) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server(heartbeat_interval_s=0.2)
    session = await baton.new_session()
    await baton.say(session.id, "hello")
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    heartbeats = []
    async with asyncio.timeout(10):
        async for response in stream:
            if response.HasField("heartbeat"):
                heartbeats.append(response.heartbeat)
                if len(heartbeats) == 2:
                    break
    stream.cancel()
    assert all(h.next_offset == 2 for h in heartbeats)
    assert heartbeats[1].time.ToMicroseconds() > heartbeats[0].time.ToMicroseconds()


async def test_slow_subscriber_falls_back_to_store_and_misses_nothing(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server(subscriber_buffer=8)
    session = await baton.new_session()
    # 200 events of 4 KiB: far more than the window, so the server-side handler blocks and its
    # 8-event buffer overflows.
    events, responses = await follow_while_not_reading(app.port, baton, session.id)
    assert [e.offset for e in events] == list(range(1, 201))
    assert any(r.fell_behind for r in responses)
    assert app.bus.subscriber_count <= 1


async def test_cancelled_streams_unsubscribe(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server()
    session = await baton.new_session()
    streams = [
        baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
        for _ in range(20)
    ]
    for stream in streams:
        await collect(stream, until_caught_up=True)
    assert app.bus.subscriber_count == 20
    for stream in streams:
        stream.cancel()
    await wait_until(lambda: app.bus.subscriber_count == 0)


async def test_deleting_a_session_ends_its_streams_with_not_found(baton: Stubs) -> None:
    session = await baton.new_session()
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    await collect(stream, until_caught_up=True)
    await baton.sessions.DeleteSession(rr.DeleteSessionRequest(session_id=session.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(stream)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await baton.events.CreateEvent(customer_message(session.id, "late"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_mode_change_is_recorded_in_the_log(baton: Stubs) -> None:
    session = await baton.new_session()
    stream = baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
    await collect(stream, until_caught_up=True)
    updated = await baton.sessions.UpdateSession(
        rr.UpdateSessionRequest(
            session_id=session.id,
            session=pb.Session(mode=pb.SESSION_MODE_MANUAL),
            update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
        )
    )
    assert updated.session.mode == pb.SESSION_MODE_MANUAL
    events, _ = await collect(stream, until_offset=updated.session.next_offset - 1)
    stream.cancel()
    change = events[0]
    assert change.source == pb.EVENT_SOURCE_SYSTEM and change.kind == pb.EVENT_KIND_CUSTOM
    assert change.custom["type"] == "baton.session_mode_changed"
    assert (change.custom["mode"], change.custom["previous_mode"]) == ("manual", "auto")
    # Setting the same mode again records nothing.
    again = await baton.sessions.UpdateSession(
        rr.UpdateSessionRequest(
            session_id=session.id,
            session=pb.Session(mode=pb.SESSION_MODE_MANUAL),
            update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
        )
    )
    assert again.session.next_offset == updated.session.next_offset


async def test_thousands_of_streams_opened_at_once(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server()
    session = await baton.new_session()
    count = 3000
    streams = [
        baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
        for _ in range(count)
    ]

    async def caught_up(stream) -> bool:  # type: ignore[no-untyped-def]
        _, responses = await collect(stream, until_caught_up=True, timeout=120)
        return responses[-1].caught_up

    results = await asyncio.gather(*(caught_up(s) for s in streams))
    assert all(results)
    assert app.bus.subscriber_count == count
    event = await baton.say(session.id, "to everyone")
    received = await asyncio.gather(*(collect(s, until_offset=event.offset) for s in streams))
    assert all(events[-1].id == event.id for events, _ in received)
    for stream in streams:
        stream.cancel()


async def test_correlation_id_defaults_to_the_event_id(baton: Stubs) -> None:
    session = await baton.new_session()
    own = await baton.say(session.id, "hello")
    assert own.correlation_id == own.id
    tied = await baton.say(session.id, "again", correlation_id=own.id)
    assert tied.correlation_id == own.id and tied.id != own.id


def resume_points(responses: list[rr.ListEventsResponse]) -> list[tuple[str, int, int]]:
    """(marker, its next_offset, the offset just past every event sent before it)."""
    found, sent = [], 0
    for response in responses:
        if response.events:
            assert not response.HasField("next_offset")  # events carry their own offsets
            sent = response.events[-1].offset + 1
        if response.caught_up or response.fell_behind:
            assert response.HasField("next_offset")
            marker = "caught_up" if response.caught_up else "fell_behind"
            found.append((marker, response.next_offset, sent))
    return found


async def test_caught_up_and_fell_behind_tell_the_resume_point(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server(subscriber_buffer=8)
    session = await baton.new_session()
    for i in range(3):
        await baton.say(session.id, f"m{i}")
    head = 4
    # Caught up at the head, whether the filters let anything through or not; with min_offset
    # past the head, at min_offset (the offsets the stream waits for).
    tools_only = [pb.EVENT_KIND_TOOL]
    for min_offset, kinds, expected in ((0, [], head), (0, tools_only, head), (9, [], 9)):
        stream = baton.events.ListEvents(
            rr.ListEventsRequest(
                session_id=session.id, follow=True, min_offset=min_offset, kinds=kinds
            )
        )
        _, responses = await collect(stream, until_caught_up=True)
        stream.cancel()
        assert responses[-1].caught_up and responses[-1].next_offset == expected
    # Fell behind: the marker names the offset the store re-read starts from, just past what
    # was sent before it, and the stream goes on from exactly there (as in the test above, a
    # subscriber with a fixed window that does not read while 200 events of 4 KiB land).
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.port}", options=[("grpc.http2.bdp_probe", 0)]
    ) as channel:
        stream = Stubs.on(channel).events.ListEvents(
            rr.ListEventsRequest(session_id=session.id, follow=True)
        )
        _, history = await collect(stream, until_caught_up=True)
        padding = "x" * 4096
        await asyncio.gather(*(baton.say(session.id, f"n{i} {padding}") for i in range(200)))
        events, responses = await collect(stream, until_offset=head + 199)
        stream.cancel()
    assert [e.offset for e in events] == list(range(head, head + 200))
    markers = resume_points(history + responses)
    assert markers[0] == ("caught_up", head, head)
    behind = [m for m in markers if m[0] == "fell_behind"]
    assert behind and all(next_offset == sent for _, next_offset, sent in behind)
