"""Schedules agent turns: reacts to committed events (not to RPC calls), one turn per session.

A newer customer message cancels the running turn (it records `cancelled`) and starts a new one;
a switch to MANUAL cancels the running turn, unless that turn made the switch itself (handoff).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from baton_server.bus import EventBus
from baton_server.domain import SESSION_MODE_CHANGED, Event, EventKind, EventSource, now_us
from baton_server.engine.turn import Turn
from baton_server.handoff.controls import HandoffControls
from baton_server.nlp import NLPProvider
from baton_server.nlp.observed import ObservedProvider
from baton_server.observe.context import CallInfo, bind_call
from baton_server.observe.telemetry import NO_TELEMETRY, Telemetry
from baton_server.store import Repository
from baton_server.tools import ToolRegistry

log = logging.getLogger(__name__)

SEEN_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class EngineSettings:
    # Take a lease row per turn so replicas sharing a database never run two turns of one
    # session (in one process the engine's own bookkeeping already guarantees it).
    use_turn_lease: bool = True
    # A crashed replica's turn lease expires after this long.
    turn_lease_s: float = 120.0


def starts_turn(event: Event) -> bool:
    return event.kind is EventKind.MESSAGE and event.source is EventSource.CUSTOMER


def hands_to_humans(event: Event) -> bool:
    return (
        event.kind is EventKind.CUSTOM
        and event.source is EventSource.SYSTEM
        and event.data.get("type") == SESSION_MODE_CHANGED
        and event.data.get("mode") == "manual"
    )


class Engine:
    def __init__(
        self,
        repository: Repository,
        bus: EventBus,
        provider: NLPProvider,
        tools: ToolRegistry,
        settings: EngineSettings,
        handoffs: HandoffControls,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._repository = repository
        self._bus = bus
        self._telemetry = telemetry
        self._provider: NLPProvider = (
            ObservedProvider(provider, telemetry) if telemetry.enabled else provider
        )
        self._tools = tools
        self._settings = settings
        self._handoffs = handoffs
        self._owner = f"engine-{uuid.uuid4().hex[:12]}"
        self._running: dict[str, tuple[Turn, asyncio.Task[None]]] = {}
        self._closing = False
        # Ids of events already acted on: with several replicas an event may be published
        # locally more than once (see bus/pg_relay.py).
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._newest_trigger: OrderedDict[str, int] = OrderedDict()
        bus.add_listener(self._on_commit)

    def _on_commit(self, events: list[Event]) -> None:
        if self._closing:
            return
        for event in events:
            if event.id in self._seen:
                continue
            self._seen[event.id] = None
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            if starts_turn(event):
                self._start(event)
            elif hands_to_humans(event):
                running = self._running.get(event.session_id)
                if running is not None and running[0].correlation_id != event.correlation_id:
                    running[0].cancel_reason = "a human took over the session"
                    running[1].cancel()

    def _start(self, trigger: Event) -> None:
        # Replicas may learn of messages out of order: only the newest one gets a turn.
        newest = self._newest_trigger.get(trigger.session_id, -1)
        if trigger.offset <= newest:
            return
        self._newest_trigger[trigger.session_id] = trigger.offset
        self._newest_trigger.move_to_end(trigger.session_id)
        if len(self._newest_trigger) > SEEN_LIMIT:
            self._newest_trigger.popitem(last=False)
        previous = self._running.get(trigger.session_id)
        if previous is not None:
            previous[0].cancel_reason = "superseded by a newer customer message"
        turn = Turn(
            self._repository, self._bus, self._provider, self._tools, trigger, self._handoffs
        )
        task = asyncio.create_task(
            self._run(turn, previous[1] if previous else None),
            name=f"turn-{trigger.correlation_id}",
        )
        self._running[trigger.session_id] = (turn, task)
        task.add_done_callback(lambda done: self._forget(trigger.session_id, done))

    def _forget(self, session_id: str, task: asyncio.Task[None]) -> None:
        current = self._running.get(session_id)
        if current is not None and current[1] is task:
            del self._running[session_id]

    async def _observed(self, turn: Turn) -> None:
        """Runs `turn` in its own log context and span, and reports how it ended."""
        trigger = turn.trigger
        bind_call(CallInfo(method="engine.turn", session_id=trigger.session_id))
        started = time.perf_counter()
        try:
            attributes = {
                "baton.session_id": trigger.session_id,
                "baton.correlation_id": turn.correlation_id,
            }
            with self._telemetry.child_span("baton.engine.turn", trigger.id, attributes):
                await turn.run()
        finally:
            self._telemetry.turn_ended(turn.outcome, time.perf_counter() - started)

    async def _run(self, turn: Turn, previous: asyncio.Task[None] | None) -> None:
        trigger = turn.trigger
        if previous is not None and not previous.done():
            previous.cancel()
            await asyncio.wait([previous])  # it records `cancelled` before this turn starts
        if not self._settings.use_turn_lease:
            await self._observed(turn)
            return
        session_id = trigger.session_id
        try:
            acquired = await self._repository.acquire_turn(
                session_id,
                self._owner,
                trigger.correlation_id,
                trigger.offset,
                self._settings.turn_lease_s,
            )
        except Exception:
            return
        if not acquired:
            log.info("turn for %s runs (or ran) on another replica", session_id)
            return
        try:
            await self._observed(turn)
        finally:
            try:
                await self._repository.release_turn(session_id, self._owner)
            except Exception:
                pass

    async def resume_unanswered(self, within_s: float) -> int:
        """Starts turns for customer messages whose turn a stop or crash cut short (committed in
        the last `within_s` seconds); returns how many. Replicas race harmlessly: the lease and
        its trigger mark let one run each."""
        since = now_us() - int(within_s * 1_000_000)
        triggers = await self._repository.unanswered_customer_messages(since)
        for trigger in triggers:
            self._on_commit([trigger])
        if triggers:
            log.info("resuming %d interrupted agent turn(s)", len(triggers))
        return len(triggers)

    async def idle(self) -> None:
        """Waits until no turn is running (tests, benchmarks, shutdown)."""
        while self._running:
            await asyncio.wait([task for _, task in list(self._running.values())])

    async def close(self) -> None:
        self._closing = True
        for turn, task in list(self._running.values()):
            turn.cancel_reason = "the server is shutting down"
            task.cancel()
        await self.idle()
