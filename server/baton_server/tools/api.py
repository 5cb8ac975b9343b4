"""Tool declaration: the decorator, the context a tool gets and the result it returns."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from baton_server.domain import Event, EventKind

ToolFunction = Callable[..., Awaitable["ToolResult"]]

_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returns. `data` is shown to the model and recorded in the tool event;
    `control={"mode": "manual"}` hands the session to humans (in the tool event's transaction)."""

    # Any JSON value (Baton only records it and shows it to the model).
    data: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    control: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where a tool runs: the session, its agent and customer, and read access to its log."""

    session_id: str
    agent_id: str
    customer_id: str
    correlation_id: str
    _read_events: Callable[[int, Sequence[EventKind]], Awaitable[list[Event]]]

    async def read_events(
        self, min_offset: int = 0, kinds: Sequence[EventKind] = ()
    ) -> list[Event]:
        """The session's committed events from `min_offset`, optionally only some kinds."""
        return await self._read_events(min_offset, kinds)


class ToolError(Exception):
    """Raised by a tool to fail its call with this message (recorded as the call's error, and
    the turn goes on)."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the keyword arguments
    function: ToolFunction
    # How long a call may take; None: the registry's default.
    timeout_s: float | None = None
    # Served by tool workers (ToolWorkerService), not a function loaded into the server.
    from_worker: bool = False
    # A call may run again elsewhere if its worker disconnects mid-call (worker tools).
    retry_safe: bool = False


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


def parameters_schema(function: ToolFunction) -> dict[str, Any]:
    """JSON Schema of a tool's parameters (all but the leading ToolContext), from annotations."""
    hints = typing.get_type_hints(function)
    signature = inspect.signature(function)
    names = list(signature.parameters)[1:]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name in names:
        parameter = signature.parameters[name]
        if name not in hints:
            raise TypeError(f"tool parameter {name!r} of {function.__name__} needs a type hint")
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
def tool(function: ToolFunction, *, name: str | None = None, description: str = "") -> Tool: ...


@overload
def tool(
    function: None = None, *, name: str | None = None, description: str = ""
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | None = None, *, name: str | None = None, description: str = ""
) -> Tool | Callable[[ToolFunction], Tool]:
    """Declares an `async def f(context: ToolContext, ...) -> ToolResult` as a tool (`@tool` or
    `@tool(name=..., description=...)`)."""

    def declare(fn: ToolFunction) -> Tool:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool {fn.__name__} must be an async function")
        doc = description or inspect.getdoc(fn) or ""
        return Tool(name or fn.__name__, doc, parameters_schema(fn), fn)

    return declare(function) if function is not None else declare
