"""The Python client's tool-worker helpers: declarations from type hints, calls, results."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from google.protobuf import json_format

from baton.v1 import request_response_pb2 as rr
from baton_client import (
    ToolResult,
    ToolWorker,
    WorkerCall,
    handoff,
    parameters_schema,
    worker_tool,
)
from baton_client._worker_tools import BadArguments, result_message


@worker_tool(description="Look up the delivery status of an order by its number.")
async def check_order_status(call: WorkerCall, order_id: str) -> ToolResult:
    digits = "".join(ch for ch in order_id if ch.isdigit())
    if not digits:
        return ToolResult(data={"found": False, "hint": "ask for the order number"})
    return ToolResult(data={"found": True, "order": digits[-8:], "status": "in transit"})


async def every_kind(
    call: WorkerCall,
    text: str,
    count: int,
    ratio: float,
    flag: bool,
    tags: list[str],
    mode: Literal["fast", "slow"],
    extra: dict[str, Any],
    note: str | None = None,
    limit: int = 3,
) -> dict[str, Any]:
    return {"count": count, "tags": tags, "limit": limit}


def call_of(tool: str, **arguments: Any) -> WorkerCall:
    request = rr.ToolCallRequest(call_id="c1", tool=tool, session_id="ses_1", attempt=1)
    request.arguments.update(arguments)
    return WorkerCall.from_request(request, "w-1", "127.0.0.1:1")


def test_schema_from_type_hints_matches_the_server_rules() -> None:
    schema = parameters_schema(every_kind)
    assert schema == {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["fast", "slow"]},
            "extra": {"type": "object"},
            "note": {"type": "string"},
            "limit": {"type": "integer"},
        },
        "required": ["text", "count", "ratio", "flag", "tags", "mode", "extra"],
        "additionalProperties": False,
    }


def test_schema_is_the_same_as_for_a_python_tool_in_the_server() -> None:
    from baton_server.examples.support import check_order_status as server_tool

    assert check_order_status.parameters == server_tool.parameters
    assert check_order_status.description == server_tool.description


def test_unsupported_or_missing_hints_are_refused() -> None:
    async def untyped(call: WorkerCall, order_id):  # type: ignore[no-untyped-def]
        return None

    async def odd(call: WorkerCall, when: datetime) -> None:
        return None

    with pytest.raises(TypeError, match="needs a type hint"):
        worker_tool(untyped)
    with pytest.raises(TypeError, match="unsupported tool parameter type"):
        worker_tool(odd)
    with pytest.raises(TypeError, match="must be an async function"):
        worker_tool(lambda call: None)  # type: ignore[arg-type, return-value]


def test_decorator_options_and_declaration() -> None:
    @worker_tool(name="lookup", timeout=2.5, retry_safe=True)
    async def look_up(call: WorkerCall, order_id: str) -> None:
        """Finds an order."""

    declared = look_up.declaration()
    assert declared.name == "lookup"
    assert declared.description == "Finds an order."
    assert declared.retry_safe is True
    assert declared.timeout.ToNanoseconds() == 2_500_000_000
    assert json_format.MessageToDict(declared.parameters)["required"] == ["order_id"]
    assert not check_order_status.declaration().HasField("timeout")
    with pytest.raises(ValueError, match="timeout"):
        worker_tool(look_up.handler, timeout=601)
    with pytest.raises(ValueError, match="object schema"):
        worker_tool(look_up.handler, parameters={"type": "string"})


def test_explicit_schema_and_keyword_arguments() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    @worker_tool(parameters=schema, description="Doubles n.")
    async def double(call: WorkerCall, **arguments: Any) -> int:
        return int(arguments["n"]) * 2

    assert double.parameters == schema
    result = asyncio.run(double.run(call_of("double", n=21)))
    assert result == ToolResult(data=42)


def test_run_maps_arguments_and_returns() -> None:
    every = worker_tool(every_kind)
    arguments = {
        "text": "t",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a"],
        "mode": "fast",
        "extra": {},
    }
    result = asyncio.run(every.run(call_of("every_kind", **arguments)))
    # Struct carries numbers as doubles: integers declared as such arrive as ints again.
    assert result.data == {"count": 3, "tags": ["a"], "limit": 3}
    assert type(result.data["count"]) is int
    found = asyncio.run(check_order_status.run(call_of("check_order_status", order_id="A-123")))
    assert found.data == {"found": True, "order": "123", "status": "in transit"}


def test_bad_arguments_are_reported_not_raised_as_type_errors() -> None:
    with pytest.raises(BadArguments, match="order_id"):
        asyncio.run(check_order_status.run(call_of("check_order_status")))
    with pytest.raises(BadArguments, match="bad arguments for check_order_status"):
        asyncio.run(check_order_status.run(call_of("check_order_status", order_id="1", x=2)))


def test_call_context_from_the_request() -> None:
    request = rr.ToolCallRequest(
        call_id="c9",
        tool="t",
        session_id="ses",
        agent_id="agt",
        customer_id="cus",
        correlation_id="cor",
        attempt=2,
    )
    request.deadline.FromDatetime(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    call = WorkerCall.from_request(request, "worker-7", "host:1")
    assert (call.call_id, call.session_id, call.agent_id, call.customer_id) == (
        "c9",
        "ses",
        "agt",
        "cus",
    )
    assert (call.correlation_id, call.attempt, call.worker_id) == ("cor", 2, "worker-7")
    assert call.deadline == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert call_of("t").deadline is None


def test_result_mapping() -> None:
    message = result_message("c1", ToolResult(data={"a": [1, 2.5, None, "x"]}))
    assert json_format.MessageToDict(message.data) == {"a": [1, 2.5, None, "x"]}
    assert not message.error and not message.control
    manual = result_message("c2", handoff("asked for a human", {"handoff": "requested"}))
    assert dict(manual.control) == {"mode": "manual", "reason": "asked for a human"}
    assert json_format.MessageToDict(manual.data) == {"handoff": "requested"}
    assert result_message("c3", ToolResult(data=None)).data.HasField("null_value")
    for bad in ({"when": datetime.now()}, float("nan"), {1: "x"}):
        failed = result_message("c4", ToolResult(data=bad))
        assert failed.call_id == "c4"
        assert "not JSON" in failed.error, failed.error


def test_worker_options_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one tool"):
        ToolWorker("127.0.0.1:1", tools=[])
    with pytest.raises(ValueError, match="two tools are named"):
        ToolWorker("127.0.0.1:1", tools=[check_order_status, check_order_status])
    with pytest.raises(ValueError, match="max_concurrent_calls"):
        ToolWorker("127.0.0.1:1", tools=[check_order_status], max_concurrent_calls=0)
    with pytest.raises(ValueError, match="distinct"):
        ToolWorker(["a:1", "a:1"], tools=[check_order_status])
    with pytest.raises(ValueError, match="at least one target"):
        ToolWorker([], tools=[check_order_status])


async def test_declaration_of_a_worker() -> None:
    worker = ToolWorker(
        ["127.0.0.1:1", "127.0.0.1:2"],
        tools=[check_order_status],
        name="orders",
        max_concurrent_calls=4,
    )
    declaration = worker.declaration()
    assert declaration.worker_name == "orders"
    assert declaration.max_concurrent_calls == 4
    assert [t.name for t in declaration.tools] == ["check_order_status"]
    assert worker.targets == ["127.0.0.1:1", "127.0.0.1:2"]
    await worker.stop()  # never started: nothing to drain
