"""One object the instrumented rooms are handed: metrics and a tracer, either possibly off."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from baton_server.observe.metrics import BatonMetrics

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from baton_server.domain import Event

SpanAttributes = Mapping[str, str | int | float | bool]
# Trace contexts kept for events whose follow-up work may start a span (an engine turn).
TRACED_EVENTS_KEPT = 4096


class Telemetry:
    """`metrics` None: no metrics; `tracer` None: no spans. Both None is the default, and then
    every method here returns at once."""

    def __init__(self, metrics: BatonMetrics | None = None, tracer: Tracer | None = None) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self._contexts: OrderedDict[str, object] = OrderedDict()

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

    def child_span(
        self, name: str, of_event: str, attributes: SpanAttributes | None = None
    ) -> AbstractContextManager[Span | None]:
        """A span in the trace of the call that appended event `of_event` (a root span if that
        is not known), as the current span inside."""
        if self.tracer is None:
            return contextlib.nullcontext()
        parent: Context | None = self._contexts.pop(of_event, None)  # type: ignore[assignment]
        return self.tracer.start_as_current_span(name, context=parent, attributes=attributes)

    def appended_in(self, events: Sequence[Event], context: object) -> None:
        """Remembers the trace context `events` were appended in (the store calls this)."""
        contexts = self._contexts
        for event in events:
            contexts[event.id] = context
        while len(contexts) > TRACED_EVENTS_KEPT:
            contexts.popitem(last=False)

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
