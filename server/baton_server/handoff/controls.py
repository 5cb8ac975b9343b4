"""Handoff controls: request, offer, claim, transfer, release, takeover and timeouts.

Every control change runs as one write transaction on the repository's writer: it locks the
session row, checks the caller's `expected_epoch`, bumps the control epoch, updates the handoff
row, appends the events that tell the story (lifecycle event, customer-facing texts) and adds an
entry to the inbox change log. So the log, the handoff table and the inbox never disagree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from baton_server.auth.principal import current_actor
from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    INBOX_POSITION,
    Actor,
    Event,
    EventDraft,
    EventKind,
    EventSource,
    Handoff,
    HandoffChangeType,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    Operator,
    Session,
    SessionMode,
    now_us,
)
from baton_server.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NeedsHandoffControl,
    StaleEpoch,
)
from baton_server.handoff import policy as policies
from baton_server.handoff.summary import Summarizer
from baton_server.store import Repository, Transaction
from baton_server.store import handoffs as rows
from baton_server.store.handoffs import DueTimeout, HandoffReader
from baton_server.store.ids import new_id
from baton_server.store.repository import mode_changed

log = logging.getLogger(__name__)

Clock = Callable[[], int]
NO_OPERATOR_WATCHING = "NO_OPERATOR_WATCHING"
OUTSIDE_OPERATING_HOURS = "OUTSIDE_OPERATING_HOURS"
# Queue-position updates posted per transaction when the queue moves (the rest see theirs on
# the next move); bounds the cost of a claim on a long queue.
MAX_QUEUE_UPDATES = 50


@dataclass(frozen=True, slots=True)
class Availability:
    available: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HandoffOpening:
    """What a new handoff needs, prepared outside the write transaction (reads, NLP)."""

    session_id: str
    reason: str
    requested_by: HandoffRequester
    summary: str
    availability: Availability
    # The agent turn that asked for it (its events then share the turn's correlation id).
    correlation_id: str = ""


# Who acts in the write job running now (set by `_write` and `on_mode_change`): the job runs on
# the store's writer task, outside the caller's context.
_ACTING: ContextVar[Actor | None] = ContextVar("baton_handoff_actor", default=None)


def lifecycle_event(change: str, handoff: Handoff, **extra: Any) -> EventDraft:
    data: dict[str, Any] = {
        "type": HANDOFF_EVENT_PREFIX + change,
        "handoff_id": handoff.id,
        "state": handoff.state.value,
        "control_epoch": handoff.control_epoch,
    }
    if handoff.operator is not None:
        data["operator"] = {
            "id": handoff.operator.id,
            "display_name": handoff.operator.display_name,
        }
    data.update(extra)
    actor = _ACTING.get()  # inside a write job: who asked for the change (audit trail)
    if actor is not None:
        data["actor"] = actor.to_dict()
    return EventDraft(EventKind.CUSTOM, EventSource.SYSTEM, data)


def already_open(session_id: str, existing: Handoff) -> AlreadyExists:
    return AlreadyExists(
        f"session {session_id!r} already has an open handoff {existing.id!r} "
        f"({existing.state.value}); end it before requesting another",
        metadata={"handoff_id": existing.id, "state": existing.state.value},
    )


def queue_event(
    policy: HandoffPolicy, waiting: Handoff, position: int, recent_waits_us: list[int]
) -> EventDraft:
    wait_s = policies.estimated_wait_s(policy, position, recent_waits_us)
    text = policies.text(
        policy, "queue_position_message", position=position, wait_minutes=max(1, round(wait_s / 60))
    )
    return lifecycle_event(
        "queue_position",
        waiting,
        position=position,
        estimated_wait_seconds=round(wait_s),
        text=text,
    )


def system_message(text: str) -> EventDraft:
    """A customer-facing text from Baton itself."""
    return EventDraft(EventKind.MESSAGE, EventSource.SYSTEM, {"text": text})


def is_human_message(draft: EventDraft) -> bool:
    return draft.kind is EventKind.MESSAGE and draft.source in (
        EventSource.HUMAN_AGENT,
        EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
    )


class HandoffControls:
    def __init__(
        self,
        repository: Repository,
        reader: HandoffReader,
        summarizer: Summarizer,
        clock: Clock = now_us,
    ) -> None:
        self._repo = repository
        self._reader = reader
        self._summarizer = summarizer
        self.clock = clock
        # Agents whose queue moved: their waiting customers get new positions after the commit
        # (never inside the changing transaction: locking other sessions there could deadlock
        # with appends on PostgreSQL).
        self._queues_moved: set[str] = set()
        self._announcer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ opening

    def _availability(self, policy: HandoffPolicy, present: bool) -> Availability:
        if not policies.within_operating_hours(policy, self.clock()):
            return Availability(False, OUTSIDE_OPERATING_HOURS)
        return Availability(True) if present else Availability(False, NO_OPERATOR_WATCHING)

    async def availability(self, agent_id: str, policy: HandoffPolicy) -> Availability:
        # Presence is about live streams: real time, not the (test-controllable) clock.
        present = await self._reader.operators_present(agent_id, now_us())
        return self._availability(policy, present)

    async def prepare(
        self,
        session_id: str,
        reason: str,
        requested_by: HandoffRequester,
        matched_guideline: str = "",
    ) -> HandoffOpening:
        session = await self._repo.get_session(session_id)
        open_now = await self._reader.open_handoff(session_id)
        if open_now is not None:  # cheap refusal before paying for a summary
            raise already_open(session_id, open_now)
        agent = await self._repo.get_agent(session.agent_id)
        summary = await self._summarizer.summarize(session_id, reason, matched_guideline)
        availability = await self.availability(agent.id, agent.handoff_policy)
        return HandoffOpening(session_id, reason, requested_by, summary, availability)

    async def request(self, opening: HandoffOpening, expected_epoch: int | None = None) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            return await self.open_in(conn, opening, expected_epoch)

        return await self._with_position(await self._write(job))

    async def open_in(
        self,
        conn: Transaction,
        opening: HandoffOpening,
        expected_epoch: int | None = None,
        *,
        announce: bool = True,
    ) -> tuple[Handoff, list[Event]]:
        """Opens a PENDING handoff inside the caller's transaction (also used by the engine for
        a tool-triggered handoff, in the transaction of the tool event)."""
        session = await rows.lock_session(conn, opening.session_id)
        if expected_epoch is not None and expected_epoch != session.control_epoch:
            raise StaleEpoch(session.id, expected_epoch, session.control_epoch)
        existing = await rows.open_handoff_of(conn, session.id)
        if existing is not None:
            raise already_open(session.id, existing)
        now = self.clock()
        policy = await rows.agent_policy(conn, session.agent_id)
        epoch = await rows.change_control(conn, session, expected_epoch, SessionMode.MANUAL, now)
        handoff = Handoff(
            id=new_id("hof"),
            session_id=session.id,
            agent_id=session.agent_id,
            state=HandoffState.PENDING,
            reason=opening.reason,
            summary=opening.summary,
            requested_by=opening.requested_by,
            operator=None,
            operator_on_behalf_of_ai=False,
            offered_to=None,
            requested_at_us=now,
            claimed_at_us=None,
            first_human_reply_at_us=None,
            ended_at_us=None,
            outcome=HandoffOutcome.NONE,
            note="",
            control_epoch=epoch,
        )
        await rows.insert_handoff(
            conn,
            handoff,
            claim_deadline_us=policies.deadline(now, policy.claim_timeout_s),
            inactivity_deadline_us=None,
        )
        drafts = self._mode_drafts(session, SessionMode.MANUAL, opening.reason)
        recorded = len(drafts)
        drafts.append(
            lifecycle_event(
                "requested",
                handoff,
                reason=opening.reason,
                requested_by=opening.requested_by.value,
                summary=opening.summary,
                operators_available=opening.availability.available,
            )
        )
        if announce:
            drafts.append(system_message(policies.text(policy, "handoff_started_message")))
            if not opening.availability.available:
                drafts.append(system_message(policies.text(policy, "no_operator_message")))
        if opening.correlation_id:
            drafts = [replace(d, correlation_id=opening.correlation_id) for d in drafts]
        events = await self._append_recorded(
            conn, session.id, drafts, recorded, handoff, HandoffChangeType.REQUESTED
        )
        if announce:
            events += await self._queue_updates(
                conn, session.agent_id, policy, only=handoff.id, correlation=opening.correlation_id
            )
        return handoff, events

    async def _append_recorded(
        self,
        conn: Transaction,
        session_id: str,
        drafts: list[EventDraft],
        recorded: int,
        handoff: Handoff,
        change_type: HandoffChangeType,
    ) -> list[Event]:
        """Appends `drafts`, of which `drafts[recorded]` records a handoff change, and logs that
        change for the inbox. The event carries the change's inbox position, so every replica's
        inbox learns the new head from the event itself, without a store read."""
        position = await rows.next_position(conn)
        lifecycle = drafts[recorded]
        drafts[recorded] = replace(lifecycle, data={**lifecycle.data, INBOX_POSITION: position})
        events = await self._repo.append_in(conn, session_id, drafts, actor=_ACTING.get())
        await rows.insert_change(conn, position, handoff, change_type, events[recorded])
        return events

    @staticmethod
    def _mode_drafts(session: Session, mode: SessionMode, reason: str) -> list[EventDraft]:
        if session.mode is mode:
            return []
        return [mode_changed(session.mode, mode, reason, actor=_ACTING.get())]

    # ------------------------------------------------------------------ queue

    async def _queue_updates(
        self,
        conn: Transaction,
        agent_id: str,
        policy: HandoffPolicy,
        only: str,
        correlation: str = "",
    ) -> list[Event]:
        """Tells the customer of handoff `only` (whose session the transaction holds) their
        place and estimated wait."""
        queue = await rows.pending_queue(conn, agent_id)
        waits = await rows.recent_claim_waits_us(conn, agent_id)
        for position, waiting in enumerate(queue, start=1):
            if waiting.id == only:
                draft = queue_event(policy, waiting, position, waits)
                draft = replace(draft, correlation_id=correlation) if correlation else draft
                return await self._repo.append_in(
                    conn, waiting.session_id, [draft], actor=_ACTING.get()
                )
        return []

    def _queue_moved(self, agent_id: str) -> None:
        """Called inside a transaction that took a handoff out of the agent's queue."""
        self._queues_moved.add(agent_id)
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        """New places for the waiting customers of queues that moved: one small transaction per
        customer, each locking only their session. Bursts of claims coalesce."""
        while self._queues_moved:
            agent_id = self._queues_moved.pop()
            try:
                await self._announce_queue(agent_id)
            except Exception as error:  # best effort: the next move announces again
                log.info("queue positions for agent %s not announced: %s", agent_id, error)

    async def _announce_queue(self, agent_id: str) -> None:
        queue = (await self._reader.pending(agent_id))[:MAX_QUEUE_UPDATES]
        for position, waiting in enumerate(queue, start=1):

            async def job(
                conn: Transaction, waiting: Handoff = waiting, position: int = position
            ) -> tuple[None, list[Event]]:
                await rows.lock_session(conn, waiting.session_id)
                current = await rows.pending_queue(conn, agent_id)
                ids = [h.id for h in current]
                if waiting.id not in ids or ids.index(waiting.id) + 1 != position:
                    return None, []  # moved again meanwhile; the next round tells them
                policy = await rows.agent_policy(conn, agent_id)
                waits = await rows.recent_claim_waits_us(conn, agent_id)
                draft = queue_event(policy, waiting, position, waits)
                return None, await self._repo.append_in(
                    conn, waiting.session_id, [draft], actor=_ACTING.get()
                )

            await self._write(job)

    async def _write(self, job: Any) -> Any:
        """`run_write`, with who acts (read here, in the caller's context) available to the
        job's appends and lifecycle events on the writer task."""
        actor = current_actor()

        async def as_actor(conn: Transaction) -> Any:
            token = _ACTING.set(actor)
            try:
                return await job(conn)
            finally:
                _ACTING.reset(token)

        return await self._repo.run_write(as_actor)

    async def idle(self) -> None:
        """Waits for pending queue announcements (tests, shutdown)."""
        while self._announcer is not None and not self._announcer.done():
            await asyncio.wait([self._announcer])

    # ------------------------------------------------------------------ operator controls

    async def _locked(
        self, conn: Transaction, handoff_id: str, expected_epoch: int | None = None
    ) -> tuple[Session, Handoff]:
        handoff = await rows.load_handoff(conn, handoff_id)
        session = await rows.lock_session(conn, handoff.session_id)
        # A stale picture is refused before anything else is judged on it.
        if expected_epoch is not None and expected_epoch != session.control_epoch:
            raise StaleEpoch(session.id, expected_epoch, session.control_epoch)
        # Re-read under the session lock: another transaction may have changed it meanwhile.
        return session, await rows.load_handoff(conn, handoff_id)

    @staticmethod
    def _require_open(handoff: Handoff) -> None:
        if handoff.state is HandoffState.ENDED:
            raise FailedPrecondition(
                f"handoff {handoff.id!r} already ended ({handoff.outcome.value})",
                metadata={"handoff_id": handoff.id, "state": handoff.state.value},
            )

    @staticmethod
    def _held_by_other(handoff: Handoff, operator_id: str) -> FailedPrecondition:
        holder = handoff.operator
        assert holder is not None
        return FailedPrecondition(
            f"handoff {handoff.id!r} is held by operator {holder.id!r} "
            f"({holder.display_name or 'no name'}), not {operator_id!r}",
            metadata={"handoff_id": handoff.id, "holder_id": holder.id},
        )

    async def claim(
        self,
        handoff_id: str,
        operator: Operator,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
    ) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id, expected_epoch)
            self._check_claimable(handoff, operator)
            return await self._claim_in(
                conn, session, handoff, operator, on_behalf_of_ai, expected_epoch, "claimed"
            )

        return await self._with_position(await self._write(job))

    def _check_claimable(self, handoff: Handoff, operator: Operator) -> None:
        self._require_open(handoff)
        if handoff.state is HandoffState.CLAIMED:
            assert handoff.operator is not None
            if handoff.operator.id != operator.id:
                raise self._held_by_other(handoff, operator.id)
            raise FailedPrecondition(
                f"handoff {handoff.id!r} is already held by you ({operator.id!r})",
                metadata={"handoff_id": handoff.id, "holder_id": operator.id},
            )
        if handoff.offered_to is not None and handoff.offered_to.id != operator.id:
            raise FailedPrecondition(
                f"handoff {handoff.id!r} is offered to operator {handoff.offered_to.id!r}; "
                "only they can claim it until they decline",
                metadata={"handoff_id": handoff.id, "offered_to": handoff.offered_to.id},
            )

    async def _claim_in(
        self,
        conn: Transaction,
        session: Session,
        handoff: Handoff,
        operator: Operator,
        on_behalf_of_ai: bool,
        expected_epoch: int | None,
        change: str,
        *,
        announce: bool = True,
    ) -> tuple[Handoff, list[Event]]:
        now = self.clock()
        policy = await rows.agent_policy(conn, session.agent_id)
        epoch = await rows.change_control(conn, session, expected_epoch, SessionMode.MANUAL, now)
        was_pending = handoff.state is HandoffState.PENDING
        handoff = replace(
            handoff,
            state=HandoffState.CLAIMED,
            operator=operator,
            operator_on_behalf_of_ai=on_behalf_of_ai,
            offered_to=None,
            claimed_at_us=handoff.claimed_at_us or now,
            control_epoch=epoch,
        )
        await rows.save_handoff(
            conn,
            handoff,
            claim_deadline_us=None,
            inactivity_deadline_us=policies.deadline(now, policy.inactivity_timeout_s),
        )
        drafts = self._mode_drafts(session, SessionMode.MANUAL, f"{change} by {operator.id}")
        recorded = len(drafts)
        drafts.append(lifecycle_event(change, handoff, on_behalf_of_ai=on_behalf_of_ai))
        if announce:
            drafts.append(system_message(self._joined_text(policy, operator, on_behalf_of_ai)))
        change_type = (
            HandoffChangeType.TRANSFERRED if change == "transferred" else HandoffChangeType.CLAIMED
        )
        events = await self._append_recorded(
            conn, session.id, drafts, recorded, handoff, change_type
        )
        if was_pending and handoff.requested_by is not HandoffRequester.HUMAN_TAKEOVER:
            self._queue_moved(session.agent_id)
        return handoff, events

    @staticmethod
    def _joined_text(policy: HandoffPolicy, operator: Operator, on_behalf_of_ai: bool) -> str:
        if on_behalf_of_ai or not operator.display_name:
            return policies.text(policy, "operator_joined_anonymous_message")
        return policies.text(policy, "operator_joined_message", operator=operator.display_name)

    async def offer(
        self, handoff_id: str, operator: Operator, expected_epoch: int | None = None
    ) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id, expected_epoch)
            self._require_open(handoff)
            if handoff.state is not HandoffState.PENDING:
                raise self._held_by_other(handoff, operator.id)
            return await self._change_offer(
                conn, session, handoff, operator, HandoffChangeType.OFFERED, expected_epoch
            )

        return await self._with_position(await self._write(job))

    async def respond_to_offer(
        self,
        handoff_id: str,
        operator: Operator,
        accept: bool,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
    ) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id, expected_epoch)
            self._require_open(handoff)
            if handoff.offered_to is None or handoff.offered_to.id != operator.id:
                raise FailedPrecondition(
                    f"handoff {handoff_id!r} is not offered to operator {operator.id!r}",
                    metadata={"handoff_id": handoff_id},
                )
            if accept:
                return await self._claim_in(
                    conn, session, handoff, operator, on_behalf_of_ai, expected_epoch, "claimed"
                )
            return await self._change_offer(
                conn, session, handoff, operator, HandoffChangeType.OFFER_DECLINED, expected_epoch
            )

        return await self._with_position(await self._write(job))

    async def _change_offer(
        self,
        conn: Transaction,
        session: Session,
        handoff: Handoff,
        operator: Operator,
        change_type: HandoffChangeType,
        expected_epoch: int | None,
    ) -> tuple[Handoff, list[Event]]:
        """Offers the handoff to `operator` (OFFERED), or withdraws their offer (OFFER_DECLINED)."""
        offered = change_type is HandoffChangeType.OFFERED
        epoch = await rows.change_control(conn, session, expected_epoch, now_us=self.clock())
        handoff = replace(handoff, offered_to=operator if offered else None, control_epoch=epoch)
        await rows.save_handoff(conn, handoff)
        who = {"id": operator.id, "display_name": operator.display_name}
        draft = lifecycle_event(
            change_type.value, handoff, **({"offered_to": who} if offered else {"declined_by": who})
        )
        events = await self._append_recorded(conn, session.id, [draft], 0, handoff, change_type)
        return handoff, events

    async def transfer(
        self,
        handoff_id: str,
        from_operator_id: str,
        to_operator: Operator,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
    ) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id, expected_epoch)
            self._require_open(handoff)
            if handoff.state is not HandoffState.CLAIMED or handoff.operator is None:
                raise FailedPrecondition(
                    f"handoff {handoff_id!r} is not claimed; claim or offer it instead",
                    metadata={"handoff_id": handoff_id, "state": handoff.state.value},
                )
            if handoff.operator.id != from_operator_id:
                raise self._held_by_other(handoff, from_operator_id)
            if to_operator.id == from_operator_id:
                raise FailedPrecondition(
                    f"operator {to_operator.id!r} already holds handoff {handoff_id!r}",
                    metadata={"handoff_id": handoff_id},
                )
            return await self._claim_in(
                conn, session, handoff, to_operator, on_behalf_of_ai, expected_epoch, "transferred"
            )

        return await self._with_position(await self._write(job))

    async def release(
        self,
        handoff_id: str,
        operator_id: str,
        outcome: HandoffOutcome,
        note: str = "",
        expected_epoch: int | None = None,
    ) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id, expected_epoch)
            self._require_open(handoff)
            if handoff.state is HandoffState.CLAIMED and (
                handoff.operator is None or handoff.operator.id != operator_id
            ):
                raise self._held_by_other(handoff, operator_id)
            offered = handoff.offered_to
            if operator_id and offered is not None and offered.id != operator_id:
                # Only the operator it is offered to (or a backend naming no one) may end it.
                raise FailedPrecondition(
                    f"handoff {handoff.id!r} is offered to operator {offered.id!r}, not "
                    f"{operator_id!r}; only they can end it until they decline",
                    metadata={"handoff_id": handoff.id, "offered_to": offered.id},
                )
            return await self._end_in(conn, session, handoff, outcome, note, expected_epoch)

        return await self._write(job)

    async def _end_in(
        self,
        conn: Transaction,
        session: Session,
        handoff: Handoff,
        outcome: HandoffOutcome,
        note: str,
        expected_epoch: int | None,
        *,
        to_ai: bool | None = None,
    ) -> tuple[Handoff, list[Event]]:
        now = self.clock()
        policy = await rows.agent_policy(conn, session.agent_id)
        back_to_ai = outcome is HandoffOutcome.RETURNED_TO_AI if to_ai is None else to_ai
        mode = SessionMode.AUTO if back_to_ai else None
        epoch = await rows.change_control(conn, session, expected_epoch, mode, now)
        was_pending = handoff.state is HandoffState.PENDING
        handoff = replace(
            handoff,
            state=HandoffState.ENDED,
            outcome=outcome,
            note=note,
            ended_at_us=now,
            offered_to=None,
            control_epoch=epoch,
        )
        await rows.save_handoff(conn, handoff, claim_deadline_us=None, inactivity_deadline_us=None)
        drafts = self._mode_drafts(session, SessionMode.AUTO, "handoff ended") if mode else []
        recorded = len(drafts)
        # The note is context for the AI agent after a return (turns read custom events).
        drafts.append(lifecycle_event("ended", handoff, outcome=outcome.value, note=note))
        if back_to_ai:
            drafts.append(system_message(policies.text(policy, "ai_back_message")))
        events = await self._append_recorded(
            conn, session.id, drafts, recorded, handoff, HandoffChangeType.ENDED
        )
        if was_pending and handoff.requested_by is not HandoffRequester.HUMAN_TAKEOVER:
            self._queue_moved(session.agent_id)
        return handoff, events

    # ------------------------------------------------------------------ messages and modes

    async def append_human_message(self, session_id: str, draft: EventDraft) -> Event:
        """Appends a human agent's message. On a session nobody holds (AUTO, or no open
        handoff) the human takes it over: MANUAL, a handoff claimed by them, in the same
        transaction; a PENDING handoff is claimed by whoever answers first (unless it is offered
        to someone else). On a CLAIMED handoff only its holder writes; a message without a
        participant counts as the holder's."""
        participant = draft.data.get("participant") or {}
        operator = Operator(participant.get("id", ""), participant.get("display_name", ""))
        on_behalf = draft.source is EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT
        try:
            # The common case — the holder answering — rides the group commit.
            return await self._repo.append_holder_message(
                session_id, draft, operator.id, self.clock(), current_actor()
            )
        except NeedsHandoffControl:
            pass

        async def job(conn: Transaction) -> tuple[Event, list[Event]]:
            session = await rows.lock_session(conn, session_id)
            if draft.idempotency_key and await self._repo.key_used(
                conn, session_id, draft.idempotency_key
            ):
                # A retry: the original (or a key conflict) without a second takeover.
                (event,) = await self._repo.append_in(
                    conn, session_id, [draft], actor=_ACTING.get()
                )
                return event, []
            events: list[Event] = []
            now = self.clock()
            handoff = await rows.open_handoff_of(conn, session_id)
            self._check_author(session_id, handoff, operator)
            if handoff is None:
                opening = HandoffOpening(
                    session_id,
                    "taken over by a human agent",
                    HandoffRequester.HUMAN_TAKEOVER,
                    "",
                    Availability(True),
                )
                handoff, opened = await self._takeover_in(
                    conn, session, opening, operator, on_behalf
                )
                events += opened
                session = await rows.lock_session(conn, session_id)
            elif handoff.state is HandoffState.PENDING:
                handoff, claimed = await self._claim_in(
                    conn, session, handoff, operator, on_behalf, None, "claimed"
                )
                events += claimed
            (message,) = await self._repo.append_in(conn, session_id, [draft], actor=_ACTING.get())
            policy = await rows.agent_policy(conn, session.agent_id)
            if handoff.first_human_reply_at_us is None:
                handoff = replace(handoff, first_human_reply_at_us=now)
            await rows.save_handoff(
                conn,
                handoff,
                inactivity_deadline_us=policies.deadline(now, policy.inactivity_timeout_s),
            )
            return message, [*events, message]

        return await self._write(job)

    def _check_author(self, session_id: str, handoff: Handoff | None, author: Operator) -> None:
        if handoff is not None and handoff.state is HandoffState.CLAIMED:
            if author.id and handoff.operator is not None and author.id != handoff.operator.id:
                raise self._held_by_other(handoff, author.id)
            return
        if not author.id:
            raise InvalidArgument.single(
                "message.participant.id",
                f"required: nobody holds session {session_id!r} yet, and this message would "
                "hand it to its author",
            )
        if handoff is not None and handoff.offered_to and handoff.offered_to.id != author.id:
            raise FailedPrecondition(
                f"handoff {handoff.id!r} is offered to operator {handoff.offered_to.id!r}; "
                "only they can take it until they decline",
                metadata={"handoff_id": handoff.id, "offered_to": handoff.offered_to.id},
            )

    async def _takeover_in(
        self,
        conn: Transaction,
        session: Session,
        opening: HandoffOpening,
        operator: Operator,
        on_behalf_of_ai: bool,
    ) -> tuple[Handoff, list[Event]]:
        handoff, events = await self.open_in(conn, opening, None, announce=False)
        session = await rows.lock_session(conn, session.id)
        claimed, more = await self._claim_in(
            conn, session, handoff, operator, on_behalf_of_ai, None, "claimed"
        )
        return claimed, events + more

    async def on_mode_change(
        self,
        conn: Transaction,
        session: Session,
        mode: SessionMode,
        reason: str,
        actor: Actor | None,
    ) -> list[Event]:
        """UpdateSession's mode change: MANUAL opens a handoff (external system) when none is
        open; AUTO ends the open one as RETURNED_TO_AI."""
        token = _ACTING.set(actor)
        try:
            return await self._mode_change_in(conn, session, mode, reason, actor)
        finally:
            _ACTING.reset(token)

    async def _mode_change_in(
        self,
        conn: Transaction,
        session: Session,
        mode: SessionMode,
        reason: str,
        actor: Actor | None,
    ) -> list[Event]:
        handoff = await rows.open_handoff_of(conn, session.id)
        if mode is SessionMode.MANUAL and handoff is None:
            policy = await rows.agent_policy(conn, session.agent_id)
            present = await rows.operators_present_in(conn, session.agent_id, now_us())
            opening = HandoffOpening(
                session.id,
                reason or "mode set to manual",
                HandoffRequester.EXTERNAL_SYSTEM,
                "",
                self._availability(policy, present),
            )
            _, events = await self.open_in(conn, opening)
            return events
        if mode is SessionMode.AUTO and handoff is not None:
            _, events = await self._end_in(
                conn, session, handoff, HandoffOutcome.RETURNED_TO_AI, reason, None
            )
            return events
        await rows.change_control(conn, session, None, mode, self.clock())
        return await self._repo.append_in(
            conn, session.id, self._mode_drafts(session, mode, reason), actor=actor
        )

    # ------------------------------------------------------------------ timeouts

    async def fire_timeout(self, due: DueTimeout) -> bool:
        """Acts on one due timeout; False when it no longer applies (claimed, answered, ended,
        or another replica fired it). Runs once: the deadline is cleared in the same
        transaction."""

        async def job(conn: Transaction) -> tuple[bool, list[Event]]:
            session, handoff = await self._locked(conn, due.handoff_id)
            now = self.clock()
            deadline = await rows.deadline_of(conn, handoff.id, due.kind)
            if not handoff.is_open or deadline is None or deadline > now:
                return False, []
            policy = await rows.agent_policy(conn, session.agent_id)
            if due.kind == "claim":
                if handoff.state is not HandoffState.PENDING:
                    return False, []
                if policy.claim_timeout_action == "return_to_ai":
                    _, events = await self._end_in(
                        conn,
                        session,
                        handoff,
                        HandoffOutcome.TIMED_OUT,
                        "claim timeout",
                        None,
                        to_ai=True,
                    )
                    return True, events
                await rows.save_handoff(conn, handoff, claim_deadline_us=None)
                drafts = [
                    lifecycle_event("claim_timeout", handoff),
                    system_message(policies.text(policy, "claim_timeout_message")),
                ]
                events = await self._append_recorded(
                    conn, session.id, drafts, 0, handoff, HandoffChangeType.CLAIM_TIMEOUT
                )
                return True, events
            to_ai = policy.inactivity_timeout_action != "end"
            _, events = await self._end_in(
                conn,
                session,
                handoff,
                HandoffOutcome.TIMED_OUT,
                "inactivity timeout",
                None,
                to_ai=to_ai,
            )
            return True, events

        return await self._write(job)

    # ------------------------------------------------------------------ reads

    async def get(self, handoff_id: str) -> Handoff:
        return await self._with_position(await self._reader.get(handoff_id))

    async def _with_position(self, handoff: Handoff) -> Handoff:
        position = await self._reader.queue_position(handoff)
        return replace(handoff, queue_position=position) if position else handoff
