"""An NLPProvider that reports each call's latency and failures (metrics) and span (traces)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from baton_server.nlp.base import GuidelineMatch, NLPProvider, ToolCallPlan, TurnContext
from baton_server.observe.telemetry import Telemetry
from baton_server.tools.api import Tool
from baton_server.tools.registry import ToolOutcome

T = TypeVar("T")


class ObservedProvider:
    """Wraps `inner`; the engine uses it when metrics or tracing are on."""

    def __init__(self, inner: NLPProvider, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self.name = inner.name

    async def _observed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        telemetry = self._telemetry
        started = time.perf_counter()
        ok = False
        try:
            with telemetry.span(f"baton.nlp.{operation}", {"baton.nlp.provider": self.name}):
                result = await call()
            ok = True
            return result
        finally:
            telemetry.nlp_called(self.name, operation, ok, time.perf_counter() - started)

    async def match_guidelines(self, context: TurnContext) -> list[GuidelineMatch]:
        return await self._observed(
            "match_guidelines", lambda: self._inner.match_guidelines(context)
        )

    async def plan_tool_calls(
        self, context: TurnContext, matches: list[GuidelineMatch], tools: list[Tool]
    ) -> list[ToolCallPlan]:
        return await self._observed(
            "plan_tool_calls", lambda: self._inner.plan_tool_calls(context, matches, tools)
        )

    async def write_reply(
        self,
        context: TurnContext,
        matches: list[GuidelineMatch],
        outcomes: list[ToolOutcome],
        on_delta: Callable[[str], None],
    ) -> str:
        return await self._observed(
            "write_reply", lambda: self._inner.write_reply(context, matches, outcomes, on_delta)
        )
