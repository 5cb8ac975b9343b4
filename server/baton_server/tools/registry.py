"""The tools a server knows, loaded from module paths, and how a call is run safely."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from baton_server.domain import WorkerToolSpec
from baton_server.observe.telemetry import NO_TELEMETRY, Telemetry
from baton_server.tools.api import Tool, ToolContext, ToolError, ToolResult
from baton_server.tools.workers import WorkerPool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A finished call: its result, or the error that replaced it (the turn goes on)."""

    name: str
    arguments: dict[str, Any]
    result: ToolResult | None
    error: str = ""


class ToolRegistry:
    """Every tool a turn may call: Python functions loaded into the server, and the tools the
    connected workers serve (`workers`), under one set of names."""

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        *,
        timeout_s: float = 10.0,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._timeout_s = timeout_s
        self._telemetry = telemetry
        self.workers = WorkerPool(reserved=lambda name: name in self._tools)
        for item in tools:
            self.add(item)

    def add(self, item: Tool) -> None:
        if item.name in self._tools and self._tools[item.name] is not item:
            raise ValueError(f"two tools are named {item.name!r}")
        if self.workers.serves(item.name):
            raise ValueError(f"tool {item.name!r} is already served by a tool worker")
        self._tools[item.name] = item

    def load_module(self, module_path: str) -> list[str]:
        """Imports `module_path` and registers every tool declared at its top level."""
        module = importlib.import_module(module_path)
        found = [value for value in vars(module).values() if isinstance(value, Tool)]
        if not found:
            raise ValueError(f"module {module_path!r} declares no @tool functions")
        for item in found:
            self.add(item)
        return [t.name for t in found]

    def get(self, name: str) -> Tool | None:
        found = self._tools.get(name)
        if found is not None:
            return found
        spec = self.workers.spec(name)
        return None if spec is None else self._worker_tool(spec)

    def all(self) -> list[Tool]:
        names = [name for name in self.workers.tool_names() if name not in self._tools]
        found = [item for name in names if (item := self.get(name))]
        return sorted([*self._tools.values(), *found], key=lambda item: item.name)

    async def resolve(self, names: Sequence[str]) -> list[Tool]:
        """The tools of these names that exist; first asks the store for worker tools declared
        on other replicas when a name is not known here."""
        if any(self.get(name) is None for name in names):
            await self.workers.refresh()
        return [item for name in names if (item := self.get(name)) is not None]

    def _worker_tool(self, spec: WorkerToolSpec) -> Tool:
        """A worker-served tool as the engine sees any tool: calling it sends the call to one
        of the workers that serve it."""
        timeout_s = spec.timeout_s or self._timeout_s
        workers = self.workers

        async def on_a_worker(context: ToolContext, **arguments: Any) -> ToolResult:
            return await workers.call(spec.name, arguments, context, timeout_s)

        return Tool(
            spec.name,
            spec.description,
            spec.parameters,
            on_a_worker,
            timeout_s=timeout_s,
            from_worker=True,
            retry_safe=spec.retry_safe,
        )

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        """Runs a tool with a deadline. Errors and time-outs become the outcome's `error`."""
        telemetry = self._telemetry
        if not telemetry.enabled:
            return (await self._call(name, arguments, context))[0]
        started = time.perf_counter()
        with telemetry.span("baton.tool.call", {"baton.tool": name}):
            outcome, kind = await self._call(name, arguments, context)
        # Unknown names are not labels: a model may make up any number of them.
        telemetry.tool_called(
            name if kind != "unknown" else "(unknown)", kind, time.perf_counter() - started
        )
        return outcome

    async def _call(
        self, name: str, arguments: dict[str, Any], context: ToolContext
    ) -> tuple[ToolOutcome, str]:
        """The outcome, and its kind: ok, error, timeout or unknown."""
        item = self.get(name)
        if item is None:
            return ToolOutcome(name, arguments, None, f"unknown tool {name!r}"), "unknown"
        timeout_s = item.timeout_s or self._timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                # Typed to return a ToolResult, but a tool author's function may return anything.
                result: object = await item.function(context, **arguments)
        except TimeoutError:
            error = f"timed out after {timeout_s:g} s"
            return ToolOutcome(name, arguments, None, error), "timeout"
        except ToolError as error:
            return ToolOutcome(name, arguments, None, str(error)), "error"
        except Exception as error:
            log.warning("tool %s failed: %r", name, error)
            return ToolOutcome(name, arguments, None, f"{type(error).__name__}: {error}"), "error"
        if not isinstance(result, ToolResult):
            result = ToolResult(data=result)
        return ToolOutcome(name, arguments, result), "ok"
