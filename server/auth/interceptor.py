"""The auth interceptor: authenticates each call, applies the policy and the per-caller limits,
and makes the principal available to the handler (see principal.py).

It sits inside ErrorMappingInterceptor, so its errors become the same rich statuses as every
other error (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED with RetryInfo).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from baton_server.auth.keys import KEY_PREFIX, KeyStore
from baton_server.auth.limits import RateLimiter, StreamSlots
from baton_server.auth.policy import Authorizer
from baton_server.auth.principal import (
    Principal,
    Role,
    reset_principal,
    set_principal,
)
from baton_server.auth.tokens import CustomerTokens, TokenError
from baton_server.errors import Unauthenticated

# Open without credentials: load balancers probe health, tools discover the API.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_HOW = (
    "send 'authorization: Bearer <credential>' metadata with an API key (an operator creates "
    "one with `baton keys create --role integration`) or a customer token "
    "(AuthService.IssueCustomerToken)"
)


class Authenticator:
    """Turns the `authorization` metadata into a Principal, or raises Unauthenticated."""

    def __init__(self, keys: KeyStore, tokens: CustomerTokens) -> None:
        self._keys = keys
        self._tokens = tokens

    async def authenticate(self, metadata: Sequence[tuple[str, Any]] | None) -> Principal:
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if not header:
            raise Unauthenticated(f"missing credentials: {_HOW}")
        if isinstance(header, bytes):
            header = header.decode(errors="replace")
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(f"malformed authorization metadata: {_HOW}")
        if credential.startswith(KEY_PREFIX):
            key = await self._keys.verify(credential)
            if key is None:
                raise Unauthenticated(
                    "unknown or revoked API key; check the key or create a new one "
                    "(`baton keys create`)"
                )
            return Principal(key.role, key.id, operator_id=key.operator_id)
        try:
            claims = self._tokens.verify(credential)
        except TokenError as error:
            raise Unauthenticated(str(error)) from None
        issuer = await self._keys.active(claims.issuer_key_id)
        if issuer is None or issuer.role not in (Role.ADMIN, Role.INTEGRATION):
            raise Unauthenticated("the API key that issued this customer token was revoked")
        return Principal(Role.CUSTOMER, issuer.id, claims.customer_id)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        authenticator: Authenticator,
        authorizer: Authorizer,
        key_rates: RateLimiter,
        customer_rates: RateLimiter,
        stream_slots: StreamSlots,
    ) -> None:
        self._authn = authenticator
        self._authz = authorizer
        self._key_rates = key_rates
        self._customer_rates = customer_rates
        self._streams = stream_slots
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    async def _admit(
        self, method: str, request: Any, context: grpc.aio.ServicerContext
    ) -> Principal:
        principal = await self._authn.authenticate(context.invocation_metadata())
        rule = self._authz.check_role(principal, method)
        rates = self._customer_rates if principal.role is Role.CUSTOMER else self._key_rates
        rates.take(principal.limit_key)
        # An undecodable request is rejected by the error mapping right after; nothing to check.
        if isinstance(request, Message):
            await self._authz.check_request(principal, rule, request)
        return principal

    def _wrap_unary(self, behavior: Callable[..., Awaitable[Any]], method: str) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            principal = await self._admit(method, request, context)
            token = set_principal(principal)
            try:
                return await behavior(request, context)
            finally:
                reset_principal(token)

        return handle

    def _wrap_stream(self, behavior: Callable[..., AsyncIterator[Any]], method: str) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            principal = await self._admit(method, request, context)
            self._streams.acquire(principal.limit_key)
            token = set_principal(principal)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                self._streams.release(principal.limit_key)
                # The RPC's task ends with the stream; a generator closed elsewhere may not
                # reset its context, which is harmless.
                with contextlib.suppress(ValueError):
                    reset_principal(token)

        return handle

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        wrapped = handler
        if handler.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None:
            wrapped = grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        else:
            # Client-streaming RPCs do not exist in baton.v1; refuse rather than skip auth.
            wrapped = grpc.unary_unary_rpc_method_handler(self._refuse)
        self._cache[method] = wrapped
        return wrapped

    async def _refuse(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming requests are not served")
