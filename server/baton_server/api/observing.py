"""What each RPC reports when observability is on: metrics, a span, an access-log line, and the
call context of its log lines. The error-mapping interceptor calls it (one layer, not two)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc

from baton_server.api.grpc_types import Context
from baton_server.observe.context import CallInfo, bind_call, unbind_call
from baton_server.observe.logs import ACCESS_LOGGER
from baton_server.observe.telemetry import Telemetry
from baton_server.observe.tracing import context_from_metadata

access_log = logging.getLogger(ACCESS_LOGGER)


def _code_name(code: grpc.StatusCode | int | None) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return "UNKNOWN"


class _Call:
    """One RPC from arrival to status: binds its context, opens its span, reports its end."""

    __slots__ = ("_info", "_method", "_observer", "_scope", "_span", "_start", "_stream", "_token")

    def __init__(self, observer: CallObserver, method: str, context: Context, stream: bool) -> None:
        self._observer = observer
        self._method = method
        self._stream = stream
        self._start = time.perf_counter()
        self._info = CallInfo(method=method)
        self._token = bind_call(self._info)
        self._span: Any = None
        self._scope: Any = None
        telemetry = observer.telemetry
        if stream and telemetry.metrics is not None:
            telemetry.metrics.stream_opened(method)
        if telemetry.tracer is not None:
            from opentelemetry import trace

            service, _, name = method.lstrip("/").partition("/")
            self._span = telemetry.tracer.start_span(
                method.lstrip("/"),
                context=context_from_metadata(context.invocation_metadata()),
                kind=trace.SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            )
            self._scope = trace.use_span(self._span, end_on_exit=False)
            self._scope.__enter__()

    def end(self, code: str) -> None:
        seconds = time.perf_counter() - self._start
        observer = self._observer
        metrics = observer.telemetry.metrics
        if metrics is not None:
            metrics.rpc_done(self._method, code, seconds)
            if self._stream:
                metrics.stream_closed(self._method)
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("rpc.grpc.status_code", code)
            if code != "OK":
                self._span.set_status(Status(StatusCode.ERROR, code))
            self._scope.__exit__(None, None, None)
            self._span.end()
        if observer.access_log:
            access_log.info(
                "%s %s %.1f ms caller=%s",
                self._method,
                code,
                seconds * 1000,
                self._info.caller or "-",
                extra={
                    "rpc_method": self._method,
                    "code": code,
                    "duration_ms": round(seconds * 1000, 3),
                    "caller": self._info.caller,
                },
            )
        # A stream's generator may be closed from another context: nothing left to reset then.
        try:
            unbind_call(self._token)
        except ValueError:
            pass


def outcome_of(error: BaseException, context: Context) -> str:
    """The status code name an RPC ended with, from what ended it."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return _code_name(context.code()) if isinstance(error, grpc.aio.AbortError) else "UNKNOWN"


class CallObserver:
    """Built only when metrics, tracing, JSON logs or the access log are on."""

    def __init__(self, telemetry: Telemetry, *, access_log: bool) -> None:
        self.telemetry = telemetry
        self.access_log = access_log

    def begin(self, method: str, context: Context, *, stream: bool = False) -> _Call:
        return _Call(self, method, context, stream)
