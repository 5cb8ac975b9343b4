"""Spans, through the SDK's in-memory exporter: the caller's trace context continues into the
RPC span, and the store, the engine turn, its provider calls and its tool call are its
children."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.observe.tracing import TracingConfigError, exporter_from_environment
from tests.engine.test_turns import ENGINE, ends_with, open_session, turn_events
from tests.support import customer_message, wait_until

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_turn_is_one_trace_under_the_callers_span(start_server, exporter, provider) -> None:  # type: ignore[no-untyped-def]
    _, baton, session, stream = await open_session(
        start_server, tracer_provider=provider, offline_matcher="lexical"
    )
    sent = await baton.events.CreateEvent(
        customer_message(session.id, "Where is my order 12345?"),
        metadata=(("traceparent", TRACEPARENT),),
    )
    await turn_events(stream, sent.event.id, ends_with(pb.STATUS_READY))
    stream.cancel()
    await wait_until(lambda: named(exporter.get_finished_spans(), "baton.engine.turn"))
    spans = exporter.get_finished_spans()

    (rpc,) = named(spans, "baton.v1.EventService/CreateEvent")
    assert rpc.context.trace_id == TRACE_ID
    assert parent_id(rpc) == PARENT_ID
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == "OK"
    in_trace = [s for s in spans if s.context.trace_id == TRACE_ID]
    appends = [
        s for s in named(in_trace, "baton.store.append") if parent_id(s) == rpc.context.span_id
    ]
    assert len(appends) == 1
    (turn,) = named(in_trace, "baton.engine.turn")
    assert parent_id(turn) == rpc.context.span_id
    turn_id = turn.context.span_id
    children = {s.name for s in in_trace if parent_id(s) == turn_id}
    assert {
        "baton.nlp.match_guidelines",
        "baton.nlp.plan_tool_calls",
        "baton.nlp.write_reply",
    } <= children
    assert "baton.tool.call" in children
    assert "baton.store.append" in children  # the turn's own statuses and reply
    (tool,) = named(in_trace, "baton.tool.call")
    assert tool.attributes is not None and tool.attributes["baton.tool"] == "check_order_status"


async def test_a_failed_call_is_an_error_span(start_server, exporter, provider) -> None:  # type: ignore[no-untyped-def]
    _, baton = await start_server(tracer_provider=provider)
    with pytest.raises(grpc.aio.AioRpcError):
        await baton.sessions.GetSession(rr.GetSessionRequest(session_id="nope"))
    # grpc sends an aborted call's status before the handler's frame unwinds (and the span
    # ends there): the client may hear the error first.
    await wait_until(
        lambda: named(exporter.get_finished_spans(), "baton.v1.SessionService/GetSession")
    )
    (span,) = named(exporter.get_finished_spans(), "baton.v1.SessionService/GetSession")
    assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == "NOT_FOUND"
    assert not span.status.is_ok
    assert span.parent is None  # no caller context: a new trace


async def test_without_otel_variables_nothing_is_traced(start_server) -> None:  # type: ignore[no-untyped-def]
    app, _ = await start_server(**ENGINE)
    assert app.telemetry.tracer is None


def test_the_environment_chooses_the_exporter() -> None:
    assert exporter_from_environment({}) is None
    assert exporter_from_environment({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert (
        exporter_from_environment(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"}
        )
        is None
    )
    grpc_exporter = exporter_from_environment(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    )
    assert type(grpc_exporter).__module__.endswith("proto.grpc.trace_exporter")
    http_exporter = exporter_from_environment(
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    )
    assert type(http_exporter).__module__.endswith("proto.http.trace_exporter")
    with pytest.raises(TracingConfigError, match="otlp, console or none"):
        exporter_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(TracingConfigError, match="grpc or http/protobuf"):
        exporter_from_environment(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}
        )
