"""ToolWorkerService servicer: one bidi stream per tool worker, mapped onto the WorkerPool.

The handler checks the declaration, connects the worker, then runs two things until the stream
ends: a reader task that hands each result to the pool (and notes `drain`), and the response
side, which sends what the worker's outbox holds (calls, cancels) and a heartbeat when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format

from baton_server.api.grpc_types import Context
from baton_server.api.mapping import timestamp
from baton_server.api.protos import rr, svc_grpc
from baton_server.domain import WorkerToolSpec, now_us
from baton_server.errors import FieldViolation, InvalidArgument
from baton_server.tools.workers import (
    WorkerCall,
    WorkerCancel,
    WorkerDeclaration,
    WorkerLink,
    WorkerPool,
    WorkerReply,
)

TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_TOOLS = 200
MAX_CONCURRENT_CALLS = 1000
MAX_TOOL_TIMEOUT_S = 600.0
MAX_DESCRIPTION = 4000
MAX_WORKER_NAME = 100


def declaration_from_proto(message: rr.WorkerDeclaration) -> WorkerDeclaration:
    """The declaration, or INVALID_ARGUMENT naming every field that is wrong."""
    problems: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        problems.append(FieldViolation(f"declare.{field}", description))

    if len(message.worker_name) > MAX_WORKER_NAME:
        bad("worker_name", f"at most {MAX_WORKER_NAME} characters")
    limit = message.max_concurrent_calls or 1
    if not 1 <= limit <= MAX_CONCURRENT_CALLS:
        bad("max_concurrent_calls", f"must be between 1 and {MAX_CONCURRENT_CALLS} (0 means 1)")
    if not message.tools:
        bad("tools", "declare at least one tool")
    if len(message.tools) > MAX_TOOLS:
        bad("tools", f"at most {MAX_TOOLS} tools per worker")
    specs: list[WorkerToolSpec] = []
    seen: set[str] = set()
    for i, tool in enumerate(message.tools):
        where = f"tools[{i}]"
        if not TOOL_NAME.fullmatch(tool.name):
            bad(
                f"{where}.name",
                f"{tool.name!r} is not a tool name: letters, digits and _, starting with a "
                "letter, at most 64 characters",
            )
        elif tool.name in seen:
            bad(f"{where}.name", f"{tool.name!r} is declared twice")
        seen.add(tool.name)
        if len(tool.description) > MAX_DESCRIPTION:
            bad(f"{where}.description", f"at most {MAX_DESCRIPTION} characters")
        parameters = json_format.MessageToDict(tool.parameters)
        if parameters.get("type") != "object":
            bad(f"{where}.parameters", 'must be a JSON Schema of an object ("type": "object")')
        timeout_s: float | None = None
        if tool.HasField("timeout"):
            timeout_s = tool.timeout.ToMilliseconds() / 1000
            if not 0 < timeout_s <= MAX_TOOL_TIMEOUT_S:
                bad(f"{where}.timeout", f"must be above 0 and at most {MAX_TOOL_TIMEOUT_S:g} s")
        specs.append(
            WorkerToolSpec(tool.name, tool.description, parameters, timeout_s, tool.retry_safe)
        )
    if problems:
        raise InvalidArgument(problems)
    return WorkerDeclaration(message.worker_name, tuple(specs), limit)


def _reply_from_proto(message: rr.ToolCallResult) -> WorkerReply:
    data: Any = None
    if message.HasField("data"):
        try:
            data = json_format.MessageToDict(message.data)
        except ValueError:
            error = "the worker's data holds a number that is not finite (NaN or infinity)"
            return WorkerReply(message.call_id, error=error)
    return WorkerReply(message.call_id, data, dict(message.control), message.error)


def _call_to_proto(call: WorkerCall) -> rr.ServeToolsResponse:
    proto = rr.ToolCallRequest(
        call_id=call.call_id,
        tool=call.tool,
        session_id=call.session_id,
        agent_id=call.agent_id,
        customer_id=call.customer_id,
        correlation_id=call.correlation_id,
        deadline=timestamp(call.deadline_us),
        attempt=call.attempt,
    )
    json_format.ParseDict(call.arguments, proto.arguments)
    return rr.ServeToolsResponse(call=proto)


def _heartbeat() -> rr.ServeToolsResponse:
    return rr.ServeToolsResponse(heartbeat=rr.WorkerHeartbeat(time=timestamp(now_us())))


class ToolWorkerServicer(svc_grpc.ToolWorkerServiceServicer):
    """baton.v1.ToolWorkerService."""

    def __init__(self, pool: WorkerPool, heartbeat_s: float = 15.0) -> None:
        self._pool = pool
        self._heartbeat_s = heartbeat_s

    async def ServeTools(
        self, requests: AsyncIterator[rr.ServeToolsRequest], context: Context
    ) -> AsyncIterator[rr.ServeToolsResponse]:
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("kind") != "declare":
            raise InvalidArgument.single(
                "declare", "the first message of ServeTools must be `declare`"
            )
        link = await self._pool.connect(declaration_from_proto(first.declare))
        failure: list[BaseException] = []
        reader = asyncio.create_task(self._read(requests, link, failure))
        try:
            accepted = rr.WorkerAccepted(worker_id=link.worker_id)
            accepted.heartbeat_interval.FromMilliseconds(int(self._heartbeat_s * 1000))
            yield rr.ServeToolsResponse(accepted=accepted)
            async for item in link.outgoing(self._heartbeat_s):
                if item is None:
                    yield _heartbeat()
                elif isinstance(item, WorkerCancel):
                    yield rr.ServeToolsResponse(
                        cancel=rr.ToolCallCancel(call_id=item.call_id, reason=item.reason)
                    )
                else:
                    yield _call_to_proto(item)
            if failure:
                raise failure[0]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._pool.disconnect(link)

    async def _read(
        self,
        requests: AsyncIterator[rr.ServeToolsRequest],
        link: WorkerLink,
        failure: list[BaseException],
    ) -> None:
        """Hands results to the pool until the worker closes its side; then ends the link (and
        so the response side). A protocol error is kept for the response side to raise."""
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind == "result":
                    self._pool.settle(link, _reply_from_proto(request.result))
                elif kind == "drain":
                    self._pool.drain(link)
                elif kind == "declare":
                    raise InvalidArgument.single(
                        "declare", "a worker declares its tools once, in the first message"
                    )
                # heartbeat (or a kind this server does not know): nothing to do
        except asyncio.CancelledError:
            raise
        except Exception as error:  # handed to the response side
            failure.append(error)
        finally:
            self._pool.disconnect(link)
