"""The handoff lifecycle as a pure function.

    decide(handoff, command, now, context) -> Decision | Refusal

`handoff` is the one the command acts on (or the session's open one; None when there is none),
`context` what else the rules read (the session as locked by the caller, the agent's policy).
A Decision (decision.py) says everything to write, in one transaction: the handoff row and its
deadlines, the session's new control epoch (and mode), the events to append and which of them
record a change on the operator inbox. A Refusal (refusals.py) says why not. No I/O here: the
controls (controls.py) read what this needs, call it, and apply what it decided (apply.py).

States: PENDING → CLAIMED → ENDED (and PENDING → ENDED). Every change of who controls the
session bumps its control epoch; a caller's `expected_epoch` is checked before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import assert_never

from baton_server.domain import (
    Actor,
    EventDraft,
    Handoff,
    HandoffChangeType,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    Operator,
    Session,
    SessionMode,
    mode_changed,
)
from baton_server.handoff import policy as policies
from baton_server.handoff import refusals
from baton_server.handoff.availability import availability
from baton_server.handoff.commands import (
    Claim,
    ClaimTimeoutAction,
    Command,
    HumanMessage,
    InactivityTimeoutAction,
    ModeChange,
    Offer,
    Open,
    Release,
    RespondToOffer,
    Timeout,
    TimeoutKind,
    Transfer,
)
from baton_server.handoff.decision import (
    KEEP,
    Context,
    ControlChange,
    Deadlines,
    Decision,
    InboxEntry,
    Keep,
)
from baton_server.handoff.drafts import (
    HandoffEvent,
    joined_text,
    lifecycle_event,
    system_message,
)
from baton_server.handoff.refusals import Refusal

TAKEOVER_REASON = "taken over by a human agent"


def decide(
    handoff: Handoff | None, command: Command, now_us: int, context: Context
) -> Decision | Refusal:
    plan = _Plan(context.session, context.policy, now_us, _actor(command))
    match command:
        case Open():
            refusal = _request(plan, handoff, command)
        case Claim():
            refusal = _claim_command(plan, _acted_on(handoff), command)
        case Offer():
            refusal = _offer(plan, _acted_on(handoff), command)
        case RespondToOffer():
            refusal = _respond(plan, _acted_on(handoff), command)
        case Transfer():
            refusal = _transfer(plan, _acted_on(handoff), command)
        case Release():
            refusal = _release(plan, _acted_on(handoff), command)
        case HumanMessage():
            refusal = _human_message(plan, handoff, command)
        case ModeChange():
            refusal = _mode_change(plan, handoff, command)
        case Timeout():
            refusal = _timeout(plan, _acted_on(handoff), command)
        case _:
            assert_never(command)
    return refusal if refusal is not None else plan.decision()


def _actor(command: Command) -> Actor | None:
    return None if isinstance(command, Timeout) else command.actor


def _acted_on(handoff: Handoff | None) -> Handoff:
    if handoff is None:  # the caller loads it by id (NotFound is theirs to raise)
        raise ValueError("this command acts on a handoff; none was given")
    return handoff


@dataclass(slots=True)
class _Plan:
    """A decision being built: the steps of one command (a takeover opens, then claims)."""

    session: Session
    policy: HandoffPolicy
    now_us: int
    actor: Actor | None
    handoff: Handoff | None = None
    is_new: bool = False
    claim_deadline: int | Keep | None = KEEP
    inactivity_deadline: int | Keep | None = KEEP
    control: ControlChange | None = None
    events: list[EventDraft] = field(default_factory=list)
    inbox: list[InboxEntry] = field(default_factory=list)
    queue_moved: bool = False
    tell_queue_position: bool = False
    correlation_id: str = ""

    def take_control(self, mode: SessionMode | None) -> tuple[Session, int]:
        """Bumps the control epoch (and sets `mode`); returns the session before, and the
        new epoch."""
        before = self.session
        epoch = before.control_epoch + 1
        self.session = replace(
            before, control_epoch=epoch, mode=mode if mode is not None else before.mode
        )
        if mode is None and self.control is not None:
            mode = self.control.mode  # a mode an earlier step of this command set stays set
        self.control = ControlChange(epoch, mode)
        return before, epoch

    def mode_drafts(self, before: Session, mode: SessionMode, reason: str) -> list[EventDraft]:
        if before.mode is mode:
            return []
        return [mode_changed(before.mode, mode, reason, actor=self.actor)]

    def record(
        self, handoff: Handoff, change: HandoffChangeType, drafts: list[EventDraft], recorded: int
    ) -> None:
        """Appends `drafts`, of which `drafts[recorded]` is the lifecycle event recording
        this `change` of `handoff` on the inbox."""
        self.inbox.append(InboxEntry(change, handoff, len(self.events) + recorded))
        self.events += drafts
        self.handoff = handoff

    def left_queue(self, handoff: Handoff) -> None:
        # Takeovers never queued.
        if handoff.state is HandoffState.PENDING:
            if handoff.requested_by is not HandoffRequester.HUMAN_TAKEOVER:
                self.queue_moved = True

    def decision(self) -> Decision:
        if self.correlation_id:
            self.events = [replace(d, correlation_id=self.correlation_id) for d in self.events]
        return Decision(
            session_id=self.session.id,
            now_us=self.now_us,
            actor=self.actor,
            handoff=self.handoff,
            is_new=self.is_new,
            deadlines=Deadlines(self.claim_deadline, self.inactivity_deadline),
            control=self.control,
            events=tuple(self.events),
            inbox=tuple(self.inbox),
            queue_moved=self.queue_moved,
            tell_queue_position=self.tell_queue_position,
            correlation_id=self.correlation_id,
        )


def _stale(session: Session, expected_epoch: int | None) -> Refusal | None:
    # A stale picture is refused before anything else is judged on it.
    if expected_epoch is not None and expected_epoch != session.control_epoch:
        return refusals.stale_epoch(session, expected_epoch)
    return None


# ---------------------------------------------------------------- steps (no refusals)


def _open(
    plan: _Plan,
    handoff_id: str,
    reason: str,
    requested_by: HandoffRequester,
    summary: str,
    available: bool,
    announce: bool,
) -> Handoff:
    now = plan.now_us
    before, epoch = plan.take_control(SessionMode.MANUAL)
    handoff = Handoff(
        id=handoff_id,
        session_id=before.id,
        agent_id=before.agent_id,
        state=HandoffState.PENDING,
        reason=reason,
        summary=summary,
        requested_by=requested_by,
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
    plan.is_new = True
    plan.claim_deadline = policies.deadline(now, plan.policy.claim_timeout_s)
    plan.inactivity_deadline = None
    drafts = plan.mode_drafts(before, SessionMode.MANUAL, reason)
    recorded = len(drafts)
    drafts.append(
        lifecycle_event(
            HandoffEvent.REQUESTED,
            handoff,
            plan.actor,
            reason=reason,
            requested_by=requested_by.value,
            summary=summary,
            operators_available=available,
        )
    )
    if announce:
        # One message, then the place in the queue: "nobody is available" already says the
        # request waits for the team, so it replaces "connecting you" rather than follow it.
        told = "handoff_started_message" if available else "no_operator_message"
        drafts.append(system_message(policies.text(plan.policy, told)))
    plan.record(handoff, HandoffChangeType.REQUESTED, drafts, recorded)
    plan.tell_queue_position = announce
    return handoff


def _claim(
    plan: _Plan,
    handoff: Handoff,
    operator: Operator,
    on_behalf_of_ai: bool,
    *,
    transfer: bool = False,
) -> Handoff:
    """`handoff` becomes `operator`'s (claimed, or transferred from its holder)."""
    event, change = (
        (HandoffEvent.TRANSFERRED, HandoffChangeType.TRANSFERRED)
        if transfer
        else (HandoffEvent.CLAIMED, HandoffChangeType.CLAIMED)
    )
    now = plan.now_us
    before, epoch = plan.take_control(SessionMode.MANUAL)
    plan.left_queue(handoff)
    claimed = replace(
        handoff,
        state=HandoffState.CLAIMED,
        operator=operator,
        operator_on_behalf_of_ai=on_behalf_of_ai,
        offered_to=None,
        claimed_at_us=handoff.claimed_at_us or now,
        control_epoch=epoch,
    )
    plan.claim_deadline = None
    plan.inactivity_deadline = policies.deadline(now, plan.policy.inactivity_timeout_s)
    drafts = plan.mode_drafts(before, SessionMode.MANUAL, f"{event.value} by {operator.id}")
    recorded = len(drafts)
    drafts.append(lifecycle_event(event, claimed, plan.actor, on_behalf_of_ai=on_behalf_of_ai))
    drafts.append(system_message(joined_text(plan.policy, operator, on_behalf_of_ai)))
    plan.record(claimed, change, drafts, recorded)
    return claimed


def _change_offer(plan: _Plan, handoff: Handoff, operator: Operator, offered: bool) -> None:
    """Offers the handoff to `operator` (OFFERED), or withdraws their offer (OFFER_DECLINED)."""
    _, epoch = plan.take_control(None)
    changed = replace(handoff, offered_to=operator if offered else None, control_epoch=epoch)
    who = {"id": operator.id, "display_name": operator.display_name}
    if offered:
        draft = lifecycle_event(HandoffEvent.OFFERED, changed, plan.actor, offered_to=who)
        plan.record(changed, HandoffChangeType.OFFERED, [draft], 0)
    else:
        draft = lifecycle_event(HandoffEvent.OFFER_DECLINED, changed, plan.actor, declined_by=who)
        plan.record(changed, HandoffChangeType.OFFER_DECLINED, [draft], 0)


def _end(plan: _Plan, handoff: Handoff, outcome: HandoffOutcome, note: str, to_ai: bool) -> None:
    before, epoch = plan.take_control(SessionMode.AUTO if to_ai else None)
    plan.left_queue(handoff)
    ended = replace(
        handoff,
        state=HandoffState.ENDED,
        outcome=outcome,
        note=note,
        ended_at_us=plan.now_us,
        offered_to=None,
        control_epoch=epoch,
    )
    plan.claim_deadline = plan.inactivity_deadline = None
    drafts = plan.mode_drafts(before, SessionMode.AUTO, "handoff ended") if to_ai else []
    recorded = len(drafts)
    # The note is context for the AI agent after a return (turns read custom events).
    drafts.append(
        lifecycle_event(HandoffEvent.ENDED, ended, plan.actor, outcome=outcome.value, note=note)
    )
    if to_ai:
        drafts.append(system_message(policies.text(plan.policy, "ai_back_message")))
    plan.record(ended, HandoffChangeType.ENDED, drafts, recorded)


# ---------------------------------------------------------------- commands


def _request(plan: _Plan, handoff: Handoff | None, command: Open) -> Refusal | None:
    if refusal := _stale(plan.session, command.expected_epoch):
        return refusal
    if handoff is not None:
        return refusals.already_open(plan.session.id, handoff)
    _open(
        plan,
        command.handoff_id,
        command.reason,
        command.requested_by,
        command.summary,
        command.operators_available,
        command.announce,
    )
    plan.correlation_id = command.correlation_id
    return None


def _claimable(handoff: Handoff, operator: Operator) -> Refusal | None:
    if handoff.state is HandoffState.ENDED:
        return refusals.ended(handoff)
    if handoff.state is HandoffState.CLAIMED:
        if handoff.operator is None or handoff.operator.id != operator.id:
            return refusals.held_by_other(handoff, operator.id)
        return refusals.already_yours(handoff, operator.id)
    if handoff.offered_to is not None and handoff.offered_to.id != operator.id:
        return refusals.offered_to_other(handoff, handoff.offered_to, "claim")
    return None


def _claim_command(plan: _Plan, handoff: Handoff, command: Claim) -> Refusal | None:
    refusal = _stale(plan.session, command.expected_epoch) or _claimable(handoff, command.operator)
    if refusal is None:
        _claim(plan, handoff, command.operator, command.on_behalf_of_ai)
    return refusal


def _offer(plan: _Plan, handoff: Handoff, command: Offer) -> Refusal | None:
    if refusal := _stale(plan.session, command.expected_epoch):
        return refusal
    if handoff.state is HandoffState.ENDED:
        return refusals.ended(handoff)
    if handoff.state is not HandoffState.PENDING:
        return refusals.held_by_other(handoff, command.operator.id)
    _change_offer(plan, handoff, command.operator, offered=True)
    return None


def _respond(plan: _Plan, handoff: Handoff, command: RespondToOffer) -> Refusal | None:
    if refusal := _stale(plan.session, command.expected_epoch):
        return refusal
    if handoff.state is HandoffState.ENDED:
        return refusals.ended(handoff)
    if handoff.offered_to is None or handoff.offered_to.id != command.operator.id:
        return refusals.not_offered_to_you(handoff, command.operator.id)
    if command.accept:
        _claim(plan, handoff, command.operator, command.on_behalf_of_ai)
    else:
        _change_offer(plan, handoff, command.operator, offered=False)
    return None


def _transfer(plan: _Plan, handoff: Handoff, command: Transfer) -> Refusal | None:
    if refusal := _stale(plan.session, command.expected_epoch):
        return refusal
    if handoff.state is HandoffState.ENDED:
        return refusals.ended(handoff)
    if handoff.state is not HandoffState.CLAIMED or handoff.operator is None:
        return refusals.not_claimed(handoff)
    if handoff.operator.id != command.from_operator_id:
        return refusals.held_by_other(handoff, command.from_operator_id)
    if command.to_operator.id == command.from_operator_id:
        return refusals.same_operator(handoff, command.to_operator.id)
    _claim(plan, handoff, command.to_operator, command.on_behalf_of_ai, transfer=True)
    return None


def _release(plan: _Plan, handoff: Handoff, command: Release) -> Refusal | None:
    if refusal := _stale(plan.session, command.expected_epoch):
        return refusal
    if handoff.state is HandoffState.ENDED:
        return refusals.ended(handoff)
    operator_id = command.operator_id
    if handoff.state is HandoffState.CLAIMED and (
        handoff.operator is None or handoff.operator.id != operator_id
    ):
        return refusals.held_by_other(handoff, operator_id)
    offered = handoff.offered_to
    if operator_id and offered is not None and offered.id != operator_id:
        # Only the operator it is offered to (or a backend naming no one) may end it.
        return refusals.offered_to_other_not_you(handoff, offered, operator_id)
    to_ai = command.outcome is HandoffOutcome.RETURNED_TO_AI
    _end(plan, handoff, command.outcome, command.note, to_ai)
    return None


def _may_write(session: Session, handoff: Handoff | None, author: Operator) -> Refusal | None:
    """On a CLAIMED handoff only its holder writes (no participant: the holder). Otherwise the
    message hands the session to its author, who must be named (and be the one it is offered
    to, if it is)."""
    if handoff is not None and handoff.state is HandoffState.CLAIMED:
        if author.id and handoff.operator is not None and author.id != handoff.operator.id:
            return refusals.held_by_other(handoff, author.id)
        return None
    if not author.id:
        return refusals.participant_required(session.id)
    if handoff is not None and handoff.offered_to and handoff.offered_to.id != author.id:
        return refusals.offered_to_other(handoff, handoff.offered_to, "take")
    return None


def _human_message(plan: _Plan, handoff: Handoff | None, command: HumanMessage) -> Refusal | None:
    if refusal := _may_write(plan.session, handoff, command.operator):
        return refusal
    operator, on_behalf = command.operator, command.on_behalf_of_ai
    if handoff is None:  # nobody holds the session: its author takes it over
        opened = _open(
            plan,
            command.takeover_handoff_id,
            TAKEOVER_REASON,
            HandoffRequester.HUMAN_TAKEOVER,
            "",
            available=True,
            announce=False,
        )
        handoff = _claim(plan, opened, operator, on_behalf)
    elif handoff.state is HandoffState.PENDING:  # whoever answers first claims it
        handoff = _claim(plan, handoff, operator, on_behalf)
    now = plan.now_us
    if handoff.first_human_reply_at_us is None:
        handoff = replace(handoff, first_human_reply_at_us=now)
    plan.handoff = handoff
    plan.inactivity_deadline = policies.deadline(now, plan.policy.inactivity_timeout_s)
    return None


def _mode_change(plan: _Plan, handoff: Handoff | None, command: ModeChange) -> Refusal | None:
    mode = command.mode
    if mode is SessionMode.MANUAL and handoff is None:
        # An external system hands the session to humans.
        available = availability(plan.policy, plan.now_us, command.operators_present)
        _open(
            plan,
            command.handoff_id,
            command.reason or "mode set to manual",
            HandoffRequester.EXTERNAL_SYSTEM,
            "",
            available.available,
            announce=True,
        )
    elif mode is SessionMode.AUTO and handoff is not None:
        # The integration's override: whatever handoff is open ends.
        _end(plan, handoff, HandoffOutcome.RETURNED_TO_AI, command.reason, to_ai=True)
    else:
        before, _ = plan.take_control(mode)
        plan.events += plan.mode_drafts(before, mode, command.reason)
    return None


def _timeout(plan: _Plan, handoff: Handoff, command: Timeout) -> Refusal | None:
    deadline, now = command.deadline_us, plan.now_us
    # Claimed, answered, ended or fired by another replica meanwhile: nothing to do.
    if not handoff.is_open or deadline is None or deadline > now:
        return refusals.not_due(handoff, command.kind.value)
    if command.kind is TimeoutKind.INACTIVITY:
        to_ai = InactivityTimeoutAction.of(plan.policy) is InactivityTimeoutAction.RETURN_TO_AI
        _end(plan, handoff, HandoffOutcome.TIMED_OUT, "inactivity timeout", to_ai)
        return None
    if handoff.state is not HandoffState.PENDING:
        return refusals.not_due(handoff, command.kind.value)
    if ClaimTimeoutAction.of(plan.policy) is ClaimTimeoutAction.RETURN_TO_AI:
        _end(plan, handoff, HandoffOutcome.TIMED_OUT, "claim timeout", to_ai=True)
        return None
    # Keep waiting: tell the customer, and do not fire again.
    plan.claim_deadline = None
    drafts = [
        lifecycle_event(HandoffEvent.CLAIM_TIMEOUT, handoff, None),
        system_message(policies.text(plan.policy, "claim_timeout_message")),
    ]
    plan.record(handoff, HandoffChangeType.CLAIM_TIMEOUT, drafts, 0)
    return None
