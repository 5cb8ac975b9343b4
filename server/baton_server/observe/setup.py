"""Builds the server's telemetry from its settings and the OTEL_* environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baton_server.config import Settings
from baton_server.observe.metrics import BatonMetrics
from baton_server.observe.telemetry import Telemetry
from baton_server.observe.tracing import TRACER_NAME, exporter_from_environment, tracer_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import TracerProvider as AnyTracerProvider


@dataclass(slots=True)
class BuiltTelemetry:
    telemetry: Telemetry
    # A provider the server made (from OTEL_* variables) and must shut down (flushing spans).
    owned_provider: TracerProvider | None = None

    def shutdown(self) -> None:
        if self.owned_provider is not None:
            self.owned_provider.shutdown()


def build_telemetry(
    settings: Settings,
    provider: AnyTracerProvider | None = None,
    env: Mapping[str, str] = os.environ,
) -> BuiltTelemetry:
    """Metrics when --metrics-port is set; spans from `provider` (tests) or from the OTEL_*
    variables (off when they name no exporter)."""
    metrics = BatonMetrics() if settings.metrics_port is not None else None
    owned = None
    if provider is None:
        exporter = exporter_from_environment(env)
        if exporter is not None:
            provider = owned = tracer_provider(exporter)
    tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None
    return BuiltTelemetry(Telemetry(metrics, tracer), owned)
