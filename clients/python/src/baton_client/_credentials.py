"""Credentials: an API key or a customer token, fixed or from a provider called when needed."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from baton.v1 import request_response_pb2 as rr

__all__ = ["Credentials", "Token", "TokenProvider"]


@dataclass(frozen=True, slots=True)
class Token:
    """A credential and, when known, when it stops being accepted (UNIX seconds or datetime)."""

    value: str
    expires_at: float | datetime | None = None

    @property
    def expiry(self) -> float | None:
        if isinstance(self.expires_at, datetime):
            return self.expires_at.timestamp()
        return self.expires_at


#: What a provider may return (or an awaitable of it): the token string (cached until the server
#: answers UNAUTHENTICATED), a `Token` with its expiry, or the `IssueCustomerTokenResponse` of
#: `client.auth.issue_customer_token` (its `expire_time` is used).
ProvidedToken = str | Token | rr.IssueCustomerTokenResponse
#: A function the client calls when it needs a credential: sync or async, no arguments.
TokenProvider = Callable[[], ProvidedToken | Awaitable[ProvidedToken]]


def _as_token(provided: ProvidedToken) -> Token:
    if isinstance(provided, Token):
        return provided
    if isinstance(provided, rr.IssueCustomerTokenResponse):
        expiry = None
        if provided.HasField("expire_time"):
            expiry = provided.expire_time.ToNanoseconds() / 1e9
        return Token(provided.token, expiry)
    if isinstance(provided, str):
        return Token(provided)
    raise TypeError(f"a token provider returned {type(provided).__name__}, not a str or Token")


class Credentials:
    """The bearer credential of a client: fixed (`Credentials("bk_key_...")`) or from a
    provider (`Credentials(provider=fetch)`).

    A provider's token is cached until `refresh_margin` seconds before its expiry (when it
    has one; at most a quarter of the token's remaining lifetime when fetched, so a token
    that lives a minute or less is not fetched again on every call), or until
    `invalidate()`; the client invalidates it when the server answers UNAUTHENTICATED and
    retries that call once with a fresh token. Concurrent calls that need a token share one
    provider call.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        provider: TokenProvider | None = None,
        refresh_margin: float = 60.0,
    ) -> None:
        if (token is None) == (provider is None):
            raise ValueError("give either a token or a provider")
        self._fixed = token
        self._provider = provider
        self._margin = refresh_margin
        self._cached: Token | None = None
        # The refresh margin of the cached token: refresh_margin, capped at a quarter of the
        # lifetime it had when fetched.
        self._cached_margin = refresh_margin
        self._lock: asyncio.Lock | None = None
        #: How many times the provider was called.
        self.fetches = 0

    @property
    def refreshable(self) -> bool:
        """Whether asking again may give another credential (a provider, not a fixed token)."""
        return self._provider is not None

    def _fresh(self, token: Token | None) -> bool:
        if token is None:
            return False
        expiry = token.expiry
        return expiry is None or time.time() < expiry - self._cached_margin

    async def token(self) -> str:
        """The credential to send now (calling the provider if the cached one is stale)."""
        if self._fixed is not None:
            return self._fixed
        cached = self._cached
        if cached is not None and self._fresh(cached):
            return cached.value
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._cached is not None and self._fresh(self._cached):
                return self._cached.value
            assert self._provider is not None
            result = self._provider()
            provided = await result if inspect.isawaitable(result) else result
            self.fetches += 1
            token = _as_token(provided)
            expiry = token.expiry
            margin = self._margin
            if expiry is not None:
                margin = min(margin, max(0.0, expiry - time.time()) / 4)
            self._cached, self._cached_margin = token, margin
            return token.value

    def invalidate(self, rejected: str | None = None) -> bool:
        """Forgets the cached token (only if it is still `rejected`, when given); True when a
        provider may supply another one."""
        if self._provider is None:
            return False
        if rejected is None or (self._cached is not None and self._cached.value == rejected):
            self._cached = None
        return True
