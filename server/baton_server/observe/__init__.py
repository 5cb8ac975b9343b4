"""What an operator sees of a running server: Prometheus metrics, OpenTelemetry traces, logs.

Each part is off unless configured, and costs nothing then: no interceptor is installed, spans
are `nullcontext`s, metric calls return at once.
"""
