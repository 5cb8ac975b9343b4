"""Customer tokens: short-lived JWTs (HS256, PyJWT) an integration mints for one customer.

Claims: `sub` customer id, `key` the issuing API key (revoking it revokes its tokens), `iat`,
`exp`, and fixed `iss`/`aud` so a JWT made for another system with the same secret is refused.
The signing secret is configured (`--token-secret`), or generated once and kept in the
database so every replica signs and verifies with the same one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from baton_server.domain import now_us
from baton_server.store import schema
from baton_server.store.database import Database

ISSUER = "baton"
AUDIENCE = "baton.v1/customer"
SECRET_NAME = "customer_token_secret"


@dataclass(frozen=True, slots=True)
class CustomerClaims:
    customer_id: str
    issuer_key_id: str
    expires_at_s: int


class TokenError(Exception):
    """Why a token was refused (safe to show to the caller)."""


class CustomerTokens:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret

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
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires

    def verify(self, token: str) -> CustomerClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # Pinned: never let the token pick its algorithm (e.g. "none").
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "key", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the customer token has expired; ask for a new one") from None
        except jwt.InvalidTokenError:
            raise TokenError("the customer token is invalid (bad signature or claims)") from None
        if not isinstance(claims["sub"], str) or not isinstance(claims["key"], str):
            raise TokenError("the customer token is invalid (bad claims)")
        return CustomerClaims(claims["sub"], claims["key"], int(claims["exp"]))


async def shared_token_secret(database: Database) -> str:
    """The signing secret kept in the database, created by the first replica that needs it."""
    table = schema.auth_secrets
    query = select(table.c.value).where(table.c.name == SECRET_NAME)
    async with database.reader.connect() as conn:
        value = await conn.scalar(query)
    if value is not None:
        return str(value)
    try:
        async with database.writer.begin() as conn:
            await conn.execute(
                table.insert().values(
                    name=SECRET_NAME, value=secrets.token_urlsafe(48), created_at_us=now_us()
                )
            )
    except IntegrityError:
        pass  # another replica created it first: use theirs
    async with database.reader.connect() as conn:
        return str(await conn.scalar(query))
