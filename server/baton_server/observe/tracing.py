"""OpenTelemetry tracing, configured from the standard OTEL_* environment variables.

On when OTEL_TRACES_EXPORTER names an exporter (otlp, console) or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); off when OTEL_SDK_DISABLED
is true or the exporter is "none". Off, the SDK is not even imported. The service name is
OTEL_SERVICE_NAME (default "baton"); sampling (OTEL_TRACES_SAMPLER) and batching (OTEL_BSP_*)
follow the SDK's own variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACER_NAME = "baton"


class TracingConfigError(ValueError):
    """OTEL_* variables that name something Baton cannot export to."""


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = ["otlp"] if endpoint else []
    return [] if names == ["none"] else names


def tracing_requested(env: Mapping[str, str]) -> bool:
    return bool(_exporter_names(env))


def exporter_from_environment(env: Mapping[str, str]) -> SpanExporter | None:
    """The span exporter the environment asks for, or None (tracing off)."""
    names = _exporter_names(env)
    if not names:
        return None
    if len(names) > 1:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER: one exporter, not {names}")
    name = names[0]
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")


def tracer_provider(exporter: SpanExporter, *, batch: bool = True) -> TracerProvider:
    """A provider exporting to `exporter` (batched; `batch=False` exports each span as it ends,
    which tests use with an in-memory exporter)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", "baton")
    # Also reads OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create({"service.name": name})
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


def context_from_metadata(metadata: object) -> Context:
    """The caller's trace context, from W3C `traceparent`/`tracestate` gRPC metadata."""
    from opentelemetry.propagate import extract

    carrier: dict[str, str] = {}
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if isinstance(value, str):
            carrier[key] = value
    return extract(carrier)
