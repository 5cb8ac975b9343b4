"""API keys: created and revoked by `baton keys`, checked on every authenticated call.

A key's secret is `bk_<key id>_<64 hex digits>`; only its sha256 is stored (the secret has 256
random bits, so a fast hash is enough), compared in constant time. Lookups are cached briefly so a
busy key costs no query per call; a revocation takes effect within `cache_ttl_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from baton_server.auth.principal import KEY_ROLES, Role
from baton_server.domain import now_us
from baton_server.store.api_keys import ApiKeyRows, StoredKey
from baton_server.store.ids import new_id

KEY_PREFIX = "bk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: Role
    created_at_us: int
    revoked_at_us: int | None
    # Operator keys: the one operator the key acts for ("" = any operator id it names).
    operator_id: str = ""


@dataclass(frozen=True, slots=True)
class _Cached:
    key: ApiKey | None
    digest: str
    until: float


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key_id(secret: str) -> str | None:
    """The key id inside a secret (`bk_<id>_<random>`), or None if it is not shaped like one."""
    if not secret.startswith(KEY_PREFIX):
        return None
    key_id, sep, rest = secret[len(KEY_PREFIX) :].rpartition("_")
    if not sep or not key_id or not rest or len(key_id) > 64:
        return None
    return key_id


class KeyStore:
    def __init__(
        self, rows: ApiKeyRows, *, cache_ttl_s: float = 5.0, cache_size: int = 10_000
    ) -> None:
        self._rows = rows
        self._ttl = cache_ttl_s
        self._size = cache_size
        # Known keys and unknown ids are cached apart, each bounded (least recently used goes
        # first): a flood of made-up ids evicts only other made-up ids, never a real key.
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._unknown: OrderedDict[str, _Cached] = OrderedDict()
        # Ids of keys seen active (bounded, oldest first out): their lookups are not guesses.
        self._seen_valid: OrderedDict[str, None] = OrderedDict()

    def is_known(self, key_id: str) -> bool:
        """Whether this id was seen belonging to a key (a lookup for it is not a guess)."""
        return key_id in self._cache or key_id in self._seen_valid

    def is_cached(self, key_id: str) -> bool:
        """Whether checking this key id needs no database lookup right now."""
        now = time.monotonic()
        cached = self._cache.get(key_id) or self._unknown.get(key_id)
        return cached is not None and cached.until > now

    async def create(self, role: Role, name: str = "", operator_id: str = "") -> tuple[ApiKey, str]:
        """Creates a key; returns it and its secret (shown once, never stored)."""
        if role not in KEY_ROLES:
            raise ValueError(f"role must be one of {', '.join(r.value for r in KEY_ROLES)}")
        if operator_id and role is not Role.OPERATOR:
            raise ValueError("only operator keys act for one operator")
        key = ApiKey(new_id("key"), name, role, now_us(), None, operator_id)
        # Hex: no "_" in the random part, so the id parses back out of the secret.
        secret = f"{KEY_PREFIX}{key.id}_{secrets.token_hex(32)}"
        await self._rows.insert(
            StoredKey(
                key.id, name, role.value, _digest(secret), key.created_at_us, None, operator_id
            )
        )
        return key, secret

    async def revoke(self, key_id: str) -> bool:
        """Revokes a key; False if no such (unrevoked) key exists."""
        revoked = await self._rows.revoke(key_id, now_us())
        self._cache.pop(key_id, None)
        self._unknown.pop(key_id, None)
        return revoked

    async def list(self) -> list[ApiKey]:
        return [_key(stored) for stored in await self._rows.all()]

    async def verify(self, secret: str) -> ApiKey | None:
        """The active key this secret belongs to, or None."""
        key_id = parse_key_id(secret)
        if key_id is None:
            return None
        cached = await self._lookup(key_id)
        if cached.key is None or not hmac.compare_digest(cached.digest, _digest(secret)):
            return None
        return cached.key

    async def active(self, key_id: str) -> ApiKey | None:
        """The key with this id if it exists and is not revoked (customer tokens' issuers)."""
        return (await self._lookup(key_id)).key

    async def _lookup(self, key_id: str) -> _Cached:
        now = time.monotonic()
        for cache in (self._cache, self._unknown):
            cached = cache.get(key_id)
            if cached is not None and cached.until > now:
                cache.move_to_end(key_id)
                return cached
        stored = await self._rows.get(key_id)
        key = _key(stored) if stored is not None and stored.revoked_at_us is None else None
        # Unknown ids are cached too (briefly), so guessing costs no query per attempt.
        cached = _Cached(key, stored.secret_sha256 if stored is not None else "", now + self._ttl)
        if key is not None:
            self._seen_valid[key_id] = None
            self._seen_valid.move_to_end(key_id)
            while len(self._seen_valid) > 10 * self._size:
                self._seen_valid.popitem(last=False)
        cache = self._cache if key is not None else self._unknown
        (self._unknown if key is not None else self._cache).pop(key_id, None)
        cache[key_id] = cached
        cache.move_to_end(key_id)
        while len(cache) > self._size:
            cache.popitem(last=False)
        return cached


def _key(stored: StoredKey) -> ApiKey:
    return ApiKey(
        stored.id,
        stored.name,
        Role(stored.role),
        stored.created_at_us,
        stored.revoked_at_us,
        stored.operator_id,
    )
