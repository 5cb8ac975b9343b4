"""Authentication: the `authorization` metadata of a call → a Principal, or Unauthenticated.

Failed attempts are counted per peer address. Only an attempt that would need a database lookup
(an API key not in the cache) is refused once a peer's budget is spent, so guessing keys costs
the server no queries beyond the budget, while callers with known keys are never slowed by a
neighbour behind the same address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from baton_server.auth.keys import KEY_PREFIX, KeyStore, parse_key_id
from baton_server.auth.limits import RateLimiter
from baton_server.auth.principal import Principal, Role
from baton_server.auth.tokens import CustomerTokens, TokenError
from baton_server.errors import Unauthenticated

HOW_TO_AUTHENTICATE = (
    "send 'authorization: Bearer <credential>' metadata with an API key (an operator creates "
    "one with `baton keys create --role integration`) or a customer token "
    "(AuthService.IssueCustomerToken)"
)


def peer_address(peer: str) -> str:
    """The address part of a gRPC peer string (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0] or rest
    return peer


class Authenticator:
    def __init__(self, keys: KeyStore, tokens: CustomerTokens, failures: RateLimiter) -> None:
        self._keys = keys
        self._tokens = tokens
        # Failed authentications per peer address (see the module docstring).
        self._failures = failures

    async def authenticate(
        self, metadata: Sequence[tuple[str, Any]] | None, peer: str = ""
    ) -> Principal:
        address = peer_address(peer)
        try:
            return await self._authenticate(metadata, address)
        except Unauthenticated:
            self._failures.spend(address)
            raise

    async def _authenticate(
        self, metadata: Sequence[tuple[str, Any]] | None, address: str
    ) -> Principal:
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if not header:
            raise Unauthenticated(f"missing credentials: {HOW_TO_AUTHENTICATE}")
        if isinstance(header, bytes):
            header = header.decode(errors="replace")
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(f"malformed authorization metadata: {HOW_TO_AUTHENTICATE}")
        if credential.startswith(KEY_PREFIX):
            key_id = parse_key_id(credential)
            if key_id is not None and not self._keys.is_cached(key_id):
                self._failures.check(address)
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
        if not self._keys.is_cached(claims.issuer_key_id):
            self._failures.check(address)
        issuer = await self._keys.active(claims.issuer_key_id)
        if issuer is None or issuer.role not in (Role.ADMIN, Role.INTEGRATION):
            raise Unauthenticated("the API key that issued this customer token was revoked")
        return Principal(Role.CUSTOMER, issuer.id, claims.customer_id)
