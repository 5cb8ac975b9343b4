"""Handoff controls: request, offer, claim, transfer, release, takeover, mode changes, timeouts.

Each control is one write transaction on the repository's writer: read what the state machine
needs under the session's lock, let it decide (machine.py), write what it decided (apply.py).
Who acts is an argument (`actor`: the events' audit trail; None is Baton itself), passed on
explicitly into the write job, which runs on the writer task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from baton_server.domain import (
    Actor,
    Event,
    EventDraft,
    EventSource,
    Handoff,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    HolderReply,
    Operator,
    Session,
    SessionMode,
    now_us,
)
from baton_server.errors import NeedsHandoffControl
from baton_server.handoff import refusals
from baton_server.handoff.apply import apply_decision
from baton_server.handoff.availability import Availability, availability
from baton_server.handoff.commands import (
    Claim,
    Command,
    HumanMessage,
    ModeChange,
    Offer,
    Open,
    Release,
    RespondToOffer,
    Timeout,
    TimeoutKind,
    Transfer,
)
from baton_server.handoff.decision import Context, Decision
from baton_server.handoff.machine import decide
from baton_server.handoff.queue import QueueAnnouncer, tell_position
from baton_server.handoff.refusals import Refusal, RefusalReason
from baton_server.handoff.summary import Summarizer
from baton_server.observe.telemetry import NO_TELEMETRY, Telemetry
from baton_server.store import Repository, Transaction
from baton_server.store import handoffs as rows
from baton_server.store.handoffs import HandoffReader
from baton_server.store.ids import new_id

Clock = Callable[[], int]


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


class HandoffControls:
    def __init__(
        self,
        repository: Repository,
        reader: HandoffReader,
        summarizer: Summarizer,
        clock: Clock = now_us,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._repo = repository
        self._reader = reader
        self._summarizer = summarizer
        self.clock = clock
        self._telemetry = telemetry
        self._queues = QueueAnnouncer(repository)

    # ------------------------------------------------------------------ opening

    async def availability(self, agent_id: str, policy: HandoffPolicy) -> Availability:
        # Presence is about live streams: real time, not the (test-controllable) clock.
        present = await self._reader.operators_present(agent_id, now_us())
        return availability(policy, self.clock(), present)

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
            raise refusals.already_open(session_id, open_now).error()
        agent = await self._repo.get_agent(session.agent_id)
        summary = await self._summarizer.summarize(session_id, reason, matched_guideline)
        available = await self.availability(agent.id, agent.handoff_policy)
        return HandoffOpening(session_id, reason, requested_by, summary, available)

    async def request(
        self, opening: HandoffOpening, expected_epoch: int | None = None, *, actor: Actor | None
    ) -> Handoff:
        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            return await self.open_in(conn, opening, expected_epoch, actor=actor)

        handoff: Handoff = await self._repo.run_write(job)
        return await self._with_position(handoff)

    async def open_in(
        self,
        conn: Transaction,
        opening: HandoffOpening,
        expected_epoch: int | None = None,
        *,
        announce: bool = True,
        actor: Actor | None = None,
    ) -> tuple[Handoff, list[Event]]:
        """Opens a PENDING handoff inside the caller's transaction (also used by the engine for
        a tool-triggered handoff, in the transaction of the tool event)."""
        session = await rows.lock_session(conn, opening.session_id)
        existing = await rows.open_handoff_of(conn, session.id)
        command = Open(
            handoff_id=new_id("hof"),
            reason=opening.reason,
            requested_by=opening.requested_by,
            summary=opening.summary,
            operators_available=opening.availability.available,
            correlation_id=opening.correlation_id,
            announce=announce,
            expected_epoch=expected_epoch,
            actor=actor,
        )
        decision, events = await self._decide_and_apply(conn, session, existing, command)
        assert decision.handoff is not None  # an Open always yields its handoff
        return decision.handoff, events

    # ------------------------------------------------------------------ operator controls

    async def claim(
        self,
        handoff_id: str,
        operator: Operator,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
        *,
        actor: Actor | None,
    ) -> Handoff:
        command = Claim(
            operator=operator,
            on_behalf_of_ai=on_behalf_of_ai,
            expected_epoch=expected_epoch,
            actor=actor,
        )
        return await self._with_position(await self._act(handoff_id, command))

    async def offer(
        self,
        handoff_id: str,
        operator: Operator,
        expected_epoch: int | None = None,
        *,
        actor: Actor | None,
    ) -> Handoff:
        command = Offer(operator=operator, expected_epoch=expected_epoch, actor=actor)
        return await self._with_position(await self._act(handoff_id, command))

    async def respond_to_offer(
        self,
        handoff_id: str,
        operator: Operator,
        accept: bool,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
        *,
        actor: Actor | None,
    ) -> Handoff:
        command = RespondToOffer(
            operator=operator,
            accept=accept,
            on_behalf_of_ai=on_behalf_of_ai,
            expected_epoch=expected_epoch,
            actor=actor,
        )
        return await self._with_position(await self._act(handoff_id, command))

    async def transfer(
        self,
        handoff_id: str,
        from_operator_id: str,
        to_operator: Operator,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
        *,
        actor: Actor | None,
    ) -> Handoff:
        command = Transfer(
            from_operator_id=from_operator_id,
            to_operator=to_operator,
            on_behalf_of_ai=on_behalf_of_ai,
            expected_epoch=expected_epoch,
            actor=actor,
        )
        return await self._with_position(await self._act(handoff_id, command))

    async def release(
        self,
        handoff_id: str,
        operator_id: str,
        outcome: HandoffOutcome,
        note: str = "",
        expected_epoch: int | None = None,
        *,
        actor: Actor | None,
    ) -> Handoff:
        command = Release(
            operator_id=operator_id,
            outcome=outcome,
            note=note,
            expected_epoch=expected_epoch,
            actor=actor,
        )
        return await self._act(handoff_id, command)

    async def _act(self, handoff_id: str, command: Command) -> Handoff:
        """One control on one handoff, in its own transaction."""

        async def job(conn: Transaction) -> tuple[Handoff, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id)
            decision, events = await self._decide_and_apply(conn, session, handoff, command)
            assert decision.handoff is not None  # a control on a handoff yields it
            return decision.handoff, events

        result: Handoff = await self._repo.run_write(job)
        return result

    async def _locked(self, conn: Transaction, handoff_id: str) -> tuple[Session, Handoff]:
        handoff = await rows.load_handoff(conn, handoff_id)
        session = await rows.lock_session(conn, handoff.session_id)
        # Re-read under the session lock: another transaction may have changed it meanwhile.
        return session, await rows.load_handoff(conn, handoff_id)

    # ------------------------------------------------------------------ messages and modes

    async def append_human_message(
        self, session_id: str, draft: EventDraft, *, actor: Actor | None
    ) -> Event:
        """Appends a human agent's message. On a session nobody holds (AUTO, or no open
        handoff) the human takes it over: MANUAL, a handoff claimed by them, in the same
        transaction; a PENDING handoff is claimed by whoever answers first (unless it is offered
        to someone else). On a CLAIMED handoff only its holder writes; a message without a
        participant counts as the holder's."""
        participant = draft.data.get("participant") or {}
        operator = Operator(participant.get("id", ""), participant.get("display_name", ""))
        try:
            # The common case — the holder answering — rides the group commit.
            return await self._repo.append_holder_message(
                session_id, draft, HolderReply(operator.id, self.clock()), actor
            )
        except NeedsHandoffControl:
            pass
        command = HumanMessage(
            operator=operator,
            on_behalf_of_ai=draft.source is EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT,
            takeover_handoff_id=new_id("hof"),
            actor=actor,
        )

        async def job(conn: Transaction) -> tuple[Event, list[Event]]:
            session = await rows.lock_session(conn, session_id)
            key = draft.idempotency_key
            if key and await self._repo.key_used(conn, session_id, key):
                # A retry: the original (or a key conflict) without a second takeover.
                (event,) = await self._repo.append_in(conn, session_id, [draft], actor=actor)
                return event, []
            handoff = await rows.open_handoff_of(conn, session_id)
            _, events = await self._decide_and_apply(conn, session, handoff, command)
            (message,) = await self._repo.append_in(conn, session_id, [draft], actor=actor)
            return message, [*events, message]

        message: Event = await self._repo.run_write(job)
        return message

    async def on_mode_change(
        self,
        conn: Transaction,
        session: Session,
        mode: SessionMode,
        reason: str,
        actor: Actor | None,
    ) -> list[Event]:
        """UpdateSession's mode change, in its transaction: MANUAL opens a handoff (external
        system) when none is open; AUTO ends the open one as RETURNED_TO_AI."""
        handoff = await rows.open_handoff_of(conn, session.id)
        # Only MANUAL may open a handoff, whose requested event says whether anyone is there.
        present = mode is SessionMode.MANUAL and await rows.operators_present_in(
            conn, session.agent_id, now_us()
        )
        command = ModeChange(
            mode=mode,
            reason=reason,
            handoff_id=new_id("hof"),
            operators_present=present,
            actor=actor,
        )
        _, events = await self._decide_and_apply(conn, session, handoff, command)
        return events

    # ------------------------------------------------------------------ timeouts

    async def fire_timeout(self, handoff_id: str, kind: TimeoutKind) -> bool:
        """Acts on one due timeout; False when it no longer applies (claimed, answered, ended,
        or another replica fired it). Runs once: the deadline is cleared in the same
        transaction."""

        async def job(conn: Transaction) -> tuple[bool, list[Event]]:
            session, handoff = await self._locked(conn, handoff_id)
            stored = await rows.deadlines_of(conn, handoff.id)
            deadline = stored.claim_us if kind is TimeoutKind.CLAIM else stored.inactivity_us
            policy = await rows.agent_policy(conn, session.agent_id)
            command = Timeout(kind=kind, deadline_us=deadline)
            outcome = decide(handoff, command, self.clock(), Context(session, policy))
            if isinstance(outcome, Refusal):
                if outcome.reason is RefusalReason.NOT_DUE:
                    return False, []
                raise outcome.error()
            return True, await self._apply(conn, outcome, policy)

        fired: bool = await self._repo.run_write(job)
        return fired

    # ------------------------------------------------------------------ deciding and applying

    async def _decide_and_apply(
        self, conn: Transaction, session: Session, handoff: Handoff | None, command: Command
    ) -> tuple[Decision, list[Event]]:
        """Decides `command` on the locked `session` (refusals raise their error) and writes
        the decision in the transaction."""
        policy = await rows.agent_policy(conn, session.agent_id)
        outcome = decide(handoff, command, self.clock(), Context(session, policy))
        if isinstance(outcome, Refusal):
            raise outcome.error()
        events = await self._apply(conn, outcome, policy)
        if outcome.handoff is not None:
            self._observe(handoff, outcome.handoff)
        return outcome, events

    def _observe(self, before: Handoff | None, after: Handoff) -> None:
        """Metrics of a change (counted when decided: a rare rolled-back retry counts twice)."""
        claim_wait_s = None
        newly_claimed = before is None or before.state is not HandoffState.CLAIMED
        if after.state is HandoffState.CLAIMED and newly_claimed and after.claimed_at_us:
            claim_wait_s = max(0, after.claimed_at_us - after.requested_at_us) / 1_000_000
        self._telemetry.handoff_changed(after.state.value, claim_wait_s)

    async def _apply(
        self, conn: Transaction, decision: Decision, policy: HandoffPolicy
    ) -> list[Event]:
        events = await apply_decision(conn, self._repo, decision)
        handoff = decision.handoff
        if handoff is not None and decision.tell_queue_position:
            events += await tell_position(
                conn, self._repo, handoff, policy, decision.actor, decision.correlation_id
            )
        if handoff is not None and decision.queue_moved:
            self._queues.moved(handoff.agent_id)
        return events

    async def idle(self) -> None:
        """Waits for pending queue announcements (tests, shutdown)."""
        await self._queues.idle()

    # ------------------------------------------------------------------ reads

    async def get(self, handoff_id: str) -> Handoff:
        return await self._with_position(await self._reader.get(handoff_id))

    async def _with_position(self, handoff: Handoff) -> Handoff:
        position = await self._reader.queue_position(handoff)
        return replace(handoff, queue_position=position) if position else handoff
