"""One object the instrumented rooms are handed: metrics and a tracer, either possibly off."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from baton_server.observe.metrics import BatonMetrics

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

SpanAttributes = Mapping[str, str | int | float | bool]


class Telemetry:
    """`metrics` None: no metrics; `tracer` None: no spans. Both None is the default, and then
    every method here returns at once."""

    def __init__(self, metrics: BatonMetrics | None = None, tracer: Tracer | None = None) -> None:
        self.metrics = metrics
        self.tracer = tracer

    @property
    def enabled(self) -> bool:
        return self.metrics is not None or self.tracer is not None

    def span(
        self, name: str, attributes: SpanAttributes | None = None
    ) -> AbstractContextManager[Span | None]:
        """A child span of the current one (as the current span inside), or nothing."""
        if self.tracer is None:
            return contextlib.nullcontext()
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def turn_ended(self, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.turn_ended(outcome, seconds)

    def nlp_called(self, provider: str, operation: str, ok: bool, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.nlp_called(provider, operation, ok, seconds)

    def tool_called(self, tool: str, outcome: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.tool_called(tool, outcome, seconds)

    def handoff_changed(self, state: str, claim_wait_s: float | None) -> None:
        if self.metrics is not None:
            self.metrics.handoff_changed(state, claim_wait_s)


NO_TELEMETRY = Telemetry()
