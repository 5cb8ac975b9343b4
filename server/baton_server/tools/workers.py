"""Tools served by workers: backend services connected over one long-lived stream each
(ToolWorkerService.ServeTools), as Temporal workers serve activities.

Transport-free: the API layer turns the stream's messages into calls on a `WorkerPool` and sends
what a `WorkerLink`'s outbox holds. The pool schedules calls (least loaded worker that serves
the tool, never past its limit), re-sends a retry-safe call when its worker disconnects, and
fails the others at once: nothing waits on a worker that is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton_server.domain import WorkerToolSpec, now_us
from baton_server.errors import FailedPrecondition, ShuttingDown
from baton_server.tools.api import ToolContext, ToolError, ToolResult

log = logging.getLogger(__name__)

# How often, at most, the catalogue asks the store for tools declared on other replicas.
REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class WorkerDeclaration:
    name: str
    tools: tuple[WorkerToolSpec, ...]
    max_concurrent_calls: int = 1


@dataclass(frozen=True, slots=True)
class WorkerCall:
    """A call sent to a worker."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    session_id: str
    agent_id: str
    customer_id: str
    correlation_id: str
    deadline_us: int
    attempt: int


@dataclass(frozen=True, slots=True)
class WorkerCancel:
    """Tells a worker the server no longer waits for a call."""

    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerReply:
    """A worker's answer to a call: data and control, or an error."""

    call_id: str
    data: Any = None
    control: dict[str, str] = field(default_factory=dict)
    error: str = ""


Outgoing = WorkerCall | WorkerCancel


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A connected worker as the catalogue shows it."""

    worker_id: str
    calls_in_flight: int
    max_concurrent_calls: int
    connected_at_us: int


class _Gone(Exception):
    """The worker running a call disconnected before answering."""


class _Closed:
    """Ends a link's outbox."""


_CLOSED = _Closed()


class WorkerLink:
    """One connected worker: what it serves, what it runs now, and what to send it."""

    def __init__(self, worker_id: str, declaration: WorkerDeclaration, order: int) -> None:
        self.worker_id = worker_id
        self.declaration = declaration
        self.tools = {spec.name: spec for spec in declaration.tools}
        self.limit = declaration.max_concurrent_calls
        self.connected_at_us = now_us()
        self.draining = False
        self.closed = False
        # Set when the server ended the stream because it is shutting down.
        self.shut_down = False
        # When it was last given a call: among equally loaded workers the one idle longest
        # goes first, so sequential calls take turns.
        self.last_given = order
        self._in_flight: dict[str, asyncio.Future[WorkerReply]] = {}
        self._outbox: asyncio.Queue[Outgoing | _Closed] = asyncio.Queue()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def has_room(self) -> bool:
        return not (self.closed or self.draining) and self.in_flight < self.limit

    def send(self, call: WorkerCall) -> asyncio.Future[WorkerReply]:
        future: asyncio.Future[WorkerReply] = asyncio.get_running_loop().create_future()
        self._in_flight[call.call_id] = future
        self._outbox.put_nowait(call)
        return future

    def settle(self, reply: WorkerReply) -> bool:
        """Hands a reply to its waiting call; False if no call of this worker waits for it
        (unknown, cancelled, or already answered)."""
        future = self._in_flight.pop(reply.call_id, None)
        if future is None or future.done():
            return False
        future.set_result(reply)
        return True

    def abandon(self, call_id: str, reason: str) -> None:
        """The server stops waiting for a call: forget it and tell the worker."""
        if self._in_flight.pop(call_id, None) is not None and not self.closed:
            self._outbox.put_nowait(WorkerCancel(call_id, reason))

    def end(self) -> None:
        """Ends the stream from the server's side (shutdown), once no call runs on it."""
        if not self.shut_down:
            self.shut_down = True
            self._outbox.put_nowait(_CLOSED)

    def close(self) -> None:
        """The stream ended: every call it was running fails over (see WorkerPool.disconnect)."""
        self.closed = True
        for future in self._in_flight.values():
            if not future.done():
                future.set_exception(_Gone())
        self._in_flight.clear()
        self._outbox.put_nowait(_CLOSED)

    async def outgoing(self, heartbeat_s: float) -> AsyncIterator[Outgoing | None]:
        """What to send the worker, in order; None when it has been idle for `heartbeat_s`
        (send a heartbeat). Ends when the link closes."""
        while True:
            try:
                # A timeout scope, not wait_for: no task made per message sent.
                async with asyncio.timeout(heartbeat_s):
                    item = await self._outbox.get()
            except TimeoutError:
                yield None
                continue
            if isinstance(item, _Closed):
                return
            yield item


def choose_worker(candidates: Sequence[WorkerLink]) -> WorkerLink | None:
    """The least loaded worker with room (by share of its limit in use), the one idle longest
    among equals; None when every one is at its limit."""
    with_room = [link for link in candidates if link.has_room()]
    if not with_room:
        return None
    return min(with_room, key=lambda link: (link.in_flight / link.limit, link.last_given))


class WorkerPool:
    """The workers connected to this replica, and the calls they run."""

    def __init__(
        self,
        reserved: Callable[[str], bool] = lambda name: False,
        remember: Callable[[list[WorkerToolSpec]], Awaitable[None]] | None = None,
    ) -> None:
        # Names of tools loaded into the server: a worker may not serve one of them.
        self._reserved = reserved
        # Keeps declarations (in the store) so they outlive the workers and this process.
        self._remember = remember
        self._recall: Callable[[], Awaitable[list[WorkerToolSpec]]] | None = None
        self._recalled_at = -REFRESH_S
        # Every tool a worker declared, here or (loaded at start) before: the newest
        # declaration of each. Calls of one no connected worker serves fail at once.
        self._known: dict[str, WorkerToolSpec] = {}
        self._links: dict[str, WorkerLink] = {}
        # Calls waiting for a worker with room (every worker serving their tool is full).
        self.waiting = 0
        self._shutting_down = False
        self._changed = asyncio.Condition()
        self._order = itertools.count()

    # ---------------------------------------------------------------- the catalogue

    def remember_with(
        self,
        remember: Callable[[list[WorkerToolSpec]], Awaitable[None]],
        recall: Callable[[], Awaitable[list[WorkerToolSpec]]],
    ) -> None:
        """Where declarations are kept (the store, once the composition root opened it)."""
        self._remember = remember
        self._recall = recall

    async def refresh(self) -> None:
        """Learns tools declared elsewhere (another replica) since the last look; at most once
        a second, as turns that name an unknown tool would otherwise ask on every turn."""
        now = time.monotonic()
        if self._recall is None or now - self._recalled_at < REFRESH_S:
            return
        self._recalled_at = now
        recalled = await self._recall()
        connected = {name for link in self._links.values() for name in link.tools}
        self.know(spec for spec in recalled if spec.name not in connected)

    @property
    def connected(self) -> int:
        return len(self._links)

    def know(self, specs: Iterable[WorkerToolSpec]) -> None:
        """Tools declared before (read from the store at start)."""
        for spec in specs:
            self._known[spec.name] = spec

    def serves(self, name: str) -> bool:
        return any(name in link.tools for link in self._links.values())

    def spec(self, name: str) -> WorkerToolSpec | None:
        """The tool as the most recently connected worker serving it declared it, else as it
        was last declared; None if no worker ever declared it."""
        for link in reversed(self._links.values()):
            if name in link.tools:
                return link.tools[name]
        return self._known.get(name)

    def workers_of(self, name: str) -> list[WorkerInfo]:
        return [
            WorkerInfo(link.worker_id, link.in_flight, link.limit, link.connected_at_us)
            for link in self._links.values()
            if name in link.tools
        ]

    def tool_names(self) -> list[str]:
        return sorted(self._known)

    # ---------------------------------------------------------------- worker streams

    async def connect(self, declaration: WorkerDeclaration) -> WorkerLink:
        """Adds a worker; FAILED_PRECONDITION if it declares a tool loaded into the server."""
        if self._shutting_down:
            raise ShuttingDown("the server is shutting down; connect to another replica")
        for spec in declaration.tools:
            if self._reserved(spec.name):
                raise FailedPrecondition(
                    f"tool {spec.name!r} is loaded into the server (baton serve --tools); a "
                    "worker may not serve a tool of the same name: rename one of them",
                    metadata={"tool": spec.name},
                )
        changed = [spec for spec in declaration.tools if self._known.get(spec.name) != spec]
        if changed and self._remember is not None:
            await self._remember(changed)
        self.know(declaration.tools)
        base = declaration.name or "worker"
        worker_id = f"{base}-{uuid.uuid4().hex[:6]}"
        link = WorkerLink(worker_id, declaration, next(self._order))
        self._links[worker_id] = link
        log.info(
            "tool worker %s connected: %s (up to %d calls at once)",
            worker_id,
            ", ".join(link.tools),
            link.limit,
        )
        self._notify()
        return link

    def shut_down(self) -> None:
        """The server is stopping: workers get no new calls, and each stream ends (UNAVAILABLE,
        so workers reconnect, elsewhere or after the restart) once its running calls are
        answered; the server's shutdown grace bounds the wait."""
        self._shutting_down = True
        for link in self._links.values():
            link.draining = True
            if link.in_flight == 0:
                link.end()
        self._notify()

    def drain(self, link: WorkerLink) -> None:
        """The worker is stopping: it gets no new calls and finishes those it has."""
        link.draining = True
        self._notify()

    def disconnect(self, link: WorkerLink) -> None:
        if self._links.pop(link.worker_id, None) is None:
            return
        running = link.in_flight
        link.close()
        log.info("tool worker %s disconnected (%d calls in flight)", link.worker_id, running)
        self._notify()

    def settle(self, link: WorkerLink, reply: WorkerReply) -> None:
        if not link.settle(reply):
            log.debug("worker %s answered call %s, which no longer waits", link.worker_id, reply)
        self._call_done(link)

    def _call_done(self, link: WorkerLink) -> None:
        """A call left `link`: its slot is free, and a shutting-down server may end it."""
        if self._shutting_down and link.in_flight == 0:
            link.end()
        self._notify()

    def _notify(self) -> None:
        """Wakes calls waiting for room (done in a task: callers are not coroutines)."""
        if not self.waiting:
            return  # the common case: nobody waits, no task to make

        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(wake())

    # ---------------------------------------------------------------- calls

    async def call(
        self, name: str, arguments: dict[str, Any], context: ToolContext, timeout_s: float
    ) -> ToolResult:
        """Runs a call on a worker and returns its result; ToolError when no worker serves the
        tool, the worker failed it, or it disconnected and the tool is not retry-safe. The
        caller bounds the time (its cancellation tells the worker to stop)."""
        deadline_us = now_us() + int(timeout_s * 1_000_000)
        call_id = f"call_{uuid.uuid4().hex}"
        for attempt in itertools.count(1):

            def build(attempt: int = attempt) -> WorkerCall:
                return WorkerCall(
                    call_id,
                    name,
                    arguments,
                    context.session_id,
                    context.agent_id,
                    context.customer_id,
                    context.correlation_id,
                    deadline_us,
                    attempt,
                )

            link, future = await self._send(name, build, attempt)
            started = time.perf_counter()
            try:
                reply = await future
            except _Gone:
                if link.tools[name].retry_safe:
                    log.info("call %s: worker %s left; sent again", call_id, link.worker_id)
                    continue
                raise ToolError(
                    f"worker {link.worker_id} disconnected during the call; {name} is not "
                    "declared retry_safe, so it was not sent to another worker"
                ) from None
            except asyncio.CancelledError:
                elapsed = time.perf_counter() - started
                link.abandon(call_id, f"the server stopped waiting after {elapsed:.1f} s")
                self._call_done(link)
                raise
            if reply.error:
                raise ToolError(reply.error)
            return ToolResult(data=reply.data, control=dict(reply.control))
        raise AssertionError("unreachable")

    async def _send(
        self, name: str, build: Callable[[], WorkerCall], attempt: int
    ) -> tuple[WorkerLink, asyncio.Future[WorkerReply]]:
        """Sends the call to a worker serving `name` with room, waiting while all of them are
        at their limit; ToolError at once when none serves it."""
        async with self._changed:
            while True:
                candidates = [
                    link
                    for link in self._links.values()
                    if name in link.tools and not link.draining
                ]
                if not candidates:
                    after = " (the worker running it disconnected)" if attempt > 1 else ""
                    raise ToolError(
                        f"no tool worker serving {name!r} is connected to this server{after}"
                    )
                link = choose_worker(candidates)
                if link is not None:
                    link.last_given = next(self._order)
                    return link, link.send(build())
                self.waiting += 1
                try:
                    await self._changed.wait()
                finally:
                    self.waiting -= 1
