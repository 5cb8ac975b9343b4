"""Customer tokens: short-lived JWTs (HS256, PyJWT) an integration mints for one customer.

Claims: `sub` customer id, `key` the issuing API key (revoking it revokes its tokens), `iat`,
`exp`, and fixed `iss`/`aud` so a JWT made for another system with the same secret is refused.
The header's `kid` names which secret signed it (a digest, never the secret).

Signing secrets live outside the database (flag, environment or file), so a database backup or
replica cannot mint tokens. Rotation: sign with the new secret and keep accepting the previous
ones until the tokens they signed have expired (at most the maximum lifetime). The maximum
lifetime is enforced when a token is verified too, not only when it is issued.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from baton_server.domain import now_us

log = logging.getLogger(__name__)

ISSUER = "baton"
AUDIENCE = "baton.v1/customer"
MIN_SECRET_LENGTH = 32
# Tolerated clock skew between replicas for `iat`.
CLOCK_SKEW_S = 60


@dataclass(frozen=True, slots=True)
class CustomerClaims:
    customer_id: str
    issuer_key_id: str
    expires_at_s: int


class TokenError(Exception):
    """Why a token was refused (safe to show to the caller)."""


def secret_id(secret: str) -> str:
    """The `kid` of tokens signed with `secret`: a digest prefix, so the header leaks nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class CustomerTokens:
    def __init__(self, secret: str, previous: Sequence[str] = (), max_ttl_s: int = 86_400) -> None:
        for value in (secret, *previous):
            if len(value) < MIN_SECRET_LENGTH:
                raise ValueError(f"token secrets must be at least {MIN_SECRET_LENGTH} characters")
        self._secret = secret
        self._kid = secret_id(secret)
        self._by_kid = {secret_id(s): s for s in (*previous, secret)}
        self._max_ttl_s = max_ttl_s

    @classmethod
    def ephemeral(cls, max_ttl_s: int = 86_400) -> CustomerTokens:
        """A random secret for this process only: its tokens die with it."""
        return cls(secrets.token_urlsafe(48), max_ttl_s=max_ttl_s)

    def issue(self, customer_id: str, issuer_key_id: str, ttl_s: int) -> tuple[str, int]:
        """A token for `customer_id`, valid `ttl_s` seconds; returns it and its expiry (s)."""
        issued = now_us() // 1_000_000
        expires = issued + ttl_s
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": customer_id,
            "key": issuer_key_id,
            "iat": issued,
            "exp": expires,
        }
        token = jwt.encode(claims, self._secret, algorithm="HS256", headers={"kid": self._kid})
        return token, expires

    def verify(self, token: str) -> CustomerClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise TokenError("the customer token is invalid (not a JWT)") from None
        secret = self._by_kid.get(kid) if isinstance(kid, str) else None
        if secret is None:
            raise TokenError(
                "the customer token was signed with a secret this server does not accept "
                "(rotated out?); ask for a new one"
            )
        try:
            claims = jwt.decode(
                token,
                secret,
                # Pinned: never let the token pick its algorithm (e.g. "none").
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                # `iat` is checked below, with a tolerance for replicas' clock skew.
                options={
                    "require": ["exp", "iat", "sub", "key", "iss", "aud"],
                    "verify_iat": False,
                },
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the customer token has expired; ask for a new one") from None
        except jwt.InvalidTokenError:
            raise TokenError("the customer token is invalid (bad signature or claims)") from None
        if not isinstance(claims["sub"], str) or not isinstance(claims["key"], str):
            raise TokenError("the customer token is invalid (bad claims)")
        iat = claims["iat"]
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise TokenError("the customer token is invalid (bad claims)")
        issued, expires = int(iat), int(claims["exp"])
        now = now_us() // 1_000_000
        if expires - issued > self._max_ttl_s or issued > now + CLOCK_SKEW_S:
            raise TokenError(
                f"the customer token is invalid: lifetimes longer than {self._max_ttl_s}s "
                "(or issued in the future) are not accepted"
            )
        return CustomerClaims(claims["sub"], claims["key"], expires)
