"""One agent turn, started by one committed customer message.

Status sequence (all with the customer message's correlation id, source AI_AGENT):
acknowledged → processing "interpreting" → [processing "considering tools" → tool event
(source SYSTEM)] → processing "articulating" → typing → the reply (message, AI_AGENT) + ready.
In MANUAL mode only `acknowledged`. A turn that may no longer speak (superseded, or a human took
over) ends with `cancelled` and posts nothing more; a provider failure ends with `error`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from baton_server.bus import EventBus
from baton_server.domain import (
    Event,
    EventDraft,
    EventFilter,
    EventKind,
    EventSource,
    GuardFailure,
    HandoffRequester,
    TextDelta,
    TurnGuard,
)
from baton_server.errors import BatonError, NotFound, TurnAborted
from baton_server.handoff.controls import HandoffControls
from baton_server.nlp import GuidelineMatch, NLPProvider, ProviderError, TurnContext
from baton_server.store import Repository, Transaction
from baton_server.store.turns import InTransaction
from baton_server.tools import ToolContext, ToolRegistry
from baton_server.tools.registry import ToolOutcome

log = logging.getLogger(__name__)

# What a turn that may no longer speak tells (its `cancelled` status detail), by the guard
# condition the store found failed.
ABORTED_BECAUSE = {
    GuardFailure.NOT_AUTO: "the session is no longer in AUTO mode; a human answers",
    GuardFailure.CONTROL_CHANGED: (
        "an operator took the session over; the AI does not talk over them"
    ),
    GuardFailure.SUPERSEDED: "a newer customer message superseded this turn",
    GuardFailure.HUMAN_ANSWERED: "a human agent answered; the AI does not talk over them",
}
HISTORY_KINDS = frozenset({EventKind.MESSAGE, EventKind.TOOL, EventKind.CUSTOM})
# Events of the conversation a turn passes to the provider (the newest ones).
HISTORY_LIMIT = 200


def status(name: str, correlation_id: str, detail: str | None = None) -> EventDraft:
    data: dict[str, Any] = {"status": name}
    if detail is not None:
        data["detail"] = detail
    return EventDraft(EventKind.STATUS, EventSource.AI_AGENT, data, correlation_id=correlation_id)


def tool_event(outcomes: list[ToolOutcome], correlation_id: str) -> EventDraft:
    calls = []
    for outcome in outcomes:
        call: dict[str, Any] = {"name": outcome.name, "arguments": outcome.arguments}
        if outcome.result is not None:
            call["result"] = outcome.result.data
            if outcome.result.control:
                call["control"] = outcome.result.control
        if outcome.error:
            call["error"] = outcome.error
        calls.append(call)
    return EventDraft(
        EventKind.TOOL, EventSource.SYSTEM, {"tool_calls": calls}, correlation_id=correlation_id
    )


def handoff_reason(outcomes: list[ToolOutcome]) -> str | None:
    """The reason to hand off if a tool asked for MANUAL mode, else None."""
    for outcome in outcomes:
        if outcome.result is not None and outcome.result.control.get("mode") == "manual":
            reason = outcome.arguments.get("reason") or outcome.result.control.get("reason")
            return str(reason or f"requested by tool {outcome.name}")
    return None


@dataclass
class Turn:
    repository: Repository
    bus: EventBus
    provider: NLPProvider
    tools: ToolRegistry
    trigger: Event
    # Opens the handoff a tool asks for (in the transaction of the tool event).
    handoffs: HandoffControls | None = None
    # Set by whoever cancels the turn, recorded as the `cancelled` status detail.
    cancel_reason: str = "cancelled"
    # How the turn ended (metrics): ready, acknowledged (humans answer), cancelled, error,
    # deleted (the session went away under it).
    outcome: str = "error"
    # The session's control epoch right after this turn's own handoff.
    handoff_epoch: int | None = None

    @property
    def correlation_id(self) -> str:
        return self.trigger.correlation_id

    async def run(self) -> None:
        session_id = self.trigger.session_id
        correlation = self.correlation_id
        guard = TurnGuard(trigger_offset=self.trigger.offset)
        try:
            try:
                await self._say(
                    guard,
                    status("acknowledged", correlation),
                    status("processing", correlation, "interpreting"),
                )
            except TurnAborted:
                # Humans answer (MANUAL mode) or a newer message took over: only acknowledge.
                await self.repository.append_event(session_id, status("acknowledged", correlation))
                self.outcome = "acknowledged"
                return
            snapshot = await self.repository.turn_snapshot(session_id, HISTORY_KINDS, HISTORY_LIMIT)
            session = snapshot.session
            context = TurnContext(
                session_id,
                snapshot.agent,
                session.customer_id,
                snapshot.history,
                self.trigger,
                snapshot.guidelines,
                snapshot.canned_responses,
            )
            matches = await self.provider.match_guidelines(context)
            wanted = {name for m in matches for name in m.guideline.tool_names}
            tools = await self.tools.resolve(sorted(wanted))
            outcomes: list[ToolOutcome] = []
            if tools:
                await self._say(guard, status("processing", correlation, "considering tools"))
                plans = await self.provider.plan_tool_calls(context, matches, tools)
                if plans:
                    tool_context = ToolContext(
                        session_id,
                        session.agent_id,
                        session.customer_id,
                        correlation,
                        self._read_events,
                    )
                    outcomes = list(
                        await asyncio.gather(
                            *(self.tools.call(p.name, p.arguments, tool_context) for p in plans)
                        )
                    )
                    reason = handoff_reason(outcomes)
                    hand_off = None
                    if reason is not None and self.handoffs is not None:
                        hand_off = await self._handoff_opening(reason, matches)
                    await self.repository.append_turn_events(
                        session_id, [tool_event(outcomes, correlation)], guard, hand_off=hand_off
                    )
                    if hand_off is not None:
                        # The handoff told the customer (one message, then the queue place):
                        # a reply would say it again, so the turn ends here.
                        await self.repository.append_event(session_id, status("ready", correlation))
                        self.outcome = "ready"
                        return
                    if reason is not None:
                        # Its transition message may follow, until anyone else takes control.
                        guard = replace(guard, handed_off=True, control_epoch=self.handoff_epoch)
            await self._say(
                guard,
                status("processing", correlation, "articulating"),
                status("typing", correlation),
            )
            index = 0

            def on_delta(text: str) -> None:
                nonlocal index
                self.bus.publish_delta(TextDelta(session_id, correlation, text, index))
                index += 1

            reply = await self.provider.write_reply(context, matches, outcomes, on_delta)
            message = EventDraft(
                EventKind.MESSAGE, EventSource.AI_AGENT, {"text": reply}, correlation_id=correlation
            )
            await self.repository.append_turn_events(
                session_id, [message, status("ready", correlation)], guard
            )
            self.outcome = "ready"
        except asyncio.CancelledError:
            self.outcome = "cancelled"
            await self._end("cancelled", self.cancel_reason)
            raise
        except TurnAborted as aborted:
            self.outcome = "cancelled"
            await self._end("cancelled", ABORTED_BECAUSE[aborted.failed])
        except ProviderError as error:
            log.warning("turn %s failed: %s", correlation, error)
            await self._end("error", str(error))
        except NotFound:
            self.outcome = "deleted"  # the session was deleted under the turn
        except Exception:
            log.exception("turn %s failed", correlation)
            await self._end("error", "internal error; the server logged the details")

    async def _handoff_opening(self, reason: str, matches: list[GuidelineMatch]) -> InTransaction:
        handoffs = self.handoffs
        assert handoffs is not None
        guideline = ""
        if matches:
            best = matches[0].guideline
            guideline = f"when {best.condition} then {best.action}"
        opening = replace(
            await handoffs.prepare(
                self.trigger.session_id, reason, HandoffRequester.TOOL, guideline
            ),
            correlation_id=self.correlation_id,
        )

        async def open_handoff(conn: Transaction) -> list[Event]:
            handoff, events = await handoffs.open_in(conn, opening)
            self.handoff_epoch = handoff.control_epoch
            return events

        return open_handoff

    async def _say(self, guard: TurnGuard, *drafts: EventDraft) -> None:
        await self.repository.append_turn_events(self.trigger.session_id, drafts, guard)

    async def _end(self, name: str, detail: str) -> None:
        try:
            await self.repository.append_event(
                self.trigger.session_id, status(name, self.correlation_id, detail)
            )
        except BatonError:
            pass  # session deleted, or the server is shutting down

    async def _read_events(self, min_offset: int, kinds: Any) -> list[Event]:
        session_id = self.trigger.session_id
        head = await self.repository.next_offset(session_id)
        return await self.repository.read_events(
            session_id, min_offset, head, EventFilter(frozenset(kinds)), 10_000
        )
