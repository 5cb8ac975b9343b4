"""Every client mistake gets a precise status and names the field; nothing is appended."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.support import Stubs, bad_request_fields, collect, customer_message, error_reason

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def expect_error(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def log_length(baton: Stubs, session_id: str) -> int:
    events, _ = await collect(baton.events.ListEvents(rr.ListEventsRequest(session_id=session_id)))
    return len(events)


def event(session_id: str, **fields) -> rr.CreateEventRequest:  # type: ignore[no-untyped-def]
    return rr.CreateEventRequest(session_id=session_id, **fields)


MESSAGE = pb.EVENT_KIND_MESSAGE
CUSTOMER = pb.EVENT_SOURCE_CUSTOMER


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"source": CUSTOMER, "message": pb.MessageData(text="hi")}, "kind"),
        ({"kind": 42, "source": CUSTOMER, "message": pb.MessageData(text="hi")}, "kind"),
        ({"kind": MESSAGE, "message": pb.MessageData(text="hi")}, "source"),
        ({"kind": MESSAGE, "source": 99, "message": pb.MessageData(text="hi")}, "source"),
        ({"kind": MESSAGE, "source": CUSTOMER}, "data"),
        ({"kind": MESSAGE, "source": CUSTOMER, "message": pb.MessageData(text="")}, "message.text"),
        (
            {"kind": MESSAGE, "source": CUSTOMER, "message": pb.MessageData(text=" \n\t ")},
            "message.text",
        ),
        (
            {"kind": pb.EVENT_KIND_TOOL, "source": CUSTOMER, "message": pb.MessageData(text="x")},
            "message",
        ),
        (
            {
                "kind": pb.EVENT_KIND_STATUS,
                "source": pb.EVENT_SOURCE_AI_AGENT,
                "status": pb.StatusData(),
            },
            "status.status",
        ),
        (
            {"kind": pb.EVENT_KIND_TOOL, "source": pb.EVENT_SOURCE_SYSTEM, "tool": pb.ToolData()},
            "tool.tool_calls",
        ),
        (
            {
                "kind": pb.EVENT_KIND_TOOL,
                "source": pb.EVENT_SOURCE_SYSTEM,
                "tool": pb.ToolData(tool_calls=[pb.ToolCall(name=" ")]),
            },
            "tool.tool_calls[0].name",
        ),
        (
            {
                "kind": MESSAGE,
                "source": CUSTOMER,
                "message": pb.MessageData(text="hi"),
                "idempotency_key": "k" * 129,
            },
            "idempotency_key",
        ),
    ],
)
async def test_create_event_rejects_bad_input_naming_the_field(
    baton: Stubs, fields: dict, bad_field: str
) -> None:
    session = await baton.new_session()
    before = await log_length(baton, session.id)
    error = await expect_error(baton.events.CreateEvent(event(session.id, **fields)), INVALID)
    assert bad_field in bad_request_fields(error)
    assert bad_field in error.details()
    assert await log_length(baton, session.id) == before


async def test_unknown_ids_are_not_found(baton: Stubs) -> None:
    missing = "ses_doesnotexist"
    cases = [
        baton.events.CreateEvent(customer_message(missing, "hi")),
        baton.sessions.GetSession(rr.GetSessionRequest(session_id=missing)),
        baton.sessions.DeleteSession(rr.DeleteSessionRequest(session_id=missing)),
        baton.agents.GetAgent(rr.GetAgentRequest(agent_id="agt_nope")),
        baton.customers.GetCustomer(rr.GetCustomerRequest(customer_id="cus_nope")),
        baton.agents.DeleteAgent(rr.DeleteAgentRequest(agent_id="agt_nope")),
        baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=missing,
                session=pb.Session(title="t"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"]),
            )
        ),
        baton.sessions.CreateSession(
            rr.CreateSessionRequest(session=pb.Session(agent_id="agt_x", customer_id="cus_y"))
        ),
    ]
    for call in cases:
        error = await expect_error(call, grpc.StatusCode.NOT_FOUND)
        assert error_reason(error) == "NOT_FOUND"
    error = await expect_error(
        collect(baton.events.ListEvents(rr.ListEventsRequest(session_id=missing, follow=True))),
        grpc.StatusCode.NOT_FOUND,
    )
    assert missing in error.details()


async def test_missing_ids_are_invalid(baton: Stubs) -> None:
    error = await expect_error(baton.events.CreateEvent(customer_message("", "hi")), INVALID)
    assert bad_request_fields(error) == ["session_id"]
    error = await expect_error(baton.sessions.GetSession(rr.GetSessionRequest()), INVALID)
    assert bad_request_fields(error) == ["session_id"]


async def test_list_events_validation(baton: Stubs) -> None:
    session = await baton.new_session()
    cases = [
        (rr.ListEventsRequest(session_id=session.id, min_offset=-1), "min_offset"),
        (
            rr.ListEventsRequest(session_id=session.id, kinds=[pb.EVENT_KIND_UNSPECIFIED]),
            "kinds[0]",
        ),
        (
            rr.ListEventsRequest(session_id=session.id, sources=[pb.EVENT_SOURCE_CUSTOMER, 77]),
            "sources[1]",
        ),
    ]
    for request, field in cases:
        error = await expect_error(collect(baton.events.ListEvents(request)), INVALID)
        assert bad_request_fields(error) == [field]


async def test_bad_page_token_and_page_size(baton: Stubs) -> None:
    for token in ("garbage!!", "eyJ0IjoxfQ", "a" * 40):
        error = await expect_error(
            baton.sessions.ListSessions(rr.ListSessionsRequest(page_token=token)), INVALID
        )
        assert bad_request_fields(error) == ["page_token"]
    error = await expect_error(baton.agents.ListAgents(rr.ListAgentsRequest(page_size=-5)), INVALID)
    assert bad_request_fields(error) == ["page_size"]


async def test_page_token_must_keep_filters(baton: Stubs) -> None:
    first = await baton.new_session()
    await baton.new_session()
    page = await baton.sessions.ListSessions(rr.ListSessionsRequest(page_size=1))
    assert page.next_page_token
    error = await expect_error(
        baton.sessions.ListSessions(
            rr.ListSessionsRequest(
                page_size=1, page_token=page.next_page_token, agent_id=first.agent_id
            )
        ),
        INVALID,
    )
    assert "filters" in error.details()


async def test_update_mask_errors(baton: Stubs) -> None:
    session = await baton.new_session()
    error = await expect_error(
        baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=session.id,
                session=pb.Session(title="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["title", "agent_id"]),
            )
        ),
        INVALID,
    )
    assert bad_request_fields(error) == ["update_mask"]
    assert "agent_id" in error.details()
    error = await expect_error(
        baton.sessions.UpdateSession(rr.UpdateSessionRequest(session_id=session.id)), INVALID
    )
    assert bad_request_fields(error) == ["update_mask"]
    error = await expect_error(
        baton.sessions.UpdateSession(
            rr.UpdateSessionRequest(
                session_id=session.id,
                session=pb.Session(),
                update_mask=field_mask_pb2.FieldMask(paths=["mode"]),
            )
        ),
        INVALID,
    )
    assert bad_request_fields(error) == ["session.mode"]


async def test_resource_validation(baton: Stubs) -> None:
    error = await expect_error(
        baton.agents.CreateAgent(rr.CreateAgentRequest(agent=pb.Agent(name="  "))), INVALID
    )
    assert bad_request_fields(error) == ["agent.name"]
    error = await expect_error(baton.customers.CreateCustomer(rr.CreateCustomerRequest()), INVALID)
    assert bad_request_fields(error) == ["customer.name"]
    error = await expect_error(
        baton.sessions.CreateSession(rr.CreateSessionRequest(session=pb.Session(agent_id="a"))),
        INVALID,
    )
    assert bad_request_fields(error) == ["session.customer_id"]


async def test_delete_agent_in_use_is_failed_precondition(baton: Stubs) -> None:
    session = await baton.new_session()
    error = await expect_error(
        baton.agents.DeleteAgent(rr.DeleteAgentRequest(agent_id=session.agent_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "session" in error.details()


async def test_idempotency_key(baton: Stubs) -> None:
    session = await baton.new_session()
    first = await baton.say(session.id, "pay invoice 7", idempotency_key="req-1")
    again = await baton.say(session.id, "pay invoice 7", idempotency_key="req-1")
    assert again == first
    length = await log_length(baton, session.id)
    error = await expect_error(
        baton.events.CreateEvent(
            customer_message(session.id, "pay invoice 8", idempotency_key="req-1")
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert error_reason(error) == "IDEMPOTENCY_KEY_REUSED"
    assert await log_length(baton, session.id) == length
    # The same key in another session is a different key.
    other = await baton.new_session()
    elsewhere = await baton.say(other.id, "pay invoice 7", idempotency_key="req-1")
    assert elsewhere.session_id == other.id


async def test_undecodable_request_is_invalid_argument(baton: Stubs) -> None:
    call = baton.channel.unary_unary(
        "/baton.v1.EventService/CreateEvent",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    error = await expect_error(call(b"\xff\xff\xff\xff"), INVALID)
    assert bad_request_fields(error) == ["request"]


async def test_custom_event_round_trip(baton: Stubs) -> None:
    session = await baton.new_session()
    custom = struct_pb2.Struct()
    custom.update({"type": "crm.ticket", "priority": 2, "tags": ["vip"], "nested": {"a": None}})
    created = await baton.events.CreateEvent(
        event(session.id, kind=pb.EVENT_KIND_CUSTOM, source=pb.EVENT_SOURCE_SYSTEM, custom=custom)
    )
    events, _ = await collect(
        baton.events.ListEvents(
            rr.ListEventsRequest(session_id=session.id, min_offset=created.event.offset)
        )
    )
    assert events[0].custom == custom


async def test_concurrent_retries_with_one_key_append_once(baton: Stubs) -> None:
    session = await baton.new_session()
    request = customer_message(session.id, "once", idempotency_key="retry-storm")
    results = await asyncio.gather(*(baton.events.CreateEvent(request) for _ in range(20)))
    assert len({r.event.id for r in results}) == 1
    assert await log_length(baton, session.id) == 2


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"custom": {"x": float("nan")}}, "custom"),
        ({"custom": {"x": float("inf")}}, "custom"),
        ({"custom": {"type": "baton.session_mode_changed", "mode": "manual"}}, "custom.type"),
    ],
)
async def test_custom_data_that_cannot_be_stored_or_is_reserved(
    baton: Stubs, fields: dict, bad_field: str
) -> None:
    session = await baton.new_session()
    custom = struct_pb2.Struct()
    custom.update(fields["custom"])
    error = await expect_error(
        baton.events.CreateEvent(
            event(
                session.id, kind=pb.EVENT_KIND_CUSTOM, source=pb.EVENT_SOURCE_SYSTEM, custom=custom
            )
        ),
        INVALID,
    )
    assert bad_request_fields(error) == [bad_field]


async def test_nul_characters_are_invalid_on_every_backend(baton: Stubs) -> None:
    session = await baton.new_session()
    cases = [
        (baton.sessions.GetSession(rr.GetSessionRequest(session_id="ses_\x00")), "session_id"),
        (
            baton.agents.CreateAgent(rr.CreateAgentRequest(agent=pb.Agent(name="A\x00"))),
            "agent.name",
        ),
        (
            baton.events.CreateEvent(customer_message(session.id, "hi", idempotency_key="k\x00")),
            "idempotency_key",
        ),
        (
            baton.customers.CreateCustomer(
                rr.CreateCustomerRequest(customer=pb.Customer(name="C", metadata={"crm": "1\x00"}))
            ),
            "customer.metadata['crm']",
        ),
    ]
    for call, field in cases:
        error = await expect_error(call, INVALID)
        assert bad_request_fields(error) == [field]


async def test_page_token_with_an_absurd_cursor_is_invalid(baton: Stubs) -> None:
    import base64

    for t in ("1e400", str(10**30), "-5"):
        raw = f'{{"t":{t},"i":"x","f":"y"}}'.encode()
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        error = await expect_error(
            baton.agents.ListAgents(rr.ListAgentsRequest(page_token=token)), INVALID
        )
        assert bad_request_fields(error) == ["page_token"]
