"""The outermost interceptor: each RPC's metrics, span, access-log line and log context."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from baton_server.api.grpc_types import Context, Handler
from baton_server.api.interception import rewrapped
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

    __slots__ = ("_info", "_method", "_observer", "_scope", "_span", "_start", "_token")

    def __init__(self, observer: ObservingInterceptor, method: str, context: Context) -> None:
        self._observer = observer
        self._method = method
        self._start = time.perf_counter()
        self._info = CallInfo(method=method)
        self._token = bind_call(self._info)
        self._span: Any = None
        self._scope: Any = None
        tracer = observer.telemetry.tracer
        if tracer is not None:
            from opentelemetry import trace

            service, _, name = method.lstrip("/").partition("/")
            self._span = tracer.start_span(
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
        if observer.telemetry.metrics is not None:
            observer.telemetry.metrics.rpc_done(self._method, code, seconds)
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


def _outcome(error: BaseException, context: Context) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return _code_name(context.code()) if isinstance(error, grpc.aio.AbortError) else "UNKNOWN"


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Installed only when metrics, tracing, JSON logs or the access log are on."""

    def __init__(self, telemetry: Telemetry, *, access_log: bool) -> None:
        self.telemetry = telemetry
        self.access_log = access_log
        self._cache: dict[str, Handler] = {}

    def _wrap_unary(self, behavior: Callable[..., Awaitable[Any]], method: str) -> Any:
        async def handle(request: Any, context: Context) -> Any:
            call = _Call(self, method, context)
            try:
                response = await behavior(request, context)
            except BaseException as error:
                call.end(_outcome(error, context))
                raise
            call.end("OK")
            return response

        return handle

    def _wrap_stream(self, behavior: Callable[..., AsyncIterator[Any]], method: str) -> Any:
        metrics = self.telemetry.metrics

        async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(self, method, context)
            if metrics is not None:
                metrics.stream_opened(method)
            code = "OK"
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as error:
                code = _outcome(error, context)
                raise
            finally:
                if metrics is not None:
                    metrics.stream_closed(method)
                call.end(code)

        return handle

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        deserializer = handler.request_deserializer
        wrapped = rewrapped(
            handler,
            lambda behavior: self._wrap_unary(behavior, method),
            lambda behavior: self._wrap_stream(behavior, method),
        )
        if deserializer is not None:
            # rewrapped hands over raw bytes: decode as the inner handler expected.
            wrapped = _decoding(wrapped, deserializer)
        self._cache[method] = wrapped
        return wrapped


def _decoding(handler: Handler, deserializer: Callable[[bytes], Any]) -> Handler:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            handler.unary_unary,
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    assert handler.unary_stream is not None
    return grpc.unary_stream_rpc_method_handler(
        handler.unary_stream,
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )
