"""The auth interceptor: authenticates each call, applies the per-caller limits and the policy,
and makes the principal available to the handler (see auth/principal.py).

Authentication comes first, before the request is even decoded: an anonymous or unknown caller
costs the server the metadata check and nothing more, however big its request. The handler it
returns takes the raw request bytes (`request_deserializer=None`) and decodes them itself once
the caller is admitted; the error mapping around it leaves decoding to it.

It sits inside ErrorMappingInterceptor, so its errors become the same rich statuses as every
other error (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED with RetryInfo).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from baton_server.api.admission import Admission
from baton_server.api.grpc_types import Context, Handler
from baton_server.api.interception import rewrapped
from baton_server.auth.authenticator import Authenticator
from baton_server.auth.limits import RateLimiter, StreamSlots
from baton_server.auth.policy import Authorizer
from baton_server.auth.principal import Principal, reset_principal, set_principal

# Open without credentials: load balancers probe health, tools discover the API.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

Deserializer = Callable[[bytes], Any]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        authenticator: Authenticator,
        authorizer: Authorizer,
        key_rates: RateLimiter,
        customer_rates: RateLimiter,
        key_streams: StreamSlots,
        customer_streams: StreamSlots,
    ) -> None:
        # The transport-free checks, shared with the Connect/gRPC-Web transport (web/).
        self.admission = Admission(
            authenticator, authorizer, key_rates, customer_rates, key_streams, customer_streams
        )
        self._cache: dict[str, Handler] = {}

    async def _admit(
        self, method: str, data: bytes, deserializer: Deserializer, context: Any
    ) -> tuple[Principal, Any]:
        """The principal and the decoded request, or the error that refuses the call."""
        return await self.admission.admit(
            method, context.invocation_metadata() or (), context.peer(), data, deserializer
        )

    def _streams(self, principal: Principal) -> StreamSlots:
        return self.admission.streams(principal)

    def _wrap_unary(
        self, behavior: Callable[..., Awaitable[Any]], method: str, deserializer: Deserializer
    ) -> Any:
        async def handle(data: bytes, context: Context) -> Any:
            principal, request = await self._admit(method, data, deserializer, context)
            token = set_principal(principal)
            try:
                return await behavior(request, context)
            finally:
                reset_principal(token)

        return handle

    def _wrap_stream(
        self, behavior: Callable[..., AsyncIterator[Any]], method: str, deserializer: Deserializer
    ) -> Any:
        async def handle(data: bytes, context: Context) -> AsyncIterator[Any]:
            principal, request = await self._admit(method, data, deserializer, context)
            slots = self._streams(principal)
            slots.acquire(principal.limit_key)
            token = set_principal(principal)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                slots.release(principal.limit_key)
                # The RPC's task ends with the stream; a generator closed elsewhere may not
                # reset its context, which is harmless.
                with contextlib.suppress(ValueError):
                    reset_principal(token)

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
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        deserializer = handler.request_deserializer or (lambda data: data)
        wrapped: Handler
        if handler.unary_unary is None and handler.unary_stream is None:
            # Client-streaming RPCs do not exist in baton.v1; refuse rather than skip auth.
            wrapped = grpc.unary_unary_rpc_method_handler(self._refuse)
        else:
            wrapped = rewrapped(
                handler,
                lambda behavior: self._wrap_unary(behavior, method, deserializer),
                lambda behavior: self._wrap_stream(behavior, method, deserializer),
            )
        self._cache[method] = wrapped
        return wrapped

    async def _refuse(self, request: Any, context: Context) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming requests are not served")
