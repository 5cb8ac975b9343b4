"""Customer tokens: an integration mints one for a customer's chat widget."""

from __future__ import annotations

from dataclasses import dataclass

from baton_server.auth.principal import Principal
from baton_server.auth.tokens import CustomerTokens
from baton_server.errors import InvalidArgument
from baton_server.store import Repository


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at_s: int


class TokenIssuer:
    def __init__(
        self, repository: Repository, tokens: CustomerTokens, default_ttl_s: int, max_ttl_s: int
    ) -> None:
        self._repo = repository
        self._tokens = tokens
        self._default_ttl_s = default_ttl_s
        self._max_ttl_s = max_ttl_s

    async def issue(
        self, caller: Principal | None, customer_id: str, ttl_s: int | None
    ) -> IssuedToken:
        """A token for an existing customer (NOT_FOUND otherwise), valid `ttl_s` seconds (the
        default when None). Revoking the caller's key revokes it; a server without
        authentication (--dev) issues unattributed ones."""
        if ttl_s is None:
            ttl_s = self._default_ttl_s
        elif not 1 <= ttl_s <= self._max_ttl_s:
            raise InvalidArgument.single(
                "ttl", f"must be between 1 s and {self._max_ttl_s} s (got {ttl_s} s)"
            )
        await self._repo.get_customer(customer_id)
        issuer = caller.key_id if caller is not None else ""
        token, expires_s = self._tokens.issue(customer_id, issuer, ttl_s)
        return IssuedToken(token, expires_s)
