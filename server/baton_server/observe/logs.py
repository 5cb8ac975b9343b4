"""Log output: text for people, JSON lines for log pipelines; both carry the call's context.

python-json-logger writes the JSON (escaping, exceptions, extra fields) so Baton does not keep
a formatter of its own; `CallContextFilter` adds what the running call is about.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from baton_server.observe.context import current_call

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Every RPC, one line each, when --access-log is on (INFO, on this logger).
ACCESS_LOGGER = "baton.access"


class CallContextFilter(logging.Filter):
    """Adds rpc_method, session_id, handoff_id and trace_id to a record where they are known."""

    def __init__(self, with_trace_ids: bool) -> None:
        super().__init__()
        self._with_trace_ids = with_trace_ids

    def filter(self, record: logging.LogRecord) -> bool:
        call = current_call()
        if call is not None:
            if call.method and not hasattr(record, "rpc_method"):
                record.rpc_method = call.method
            if call.session_id:
                record.session_id = call.session_id
            if call.handoff_id:
                record.handoff_id = call.handoff_id
        if self._with_trace_ids:
            from opentelemetry import trace

            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_logging(
    log_format: str, level: str, *, with_trace_ids: bool = False, stream: TextIO | None = None
) -> None:
    """Replaces the root logger's handlers with one writing `log_format` to `stream` (stderr)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(CallContextFilter(with_trace_ids))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
