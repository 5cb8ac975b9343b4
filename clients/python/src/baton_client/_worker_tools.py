"""Tools a `ToolWorker` serves: the decorator, the call a handler gets and what it returns.

The parameters' JSON Schema comes from the handler's type hints, by the rules the server uses
for its own Python tools (server/baton_server/tools/api.py), so a tool moved out of the server
into a worker declares the same schema.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration

from baton.v1 import request_response_pb2 as rr

__all__ = [
    "ToolResult",
    "WorkerCall",
    "WorkerTool",
    "handoff",
    "parameters_schema",
    "worker_tool",
]

_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
#: The server refuses a per-tool timeout above this (ToolDeclaration.timeout).
MAX_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a handler returns (a handler may also return any JSON value: it becomes `data`).

    `data` is shown to the model and recorded in the TOOL event; `control={"mode": "manual"}`
    hands the session to humans, as a Python tool's control does (see `handoff`)."""

    data: Any = None
    control: Mapping[str, str] = field(default_factory=dict)


def handoff(reason: str, data: Any = None) -> ToolResult:
    """A result that opens a handoff: control `{"mode": "manual", "reason": reason}`."""
    return ToolResult(data=data, control={"mode": "manual", "reason": reason})


@dataclass(frozen=True, slots=True)
class WorkerCall:
    """One call the server sent: who made it, until when it may run, and its raw arguments."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    session_id: str
    agent_id: str
    customer_id: str
    #: The turn's correlation id (the customer message that started it).
    correlation_id: str
    #: After this (UTC) the server no longer waits for the result; None: no deadline sent.
    deadline: datetime | None
    #: 1 for the first attempt; more when a retry-safe call is sent again.
    attempt: int
    #: The worker id the server gave the stream this call came on, and its target.
    worker_id: str = ""
    target: str = ""

    @classmethod
    def from_request(cls, request: rr.ToolCallRequest, worker_id: str, target: str) -> WorkerCall:
        deadline = None
        if request.HasField("deadline"):
            deadline = request.deadline.ToDatetime(tzinfo=UTC)
        return cls(
            call_id=request.call_id,
            tool=request.tool,
            arguments=json_format.MessageToDict(request.arguments),
            session_id=request.session_id,
            agent_id=request.agent_id,
            customer_id=request.customer_id,
            correlation_id=request.correlation_id,
            deadline=deadline,
            attempt=request.attempt,
            worker_id=worker_id,
            target=target,
        )


#: `async def handler(call: WorkerCall, **arguments) -> ToolResult | JSON value`.
Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WorkerTool:
    """A tool as a worker declares it; made by `@worker_tool`."""

    name: str
    description: str
    #: JSON Schema (an object schema) of the handler's keyword arguments.
    parameters: dict[str, Any]
    handler: Handler
    #: Seconds a call may take (None: the server's default), at most 600.
    timeout: float | None = None
    #: Whether the server may run a call again on another worker after this one disconnects.
    retry_safe: bool = False

    def __post_init__(self) -> None:
        if self.timeout is not None and not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout of {self.name} must be in (0, {MAX_TIMEOUT:g}] seconds")
        if self.parameters.get("type") != "object":
            raise ValueError(
                f'parameters of {self.name} must be an object schema ("type": "object")'
            )

    def declaration(self) -> rr.ToolDeclaration:
        declared = rr.ToolDeclaration(
            name=self.name, description=self.description, retry_safe=self.retry_safe
        )
        declared.parameters.update(self.parameters)
        if self.timeout is not None:
            declared.timeout.CopyFrom(_duration(self.timeout))
        return declared

    async def run(self, call: WorkerCall) -> ToolResult:
        """Calls the handler with the call's arguments (integers the JSON wire turned into
        floats made integers again where the schema says so)."""
        arguments = _coerce(call.arguments, self.parameters)
        try:
            inspect.signature(self.handler).bind(call, **arguments)
        except TypeError as error:
            raise BadArguments(f"bad arguments for {self.name}: {error}") from None
        returned = await self.handler(call, **arguments)
        return returned if isinstance(returned, ToolResult) else ToolResult(data=returned)


class BadArguments(Exception):
    """The arguments of a call do not fit the handler's parameters."""


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _coerce(arguments: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return arguments
    return {name: _coerce_value(value, properties.get(name)) for name, value in arguments.items()}


def _coerce_value(value: Any, schema: object) -> Any:
    if not isinstance(schema, Mapping):
        return value
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "array" and isinstance(value, list):
        return [_coerce_value(item, schema.get("items")) for item in value]
    return value


def _schema_for(annotation: object) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return _schema_for(options[0])
    if origin in (list, Sequence, tuple):
        args = typing.get_args(annotation)
        return {"type": "array", "items": _schema_for(args[0]) if args else {}}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    raise TypeError(f"unsupported tool parameter type {annotation!r}")


def parameters_schema(handler: Handler) -> dict[str, Any]:
    """JSON Schema of a handler's parameters (all but the leading `WorkerCall`), from its type
    hints: str, int, float, bool, list/Sequence/tuple of them, Literal, Optional, dict. A
    parameter without a default is required."""
    hints = typing.get_type_hints(handler)
    signature = inspect.signature(handler)
    names = list(signature.parameters)[1:]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name in names:
        parameter = signature.parameters[name]
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"{handler.__name__}: give an explicit schema (parameters=) for *{name}"
            )
        if name not in hints:
            raise TypeError(f"tool parameter {name!r} of {handler.__name__} needs a type hint")
        properties[name] = _schema_for(hints[name])
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


@overload
def worker_tool(
    handler: Handler,
    *,
    name: str | None = None,
    description: str = "",
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    retry_safe: bool = False,
) -> WorkerTool: ...


@overload
def worker_tool(
    handler: None = None,
    *,
    name: str | None = None,
    description: str = "",
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    retry_safe: bool = False,
) -> Callable[[Handler], WorkerTool]: ...


def worker_tool(
    handler: Handler | None = None,
    *,
    name: str | None = None,
    description: str = "",
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    retry_safe: bool = False,
) -> WorkerTool | Callable[[Handler], WorkerTool]:
    """Declares `async def f(call: WorkerCall, order_id: str) -> ToolResult | JSON` as a tool a
    `ToolWorker` serves (`@worker_tool` or `@worker_tool(description=..., timeout=...)`).

    The name defaults to the function's, the description to its docstring, the parameters'
    JSON Schema to one derived from its type hints (`parameters=` gives it explicitly; the
    handler then takes the arguments as keywords, e.g. `**arguments`). `timeout` (seconds, at
    most 600) overrides the server's default; `retry_safe=True` lets the server run a call
    again on another worker when this one disconnects mid-call."""

    def declare(fn: Handler) -> WorkerTool:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool {fn.__name__} must be an async function")
        schema = dict(parameters) if parameters is not None else parameters_schema(fn)
        return WorkerTool(
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
            parameters=schema,
            handler=fn,
            timeout=timeout,
            retry_safe=retry_safe,
        )

    return declare(handler) if handler is not None else declare


def result_message(call_id: str, result: ToolResult) -> rr.ToolCallResult:
    """The wire form of a handler's result; data that is not JSON becomes an error result."""
    message = rr.ToolCallResult(call_id=call_id)
    try:
        message.data.CopyFrom(json_format.ParseDict(_plain(result.data), struct_pb2.Value()))
    except (TypeError, ValueError, json_format.ParseError) as error:
        return error_message(call_id, f"the tool returned data that is not JSON: {error}")
    for key, value in result.control.items():
        message.control[str(key)] = str(value)
    return message


def error_message(call_id: str, error: str) -> rr.ToolCallResult:
    return rr.ToolCallResult(call_id=call_id, error=error or "the tool failed")


def _plain(value: Any) -> Any:
    """Checks that a value is JSON (ParseDict would turn a tuple or a NaN into odd data)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("object keys must be strings")
        return {key: _plain(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} is not JSON")
