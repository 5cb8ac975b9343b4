"""Authentication: the `authorization` metadata of a call → a Principal, or Unauthenticated.

Guessing costs the server database lookups, so those are budgeted per peer address (IPv6 by
/64): a credential that needs a lookup takes a token from its address's bucket first, and gets
it back when the lookup finds a valid key. Credentials that need no lookup (keys in the cache,
or seen valid before; malformed or badly signed ones, refused for free) never touch the budget,
so callers with real keys are not locked out by a neighbour behind the same address.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator, Iterable

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
    """The address a failure budget belongs to: the IPv4 address, or the IPv6 /64 (one host
    gets a whole /64, so counting single addresses would give it billions of budgets)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = (rest.rpartition(":")[0] or rest).strip("[]")
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return peer


class Authenticator:
    def __init__(self, keys: KeyStore, tokens: CustomerTokens, failures: RateLimiter) -> None:
        self._keys = keys
        self._tokens = tokens
        # Failed authentications per peer address (see the module docstring).
        self._failures = failures

    async def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, peer: str = ""
    ) -> Principal:
        """The principal of a call's metadata (grpc.aio's `invocation_metadata()`; binary
        values arrive as bytes)."""
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
            if key_id is None:
                raise Unauthenticated("malformed API key; check the key you send")
            async with self._lookup_budget(key_id, peer):
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
        async with self._lookup_budget(claims.issuer_key_id, peer):
            issuer = await self._keys.active(claims.issuer_key_id)
        if issuer is None or issuer.role not in (Role.ADMIN, Role.INTEGRATION):
            raise Unauthenticated("the API key that issued this customer token was revoked")
        return Principal(Role.CUSTOMER, issuer.id, claims.customer_id)

    @contextlib.asynccontextmanager
    async def _lookup_budget(self, key_id: str, peer: str) -> AsyncIterator[None]:
        """Around a key lookup: takes a token of the peer's failure budget first (so concurrent
        guesses cannot all slip past a check), and gives it back when the key turned out valid.
        Keys known to exist are looked up without a token."""
        if self._keys.is_known(key_id):
            yield
            return
        address = peer_address(peer)
        self._failures.take(address)
        yield
        if self._keys.is_known(key_id):
            self._failures.refund(address)
