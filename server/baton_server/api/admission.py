"""Admission: who may make a call, checked before it runs, whichever transport carried it.

Authentication comes first, before the request is even decoded: an anonymous or unknown caller
costs the server the credential check and nothing more, however big its request. Then the
caller's role for the method, its rate, the decoding of the request and the policy's checks of
it. The gRPC interceptor (auth_interceptor.py) and the Connect/gRPC-Web transport (web/) both
call `admit`; errors are Baton errors, mapped to statuses by api/errors.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from baton_server.api.errors import decode_request
from baton_server.auth.authenticator import Authenticator
from baton_server.auth.limits import RateLimiter, StreamSlots
from baton_server.auth.policy import Authorizer, Rule
from baton_server.auth.principal import Principal, Role, reset_principal, set_principal
from baton_server.observe.context import note_caller

Deserializer = Callable[[bytes], Any]
Metadata = Iterable[tuple[str, str | bytes]]


class Admission:
    def __init__(
        self,
        authenticator: Authenticator,
        authorizer: Authorizer,
        key_rates: RateLimiter,
        customer_rates: RateLimiter,
        key_streams: StreamSlots,
        customer_streams: StreamSlots,
    ) -> None:
        self._authn = authenticator
        self._authz = authorizer
        self._key_rates = key_rates
        self._customer_rates = customer_rates
        self._key_streams = key_streams
        self._customer_streams = customer_streams

    async def admit(
        self, method: str, metadata: Metadata, peer: str, data: bytes, deserializer: Deserializer
    ) -> tuple[Principal, Any]:
        """The principal and the decoded request, or the error that refuses the call.
        `method` is the full gRPC name ("/baton.v1.EventService/ListEvents"), `metadata` the
        call's headers (lower-case names), `peer` gRPC's form of the caller's address."""
        principal, rule = await self.caller(method, metadata, peer)
        request = decode_request(deserializer, data)
        await self._authz.check_request(principal, rule, request)
        return principal, request

    async def caller(self, method: str, metadata: Metadata, peer: str) -> tuple[Principal, Rule]:
        """The principal and the method's rule, or the error that refuses the caller (before
        any request is read: streams of requests are admitted on this alone)."""
        principal = await self._authn.authenticate(metadata, peer)
        rule = self._authz.check_role(principal, method)
        rates = self._customer_rates if principal.role is Role.CUSTOMER else self._key_rates
        rates.take(principal.limit_key)
        note_caller(principal.limit_key if principal.role is Role.CUSTOMER else principal.key_id)
        return principal, rule

    def streams(self, principal: Principal) -> StreamSlots:
        """The open-stream budget this principal's streams count against."""
        if principal.role is Role.CUSTOMER:
            return self._customer_streams
        return self._key_streams

    async def stream_as(
        self, principal: Principal, responses: Callable[[], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        """A stream's responses, run as `principal` and holding one of its stream slots until
        the stream ends (or the client goes away). The handler is called here, after the
        principal is set: some read it when called, not only while iterated."""
        slots = self.streams(principal)
        slots.acquire(principal.limit_key)
        token = set_principal(principal)
        try:
            async for response in responses():
                yield response
        finally:
            slots.release(principal.limit_key)
            # The call's task ends with the stream; a generator closed elsewhere may not reset
            # its context, which is harmless.
            with contextlib.suppress(ValueError):
                reset_principal(token)
