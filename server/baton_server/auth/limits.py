"""Per-caller limits: a token bucket of requests and a count of open streams, per principal."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from baton_server.errors import ResourceExhausted

# Buckets of callers idle this long are full again; forgetting them bounds memory.
_FORGET_AFTER_S = 600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate` requests per second per caller, with bursts up to `burst` (0 rate: unlimited)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        what: str = "request rate limit",
        reason: str = "RATE_LIMITED",
    ) -> None:
        # How the refusal names the limit and its ErrorInfo reason.
        self._what = what
        self._reason = reason
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = clock()

    def take(self, caller: str) -> None:
        """Spends one token of the caller's bucket, or raises RESOURCE_EXHAUSTED with the time
        until one is available."""
        self.check(caller)
        self.spend(caller)

    def check(self, caller: str) -> None:
        """Raises RESOURCE_EXHAUSTED when the caller's bucket has no token; spends nothing."""
        if self._rate <= 0:
            return
        bucket = self._refilled(caller)
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self._rate
            raise ResourceExhausted(
                f"{self._what} exceeded: at most {self._rate:g}/s (burst {self._burst:g}); "
                f"retry in {wait:.3f}s",
                reason=self._reason,
                retry_after_s=wait,
                metadata={"limit_per_second": f"{self._rate:g}", "burst": f"{self._burst:g}"},
            )

    def spend(self, caller: str) -> None:
        """Spends one token if there is one (never raises)."""
        if self._rate <= 0:
            return
        bucket = self._refilled(caller)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def refund(self, caller: str) -> None:
        """Gives back a token taken for something that turned out not to count."""
        if self._rate <= 0:
            return
        bucket = self._refilled(caller)
        bucket.tokens = min(self._burst, bucket.tokens + 1.0)

    def _refilled(self, caller: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if now - self._last_sweep > _FORGET_AFTER_S:
            self._last_sweep = now
            self._buckets = {
                k: b for k, b in self._buckets.items() if now - b.updated < _FORGET_AFTER_S
            }
            self._buckets[caller] = bucket
        return bucket


class StreamSlots:
    """At most `limit` server streams open at once per caller (0: unlimited)."""

    def __init__(self, limit: int, what: str = "credential") -> None:
        self._limit = limit
        self._what = what
        self._open: dict[str, int] = {}

    def acquire(self, caller: str) -> None:
        count = self._open.get(caller, 0)
        if self._limit and count >= self._limit:
            raise ResourceExhausted(
                f"at most {self._limit} streams may be open at once per {self._what}; "
                "close one first",
                reason="TOO_MANY_STREAMS",
                metadata={"limit": str(self._limit)},
            )
        self._open[caller] = count + 1

    def release(self, caller: str) -> None:
        count = self._open.get(caller, 0) - 1
        if count > 0:
            self._open[caller] = count
        else:
            self._open.pop(caller, None)

    def open_streams(self, caller: str) -> int:
        return self._open.get(caller, 0)
