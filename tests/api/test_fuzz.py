"""Property-based fuzzing of every baton.v1 RPC against a live server.

Hypothesis draws requests from the message descriptors (random strings with NUL, huge and
negative numbers, unknown enum numbers, real and made-up ids, field masks, real and mangled page
tokens) and malformed bytes, for every RPC of every service (enumerated from the descriptors, so
new RPCs are covered without edits). Hypothesis runs in a worker thread with a blocking channel
while the grpc.aio server runs on the test's event loop. After every call:

- the status is never INTERNAL/UNKNOWN (nor the server gone); unary calls always answer;
- Baton's own error codes carry a baton.v1 ErrorInfo;
- a call that did not return OK changed no session (next_offset, mode, title, metadata...)
  and appended nothing to the sessions its request names.

At the end the server is SERVING, works normally, logged no unexpected error, and every log is
contiguous from 0.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import Counter, defaultdict
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.fuzzing import (
    STREAM_TIMEOUT_S,
    Outcome,
    Pools,
    RequestDrawer,
    Rpc,
    all_rpcs,
    call_raw,
    iter_pages,
    malformed,
    outcome_problem,
)
from tests.support import Stubs, bad_request_fields, collect, customer_message

EXAMPLE_TOOLS = "baton_server.examples.support"
RPCS = all_rpcs()
STRUCTURED_EXAMPLES = 2400
MALFORMED_EXAMPLES = 1200

FUZZ_SETTINGS = settings(
    max_examples=STRUCTURED_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: the server is stateful, so a replay is not the same experiment; failures
    # describe the exact request instead.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def _list_events_path() -> str:
    return "/baton.v1.EventService/ListEvents"


class Fuzzer:
    """Sends requests on a blocking channel and checks each outcome and its effect on the logs."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.pools = Pools()
        self.sessions = self.read_sessions()
        self.seen: dict[str, Counter[str]] = defaultdict(Counter)

    def read_sessions(self) -> dict[str, pb.Session]:
        return {
            s.id: s
            for s in iter_pages(
                self.channel,
                "/baton.v1.SessionService/ListSessions",
                rr.ListSessionsRequest,
                rr.ListSessionsResponse,
                "sessions",
            )
        }

    def events_from(self, session_id: str, min_offset: int) -> list[pb.Event]:
        request = rr.ListEventsRequest(session_id=session_id, min_offset=min_offset)
        stream = self.channel.unary_stream(
            _list_events_path(),
            request_serializer=rr.ListEventsRequest.SerializeToString,
            response_deserializer=rr.ListEventsResponse.FromString,
        )(request, timeout=30)
        return [event for response in stream for event in response.events]

    def seed(self) -> None:
        """A few real resources, and a first page token from every List RPC."""
        for rpc in RPCS:
            if rpc.method.name == "ListTools":
                self.send(rpc, rr.ListToolsRequest().SerializeToString(), "seed")
        self.replenish()
        agents = [self.unary(rr.CreateAgentRequest(agent=pb.Agent(name=n))) for n in "AB"]
        customers = [
            self.unary(rr.CreateCustomerRequest(customer=pb.Customer(name=n))) for n in "CD"
        ]
        for i in range(3):
            session = pb.Session(
                agent_id=agents[i % 2].agent.id, customer_id=customers[i % 2].customer.id
            )
            sid = self.unary(rr.CreateSessionRequest(session=session)).session.id
            self.unary(customer_message(sid, "hello", idempotency_key="k1"))
        agent_id = agents[0].agent.id
        tool = self.pools.tool_names[0] if self.pools.tool_names else ""
        self.unary(
            rr.CreateGuidelineRequest(
                guideline=pb.Guideline(
                    agent_id=agent_id, condition="c", action="a", tool_names=[tool], enabled=True
                )
            )
        )
        for _ in range(2):
            self.unary(
                rr.CreateCannedResponseRequest(
                    canned_response=pb.CannedResponse(agent_id=agent_id, text="Hi")
                )
            )
        # One accepted request of each kind of write, for the mutating fuzzer to start from.
        session_id = self.pools.ids["session"][0]
        guideline_id = self.pools.ids["guideline"][0]
        canned_id = self.pools.ids["canned_response"][0]
        customer_id = customers[0].customer.id
        self.unary(
            rr.UpdateAgentRequest(
                agent_id=agent_id, agent=pb.Agent(name="A2"), update_mask=mask("name")
            )
        )
        self.unary(
            rr.UpdateCustomerRequest(
                customer_id=customer_id,
                customer=pb.Customer(name="C2", metadata={"crm": "1"}),
                update_mask=mask("name", "metadata"),
            )
        )
        self.unary(
            rr.UpdateSessionRequest(
                session_id=session_id,
                session=pb.Session(mode=pb.SESSION_MODE_MANUAL, title="t"),
                update_mask=mask("mode", "title"),
            )
        )
        self.unary(
            rr.UpdateGuidelineRequest(
                guideline_id=guideline_id,
                guideline=pb.Guideline(condition="c2", enabled=False),
                update_mask=mask("condition", "enabled"),
            )
        )
        self.unary(
            rr.UpdateCannedResponseRequest(
                canned_response_id=canned_id,
                canned_response=pb.CannedResponse(text="Hello"),
                update_mask=mask("text"),
            )
        )
        for rpc in RPCS:
            if "page_size" in rpc.request_type.fields_by_name:
                request = rpc_request(rpc, page_size=1)
                self.send(rpc, request.SerializeToString(), "seed")
        assert self.pools.page_tokens, "seeding produced no page tokens"
        self.sessions = self.read_sessions()

    def replenish(self) -> None:
        """Keeps a few live sessions (with their agent, customer, guideline and canned
        response) around, since the fuzzer deletes what it finds."""
        while len(self.sessions) < 3:
            agent_id = self.unary(rr.CreateAgentRequest(agent=pb.Agent(name="R"))).agent.id
            customer = self.unary(rr.CreateCustomerRequest(customer=pb.Customer(name="R")))
            session = pb.Session(agent_id=agent_id, customer_id=customer.customer.id)
            sid = self.unary(rr.CreateSessionRequest(session=session)).session.id
            self.unary(customer_message(sid, "hello", idempotency_key="k1"))
            guideline = pb.Guideline(agent_id=agent_id, condition="c", action="a", enabled=True)
            self.unary(rr.CreateGuidelineRequest(guideline=guideline))
            canned = pb.CannedResponse(agent_id=agent_id, text="Hi")
            self.unary(rr.CreateCannedResponseRequest(canned_response=canned))

    def unary(self, request: Any) -> Any:
        rpc = next(r for r in RPCS if r.request_type.full_name == request.DESCRIPTOR.full_name)
        outcome = self.send(rpc, request.SerializeToString(), "seed")
        assert outcome.code == grpc.StatusCode.OK, outcome.details
        return rpc.response_class.FromString(outcome.responses[0])

    def send(self, rpc: Rpc, payload: bytes, label: str) -> Outcome:
        outcome = call_raw(self.channel, rpc, payload)
        self.seen[rpc.path][outcome.code.name] += 1
        problem = outcome_problem(rpc, outcome)
        assert problem is None, self.describe(rpc, payload, label, problem)
        if outcome.code == grpc.StatusCode.OK or outcome.stopped_by_client:
            self.pools.accept(rpc.path, payload)
            for response in outcome.responses:
                self.pools.harvest(rpc.response_class.FromString(response), rpc.path)
        after = self.read_sessions()
        if outcome.code != grpc.StatusCode.OK:
            self.check_unchanged(rpc, payload, label, outcome, after)
        self.sessions = after
        return outcome

    def check_unchanged(
        self, rpc: Rpc, payload: bytes, label: str, outcome: Outcome, after: dict[str, pb.Session]
    ) -> None:
        before = self.sessions
        changed = sorted(
            sid for sid in before.keys() | after.keys() if before.get(sid) != after.get(sid)
        )
        context = f"{outcome.code.name} ({outcome.details})"
        assert not changed, self.describe(
            rpc, payload, label, f"{context} but sessions changed: {changed}"
        )
        for sid, session in before.items():
            if sid.encode() in payload:
                appended = self.events_from(sid, session.next_offset)
                assert not appended, self.describe(
                    rpc, payload, label, f"{context} but appended {appended} to {sid}"
                )

    @staticmethod
    def describe(rpc: Rpc, payload: bytes, label: str, problem: str) -> str:
        try:
            request = text_format.MessageToString(
                rpc.request_class.FromString(payload), as_one_line=True
            )[:2000]
        except Exception:
            request = repr(payload[:500])
        return f"{rpc.path} [{label}] {problem}\nrequest: {request}"

    def verify_logs(self) -> None:
        """Every session's log is exactly 0..next_offset-1, no gaps, no duplicates."""
        for sid, session in self.read_sessions().items():
            events = self.events_from(sid, 0)
            assert [e.offset for e in events] == list(range(session.next_offset)), sid
            assert len({e.id for e in events}) == len(events), sid


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def rpc_request(rpc: Rpc, **fields: Any) -> Any:
    return rpc.request_class(**fields)


def fuzz(target: str) -> dict[str, Counter[str]]:
    """Both fuzzing phases on a blocking channel (runs in a worker thread)."""
    with grpc.insecure_channel(target) as channel:
        fuzzer = Fuzzer(channel)
        fuzzer.seed()

        @FUZZ_SETTINGS
        @given(st.data())
        def structured(data: st.DataObject) -> None:
            rpc = data.draw(st.sampled_from(RPCS), label="rpc")
            request = RequestDrawer(data, fuzzer.pools).request(rpc)
            fuzzer.send(rpc, request.SerializeToString(), "structured")
            fuzzer.replenish()

        @settings(FUZZ_SETTINGS, max_examples=MALFORMED_EXAMPLES)
        @given(st.data())
        def malformed_bytes(data: st.DataObject) -> None:
            rpc = data.draw(st.sampled_from(RPCS), label="rpc")
            valid = RequestDrawer(data, fuzzer.pools).request(rpc)
            payload = malformed(data, rpc.request_type, valid.SerializeToString())
            fuzzer.send(rpc, payload, "malformed")

        structured()
        malformed_bytes()
        fuzzer.verify_logs()
        return fuzzer.seen


async def test_every_rpc_survives_fuzzing(start_server, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.ERROR, logger="baton_server")
    app, stubs = await start_server(tool_modules=(EXAMPLE_TOOLS,))
    seen = await asyncio.to_thread(fuzz, f"127.0.0.1:{app.port}")

    summary = "\n".join(f"{path}: {dict(codes)}" for path, codes in sorted(seen.items()))
    print(summary)
    assert {rpc.path for rpc in RPCS} <= seen.keys(), summary
    assert sum(sum(codes.values()) for codes in seen.values()) >= (
        STRUCTURED_EXAMPLES + MALFORMED_EXAMPLES
    )
    # The pools work: most RPCs were called successfully at least once, so the fuzzer got past
    # validation and NOT_FOUND into the code behind them.
    succeeded = [path for path, codes in seen.items() if codes["OK"]]
    assert len(succeeded) >= len(RPCS) * 3 // 4, summary

    await assert_healthy(stubs)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "server logged errors:\n" + "\n".join(r.getMessage() for r in errors)


async def assert_healthy(stubs: Stubs) -> None:
    health = health_pb2_grpc.HealthStub(stubs.channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    session = await stubs.new_session()
    event = await stubs.say(session.id, "still here?")
    assert event.offset == 1
    events, _ = await collect(
        stubs.events.ListEvents(rr.ListEventsRequest(session_id=session.id)),
        timeout=STREAM_TIMEOUT_S * 20,
    )
    assert [e.offset for e in events] == [0, 1]


LIST_RPCS = [rpc for rpc in RPCS if "page_token" in rpc.request_type.fields_by_name]


@pytest.mark.parametrize(
    ("field", "value"),
    [("i", "a\x00b"), ("i", "\ud800"), ("i", 7), ("t", True), ("t", -1), ("t", 2**63)],
)
async def test_forged_page_token_fields_are_invalid_argument(
    baton: Stubs, field: str, value: Any
) -> None:
    """Regression (found probing the fuzzer's token mutations): a real page token whose cursor
    id held NUL (PostgreSQL) or a lone surrogate, or whose time was `true`, gave INTERNAL."""
    for _ in range(2):  # two of everything that new_session creates: a second page exists
        await baton.new_session()
    for rpc in LIST_RPCS:
        call = baton.channel.unary_unary(rpc.path)
        first = rpc.response_class.FromString(
            await call(rpc.request_class(page_size=1).SerializeToString(), timeout=10)
        )
        token = first.next_page_token  # type: ignore[attr-defined]
        if not token:
            continue  # too few of this resource for a second page
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        body[field] = value
        forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode()
        request = rpc.request_class(page_size=1, page_token=forged)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request.SerializeToString(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, rpc.path
        assert bad_request_fields(caught.value) == ["page_token"], rpc.path
