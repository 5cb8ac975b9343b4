"""`follow`: a session's events, exactly once and in order, across reconnects."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from types import TracebackType

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client._credentials import Credentials
from baton_client._retry import RetriesExhausted, RetryPolicy
from baton_client.errors import as_baton_error, error_info

log = logging.getLogger("baton_client")

#: `on_retry(error, delay)`: called before each reconnect wait with the error that ended the
#: previous attempt (None when the stream ended without one) and the seconds about to be waited.
#: A callback may be sync or async: whatever it returns is awaited when it is awaitable.
RetryCallback = Callable[[BaseException | None, float], object]
#: `on_caught_up()`: called once, when the stored history has been delivered.
CaughtUpCallback = Callable[[], object]
#: `on_delta(delta)`: a live piece of an AI reply being written (sync or async).
DeltaCallback = Callable[[pb.MessageDelta], object]


async def call_back(callback: Callable[..., object] | None, *args: object) -> None:
    """Runs a sync or async callback."""
    if callback is not None:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result


class Follower:
    """Async iterator over a session's events; returned by `BatonClient.follow`.

    Yields `Event`s in offset order, each exactly once, and reopens the stream at
    `next_offset` when it breaks with a retryable code (see `RetryPolicy`). Other errors
    (NOT_FOUND for an unknown or deleted session, INVALID_ARGUMENT, ...) are raised, as is
    `RetriesExhausted` when the policy gives up. Close it with `aclose()` or `async with`.
    """

    def __init__(
        self,
        stub: svc.EventServiceAsyncStub,
        session_id: str,
        from_offset: int,
        *,
        kinds: Sequence[pb.EventKind.ValueType],
        sources: Sequence[pb.EventSource.ValueType],
        retry: RetryPolicy,
        on_caught_up: CaughtUpCallback | None,
        on_retry: RetryCallback | None,
        on_delta: DeltaCallback | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.session_id = session_id
        #: Resume point: every offset below it was delivered (or skipped by the filters).
        self.next_offset = from_offset
        #: True once the server reported that the stored history has been delivered.
        self.caught_up = False
        #: Streams opened that delivered at least one response (1 + successful reconnects).
        self.connections = 0
        #: Consecutive failed attempts since the last healthy stream.
        self.failures = 0
        #: The error that ended the most recent attempt, if any.
        self.last_error: BaseException | None = None
        self._stub = stub
        self._kinds = list(kinds)
        self._sources = list(sources)
        self._retry = retry
        self._on_caught_up = on_caught_up
        self._on_retry = on_retry
        self._on_delta = on_delta
        self._credentials = credentials
        self._events = self._run()

    @property
    def reconnects(self) -> int:
        """How many times the stream was successfully reopened after a break."""
        return max(0, self.connections - 1)

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> pb.Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stops following and cancels the open stream."""
        await self._events.aclose()

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[pb.Event, None]:
        policy = self._retry
        outage = Outage(policy, f"following {self.session_id}")
        refreshed = False  # reopened once with a fresh token since the last healthy stream
        while True:
            request = rr.ListEventsRequest(
                session_id=self.session_id,
                min_offset=self.next_offset,
                kinds=self._kinds,
                sources=self._sources,
                follow=True,
            )
            call = self._stub.ListEvents(request)
            error: BaseException | None = None
            healthy = False
            try:
                async for response in call:
                    if not healthy:
                        healthy = True
                        self.connections += 1
                        self.failures = 0
                        outage.ended()
                        refreshed = False
                        if self.connections > 1:
                            log.info(
                                "follow %s: reconnected at offset %d",
                                self.session_id,
                                self.next_offset,
                            )
                    if response.HasField("delta"):
                        await call_back(self._on_delta, response.delta)
                    for event in response.events:
                        if event.offset < self.next_offset:
                            continue  # already delivered (cannot happen on one stream)
                        self.next_offset = event.offset + 1
                        yield event
                    if response.HasField("heartbeat"):
                        self.next_offset = max(self.next_offset, response.heartbeat.next_offset)
                    if response.caught_up or response.fell_behind:
                        # The resume point past events the filters skipped (0 from old servers).
                        self.next_offset = max(self.next_offset, response.next_offset)
                    if response.caught_up and not self.caught_up:
                        self.caught_up = True
                        await call_back(self._on_caught_up)
            except grpc.aio.AioRpcError as raw:
                exc = as_baton_error(raw)
                if (
                    exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    and not refreshed
                    and self._credentials is not None
                    and self._credentials.invalidate()
                ):
                    refreshed = True  # e.g. the customer token expired: reopen with a new one
                    log.info(
                        "follow %s: UNAUTHENTICATED; reopening with a fresh token", self.session_id
                    )
                    continue
                if exc.code() not in policy.retry_codes:
                    raise exc from None
                error = exc
                self._advance_from_error(exc)
            finally:
                call.cancel()

            # The stream broke (or, unexpectedly, ended): wait, then resume at next_offset.
            self.last_error = error
            self.failures += 1
            await outage.wait(self.failures, error, f"at offset {self.next_offset}", self._on_retry)

    def _advance_from_error(self, error: grpc.aio.AioRpcError) -> None:
        """A graceful shutdown says where to resume (past events skipped by filters)."""
        info = error_info(error)
        if info is None:
            return
        value = info.metadata.get("next_offset")
        if value is not None and value.isdigit():
            self.next_offset = max(self.next_offset, int(value))


class Outage:
    """Between a broken stream and its next attempt (follow and watch_handoffs alike): gives up
    when the policy says so, else logs, tells the caller and waits the backoff."""

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self._policy = policy
        self._what = what  # "following ses_…", "watching handoffs"
        self._down_since: float | None = None

    def ended(self) -> None:
        """A stream is healthy again."""
        self._down_since = None

    async def wait(
        self,
        failures: int,
        error: BaseException | None,
        resume: str,
        on_retry: RetryCallback | None,
    ) -> None:
        policy, now = self._policy, time.monotonic()
        if self._down_since is None:
            self._down_since = now
        if policy.max_attempts is not None and failures > policy.max_attempts:
            raise RetriesExhausted(
                f"gave up {self._what} after {failures - 1} reconnect attempts: {_describe(error)}",
                error,
            ) from error
        delay = policy.delay(failures)
        if policy.max_elapsed is not None and now + delay - self._down_since > policy.max_elapsed:
            raise RetriesExhausted(
                f"gave up {self._what}: down for more than {policy.max_elapsed}s: "
                f"{_describe(error)}",
                error,
            ) from error
        log.info(
            "%s: %s; resuming %s in %.2fs (attempt %d)",
            self._what,
            _describe(error),
            resume,
            delay,
            failures,
        )
        await call_back(on_retry, error, delay)
        await asyncio.sleep(delay)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "stream ended"
    if isinstance(error, grpc.aio.AioRpcError):
        info = error_info(error)
        reason = f" ({info.reason})" if info is not None and info.reason else ""
        return f"{error.code().name}{reason}: {error.details()}"
    return repr(error)
