"""/metrics after a real scenario: a customer asks for a human, the example agent's tool opens
a handoff, an operator claims it. Each figure must move as the scenario says, on both stores."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace

import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.app import BatonApp, ConfigurationError
from baton_server.config import Settings
from tests.engine.test_turns import ENGINE, ends_with, open_session, turn_events
from tests.handoff.test_controls import op
from tests.observe.scrape import Scrape
from tests.support import follow_while_not_reading

LIST_EVENTS = "/baton.v1.EventService/ListEvents"
CREATE_EVENT = "/baton.v1.EventService/CreateEvent"
GET_SESSION = "/baton.v1.SessionService/GetSession"
METRICS = {**ENGINE, "metrics_port": 0, "metrics_sample_interval_s": 0.05}


async def scrape_until(port: int, holds: Callable[[Scrape], bool], timeout: float = 10) -> Scrape:
    """Scrapes until `holds` is true of a scrape (values sampled in the background lag)."""
    deadline = time.monotonic() + timeout
    while True:
        scrape = await asyncio.to_thread(Scrape, port)
        if holds(scrape):
            return scrape
        if time.monotonic() > deadline:
            raise AssertionError("metrics did not reach the expected values before the deadline")
        await asyncio.sleep(0.05)


async def test_the_scenario_moves_every_figure(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton, session, stream = await open_session(start_server, **METRICS)
    port = app.metrics_port
    before = await scrape_until(
        port, lambda s: s.value("baton_streams_open", method=LIST_EVENTS) == 1
    )
    assert before.content_type.startswith("text/plain")
    assert before.value("baton_database_up") == 1
    assert before.value("baton_handoffs_open", state="pending") == 0

    ask = await baton.say(session.id, "Can I talk to a human please?")
    await turn_events(stream, ask.id, ends_with(pb.STATUS_READY))
    with pytest.raises(grpc.aio.AioRpcError):
        await baton.sessions.GetSession(rr.GetSessionRequest(session_id="no-such-session"))

    after = await scrape_until(port, lambda s: s.value("baton_handoffs_open", state="pending") == 1)
    count = "baton_rpc_duration_seconds_count"
    assert after.value(count, method=CREATE_EVENT, code="OK") == 1 + before.value(
        count, method=CREATE_EVENT, code="OK"
    )
    assert after.value("baton_rpc_requests_total", method=CREATE_EVENT, code="OK") == after.value(
        count, method=CREATE_EVENT, code="OK"
    )
    assert after.value(count, method=GET_SESSION, code="NOT_FOUND") == 1
    assert after.value("baton_rpc_duration_seconds_bucket", method=GET_SESSION, le="+Inf") == 1
    # The message, the turn's statuses, the tool event, the mode change, the handoff's...
    appended = after.value("baton_events_appended_total") - before.value(
        "baton_events_appended_total"
    )
    assert appended >= 6
    assert after.value("baton_append_batch_size_count") > before.value(
        "baton_append_batch_size_count"
    )
    assert after.value("baton_append_commit_duration_seconds_count") == after.value(
        "baton_append_batch_size_count"
    )
    assert after.value("baton_engine_turns_total", outcome="ready") == 1
    assert after.value("baton_engine_turn_duration_seconds_count", outcome="ready") == 1
    assert after.value("baton_tool_calls_total", tool="initiate_human_handoff", outcome="ok") == 1
    assert after.value("baton_nlp_requests_total", operation="match_guidelines", outcome="ok") == 1
    assert after.value("baton_nlp_requests_total", operation="plan_tool_calls", outcome="ok") == 1
    assert after.value("baton_handoff_changes_total", state="pending") == 1
    assert after.value("baton_handoff_queue_depth") == 1
    assert after.value("baton_handoff_time_to_claim_seconds_count") == 0
    assert after.value("baton_db_pool_size") > 0

    (handoff,) = (
        await baton.handoffs.ListHandoffs(rr.ListHandoffsRequest(session_id=session.id))
    ).handoffs
    await baton.handoffs.ClaimHandoff(
        rr.ClaimHandoffRequest(handoff_id=handoff.id, operator=op("olga"))
    )
    stream.cancel()
    claimed = await scrape_until(
        port,
        lambda s: (
            s.value("baton_handoffs_open", state="claimed") == 1
            and s.value("baton_streams_open", method=LIST_EVENTS) == 0
        ),
    )
    assert claimed.value("baton_handoff_queue_depth") == 0
    assert claimed.value("baton_handoff_time_to_claim_seconds_count") == 1
    assert claimed.value("baton_handoff_changes_total", state="claimed") == 1
    assert claimed.value(count, method=LIST_EVENTS, code="CANCELLED") == 1
    assert claimed.value("process_cpu_seconds_total") > 0


async def test_a_subscriber_that_falls_behind_is_counted(start_server) -> None:  # type: ignore[no-untyped-def]
    app, baton = await start_server(metrics_port=0, subscriber_buffer=8)
    session = await baton.new_session()
    _, responses = await follow_while_not_reading(app.port, baton, session.id)
    told = sum(1 for r in responses if r.fell_behind)
    assert told >= 1
    scrape = await asyncio.to_thread(Scrape, app.metrics_port)
    assert scrape.value("baton_subscribers_fell_behind_total") == told


async def test_metrics_are_off_unless_asked_for(start_server) -> None:  # type: ignore[no-untyped-def]
    app, _ = await start_server()
    assert app.metrics_port == 0
    assert app.telemetry.metrics is None and app.telemetry.tracer is None


async def test_the_endpoint_closes_with_the_server(start_server) -> None:  # type: ignore[no-untyped-def]
    app, _ = await start_server(metrics_port=0)
    port = app.metrics_port
    await asyncio.to_thread(Scrape, port)
    await app.stop(grace=0.5)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/metrics", None, 2)


async def test_a_taken_metrics_port_stops_the_start_cleanly(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = BatonApp(replace(settings, metrics_port=taken.getsockname()[1]))
        with pytest.raises(ConfigurationError, match=r"--metrics-port .*choose another port"):
            await app.start()
    # Nothing half-started keeps running: no gRPC port, no task of the server's.
    assert app.port == 0
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("baton-")]
    assert left == []
