"""Reconnect policy of `BatonClient.follow`: jittered exponential backoff with limits."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

#: Codes after which a follow stream is reopened. UNAVAILABLE covers a server that is down or
#: restarting, a dropped connection, and Baton's graceful shutdown (reason SERVER_SHUTTING_DOWN).
DEFAULT_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often `follow` reconnects.

    The n-th consecutive failed attempt waits `min(max_delay, initial_delay * multiplier**(n-1))`,
    shortened by a random fraction of up to `jitter` (0: no jitter, 1: "full jitter"). A stream
    that delivers anything (events, caught_up, a heartbeat) resets the count.
    """

    initial_delay: float = 0.25
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    #: Give up after this many consecutive failed attempts (None: never).
    max_attempts: int | None = None
    #: Give up when the stream has been down for longer than this many seconds (None: never).
    max_elapsed: float | None = None
    #: Status codes that trigger a reconnect; any other code is raised to the caller.
    retry_codes: frozenset[grpc.StatusCode] = DEFAULT_RETRY_CODES
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 <= initial_delay <= max_delay")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the attempt after `failures` consecutive failures (>= 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failures - 1))
        return base * (1.0 - self.jitter * self.random())


class RetriesExhausted(Exception):
    """`follow` gave up reconnecting (max_attempts or max_elapsed reached).

    `last_error` is the error of the last attempt (None if the stream ended without one).
    """

    def __init__(self, message: str, last_error: BaseException | None) -> None:
        super().__init__(message)
        self.last_error = last_error
