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

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from baton_server.api.admission import Admission
from baton_server.api.errors import decoded_stream
from baton_server.api.grpc_types import Context, Handler
from baton_server.api.interception import rewrapped
from baton_server.auth.authenticator import Authenticator
from baton_server.auth.limits import RateLimiter, StreamSlots
from baton_server.auth.policy import Authorizer, Rule
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

    async def _caller(self, method: str, context: Any) -> tuple[Principal, Rule]:
        """The principal and the method's rule, or the error that refuses the caller."""
        return await self.admission.caller(
            method, context.invocation_metadata() or (), context.peer()
        )

    async def _admit(
        self, method: str, data: bytes, deserializer: Deserializer, context: Any
    ) -> tuple[Principal, Any]:
        """The principal and the decoded request, or the error that refuses the call."""
        return await self.admission.admit(
            method, context.invocation_metadata() or (), context.peer(), data, deserializer
        )

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
            async for response in self.admission.stream_as(
                principal, lambda: behavior(request, context)
            ):
                yield response

        return handle

    def _wrap_bidi(
        self, behavior: Callable[..., AsyncIterator[Any]], method: str, deserializer: Deserializer
    ) -> Any:
        """A bidi stream (tool workers): the caller is admitted on the call's metadata before
        any message is read; its messages are decoded as they arrive."""

        async def handle(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
            principal, _ = await self._caller(method, context)
            decoded = decoded_stream(deserializer, requests)
            async for response in self.admission.stream_as(
                principal, lambda: behavior(decoded, context)
            ):
                yield response

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
            if handler.stream_stream is None:
                # Client-streaming RPCs do not exist in baton.v1; refuse rather than skip auth.
                wrapped = grpc.unary_unary_rpc_method_handler(self._refuse)
            else:
                wrapped = rewrapped(
                    handler,
                    _unused,
                    _unused,
                    lambda behavior: self._wrap_bidi(behavior, method, deserializer),
                )
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


def _unused(behavior: Any) -> Any:
    raise AssertionError("only the bidi behaviour is wrapped")
