"""Acknowledged events survive SIGTERM and SIGKILL; graceful shutdown ends streams cleanly."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest

from baton.v1 import request_response_pb2 as rr
from tests.support import ServerProcess, Stubs, collect, customer_message, error_reason


async def burst(stubs: Stubs, session_ids: list[str], per_session: int) -> dict[str, set[str]]:
    """Concurrent appends; returns acknowledged event ids per session (stops on failures)."""
    acknowledged: dict[str, set[str]] = {sid: set() for sid in session_ids}

    async def writer(session_id: str, worker: int) -> None:
        for i in range(per_session):
            try:
                event = (
                    await stubs.events.CreateEvent(
                        customer_message(session_id, f"w{worker} #{i}"), timeout=10
                    )
                ).event
            except grpc.aio.AioRpcError:
                return
            acknowledged[session_id].add(event.id)

    await asyncio.gather(*(writer(sid, w) for sid in session_ids for w in range(4)))
    return acknowledged


async def read_log(stubs: Stubs, session_id: str) -> list:  # type: ignore[type-arg]
    events, _ = await collect(stubs.events.ListEvents(rr.ListEventsRequest(session_id=session_id)))
    return events


def assert_contiguous(events: list) -> None:  # type: ignore[type-arg]
    offsets = [e.offset for e in events]
    assert offsets == list(range(len(offsets))), "offsets must be contiguous from 0"
    assert len({e.id for e in events}) == len(events), "duplicate event"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
async def test_acknowledged_events_survive_a_stop(database_url: str, stop_signal: int) -> None:
    url = database_url
    server = ServerProcess(url)
    server.start()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stubs = Stubs.on(channel)
            sessions = [(await stubs.new_session()).id for _ in range(3)]
            writes = asyncio.create_task(burst(stubs, sessions, per_session=400))
            # Stop the server once writes are well under way (condition, not a blind sleep).
            async with asyncio.timeout(30):
                while (
                    await stubs.sessions.GetSession(rr.GetSessionRequest(session_id=sessions[0]))
                ).session.next_offset < 200:
                    await asyncio.sleep(0.005)
            server.process.send_signal(stop_signal)  # type: ignore[union-attr]
            acknowledged = await writes
            assert sum(map(len, acknowledged.values())) >= 200
        code = server.process.wait(30)  # type: ignore[union-attr]
        if stop_signal == signal.SIGTERM:
            assert code == 0, "graceful shutdown must exit cleanly"
    finally:
        server.kill()

    # No engine after the restart: it would resume the interrupted turns and keep appending.
    restarted = ServerProcess(url, "--no-engine")
    restarted.start()
    try:
        async with grpc.aio.insecure_channel(restarted.target) as channel:
            stubs = Stubs.on(channel)
            for session_id, ids in acknowledged.items():
                events = await read_log(stubs, session_id)
                assert_contiguous(events)
                missing = ids - {e.id for e in events}
                assert not missing, f"{len(missing)} acknowledged events lost"
            # The log keeps growing from where it stopped.
            length = len(await read_log(stubs, sessions[0]))
            event = await stubs.say(sessions[0], "after restart")
            assert event.offset == length
    finally:
        restarted.kill()


async def test_sigterm_ends_follow_streams_with_unavailable_and_resume_offset(
    database_url: str,
) -> None:
    server = ServerProcess(database_url)
    server.start()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stubs = Stubs.on(channel)
            session = await stubs.new_session()
            await stubs.say(session.id, "hello")
            stream = stubs.events.ListEvents(
                rr.ListEventsRequest(session_id=session.id, follow=True)
            )
            history, _ = await collect(stream, until_caught_up=True)
            server.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            seen = [e.offset for e in history]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async with asyncio.timeout(20):
                    async for response in stream:  # the agent's statuses may still arrive
                        seen += [e.offset for e in response.events]
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_reason(caught.value) == "SERVER_SHUTTING_DOWN"
            assert f"min_offset={seen[-1] + 1}" in caught.value.details()
        assert server.process.wait(30) == 0  # type: ignore[union-attr]
    finally:
        server.kill()
