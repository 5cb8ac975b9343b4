"""The handoff state machine (handoff/machine.py), without a database: every transition and every
refusal, as tables. Each row gives the handoff as it stands, a command (decided at NOW), and what
the machine must decide: the state after, the log entries (in order), the inbox changes, the
control change and the deadlines; or the refusal's reason and its exact wording (what clients
get). The outcomes that recur (requested, claimed, ended, ...) have builders, so that a row reads:
given this handoff, this command -> this outcome."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import pytest

from baton_server.domain import (
    Actor,
    EventDraft,
    EventKind,
    Handoff,
    HandoffChangeType,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    Operator,
    Session,
    SessionMode,
)
from baton_server.errors import (
    AlreadyExists,
    BatonError,
    FailedPrecondition,
    InvalidArgument,
    StaleEpoch,
)
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
from baton_server.handoff.decision import KEEP, Context, ControlChange, Deadlines, Decision
from baton_server.handoff.machine import decide
from baton_server.handoff.refusals import Refusal, RefusalReason

S = 1_000_000  # microseconds in a second
NOW = 1_800_000_000 * S
EPOCH = 3
NEXT = EPOCH + 1
ACTOR = Actor("key_ops", "operator")
OLGA = Operator("olga", "Olga")
BOB = Operator("bob", "Bob")
ANONYMOUS = Operator("")
# Timeouts armed, so every deadline the machine sets shows.
POLICY = HandoffPolicy(claim_timeout_s=60, inactivity_timeout_s=300)
RETURN_TO_AI = HandoffPolicy(claim_timeout_action="return_to_ai", inactivity_timeout_action="x")
END_ON_INACTIVITY = HandoffPolicy(inactivity_timeout_action="end")

AUTO = Session(
    id="ses_1",
    agent_id="agt_1",
    customer_id="cus_1",
    title="",
    mode=SessionMode.AUTO,
    metadata={},
    created_at_us=0,
    updated_at_us=0,
    next_offset=4,
    control_epoch=EPOCH,
)
MANUAL = replace(AUTO, mode=SessionMode.MANUAL)

PENDING = Handoff(
    id="hof_1",
    session_id=AUTO.id,
    agent_id=AUTO.agent_id,
    state=HandoffState.PENDING,
    reason="wants a person",
    summary="Reason: wants a person",
    requested_by=HandoffRequester.TOOL,
    operator=None,
    operator_on_behalf_of_ai=False,
    offered_to=None,
    requested_at_us=NOW - 30 * S,
    claimed_at_us=None,
    first_human_reply_at_us=None,
    ended_at_us=None,
    outcome=HandoffOutcome.NONE,
    note="",
    control_epoch=EPOCH,
)
OFFERED_TO_BOB = replace(PENDING, offered_to=BOB)
CLAIMED_BY_OLGA = replace(
    PENDING, state=HandoffState.CLAIMED, operator=OLGA, claimed_at_us=NOW - 10 * S
)
ENDED = replace(
    CLAIMED_BY_OLGA,
    state=HandoffState.ENDED,
    outcome=HandoffOutcome.RESOLVED_BY_HUMAN,
    ended_at_us=NOW - S,
)

CLAIM_DEADLINE = NOW + 60 * S
INACTIVITY_DEADLINE = NOW + 300 * S
UNCHANGED = Deadlines(claim_us=KEEP, inactivity_us=KEEP)
CLAIMED_DEADLINES = Deadlines(claim_us=None, inactivity_us=INACTIVITY_DEADLINE)
ENDED_DEADLINES = Deadlines(claim_us=None, inactivity_us=None)

# Log entries as `entries` shows them.
MODE_CHANGED = "session_mode_changed"
CONNECTING = "say: I'm connecting you with a member of our team."
NO_OPERATOR = (
    "say: No one from our team is available right now. Your request is queued and we will "
    "answer here as soon as we can."
)
JOINED = "say: Olga has joined the conversation."
BOB_JOINED = "say: Bob has joined the conversation."
ANONYMOUS_JOINED = "say: A member of our team has joined the conversation."
STILL_BUSY = "say: Thank you for waiting; our team is still busy."
AI_BACK = "say: You're back with our virtual assistant."


def entries(events: tuple[EventDraft, ...]) -> list[str]:
    """Log entries, readable: a lifecycle event by its type, a text by what it says."""
    return [
        str(d.data["type"]).removeprefix("baton.")
        if d.kind is EventKind.CUSTOM
        else f"say: {d.data['text']}"
        for d in events
    ]


# What the rules read besides the handoff: the session as the caller locked it, the policy.
ON_MANUAL = Context(MANUAL, POLICY)
ON_AUTO = Context(AUTO, POLICY)


def decided(handoff: Handoff | None, command: Command, on: Context = ON_MANUAL) -> Decision:
    outcome = decide(handoff, command, NOW, on)
    assert isinstance(outcome, Decision), outcome
    return outcome


def refused(handoff: Handoff | None, command: Command, on: Context = ON_MANUAL) -> Refusal:
    outcome = decide(handoff, command, NOW, on)
    assert isinstance(outcome, Refusal), outcome
    return outcome


def after(decision: Decision) -> Handoff:
    """The handoff row the decision writes (there must be one)."""
    assert decision.handoff is not None
    return decision.handoff


def recorded(decision: Decision) -> dict[str, Any]:
    """The data of the lifecycle event that records the decision's (first) inbox change."""
    return decision.events[decision.inbox[0].event_index].data


# ---------------------------------------------------------------- commands (by who acts: ACTOR)


def opening(**changes: object) -> Open:
    command = Open(
        handoff_id="hof_new",
        reason="wants a person",
        requested_by=HandoffRequester.CUSTOMER,
        summary="Reason: wants a person",
        operators_available=True,
        actor=ACTOR,
    )
    return replace(command, **changes)  # type: ignore[arg-type]  # test rows vary any field


def claim(operator: Operator = OLGA, **changes: object) -> Claim:
    command = Claim(operator=operator, on_behalf_of_ai=False, actor=ACTOR)
    return replace(command, **changes)  # type: ignore[arg-type]


def offer(operator: Operator) -> Offer:
    return Offer(operator=operator, actor=ACTOR)


def respond(operator: Operator, accept: bool) -> RespondToOffer:
    return RespondToOffer(operator=operator, accept=accept, on_behalf_of_ai=False, actor=ACTOR)


def transfer(from_operator_id: str, to: Operator, on_behalf_of_ai: bool = False) -> Transfer:
    return Transfer(
        from_operator_id=from_operator_id,
        to_operator=to,
        on_behalf_of_ai=on_behalf_of_ai,
        actor=ACTOR,
    )


def release(operator_id: str, outcome: HandoffOutcome, **changes: object) -> Release:
    command = Release(operator_id=operator_id, outcome=outcome, note="done", actor=ACTOR)
    return replace(command, **changes)  # type: ignore[arg-type]


def message(author: Operator = OLGA, on_behalf_of_ai: bool = False) -> HumanMessage:
    return HumanMessage(
        operator=author,
        on_behalf_of_ai=on_behalf_of_ai,
        takeover_handoff_id="hof_new",
        actor=ACTOR,
    )


def mode(to: SessionMode, present: bool = True) -> ModeChange:
    return ModeChange(
        mode=to, reason="", handoff_id="hof_new", operators_present=present, actor=ACTOR
    )


def claim_timeout(deadline_us: int | None) -> Timeout:
    return Timeout(kind=TimeoutKind.CLAIM, deadline_us=deadline_us)


def inactivity_timeout(deadline_us: int | None) -> Timeout:
    return Timeout(kind=TimeoutKind.INACTIVITY, deadline_us=deadline_us)


# ---------------------------------------------------------------- a row of a table

Expected = TypeVar("Expected", "Outcome", "Refused")


@dataclass(frozen=True)
class Case(Generic[Expected]):
    """Given this handoff (in this context: the session, the policy), this command at NOW ->
    this outcome (or refusal)."""

    handoff: Handoff | None
    command: Command
    expect: Expected
    context: Context


def given(
    handoff: Handoff | None,
    command: Command,
    expect: Expected,
    *,
    session: Session = MANUAL,
    policy: HandoffPolicy = POLICY,
) -> Case[Expected]:
    return Case(handoff, command, expect, Context(session, policy))


# ---------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Outcome:
    """What the machine decides for a command it accepts."""

    state: HandoffState | None  # of the handoff after (None: no handoff involved)
    log: list[str]
    inbox: list[HandoffChangeType]
    control: ControlChange | None
    deadlines: Deadlines = UNCHANGED
    queue_moved: bool = False


def requested(
    *told: str, mode_changed: bool = False, claim_us: int | None = CLAIM_DEADLINE
) -> Outcome:
    """A new PENDING handoff: control moves, to MANUAL (`mode_changed`: from AUTO), the claim
    timeout arms; `told`: what the customer reads after the request."""
    return Outcome(
        HandoffState.PENDING,
        [*([MODE_CHANGED] if mode_changed else []), "handoff_requested", *told],
        [HandoffChangeType.REQUESTED],
        ControlChange(NEXT, SessionMode.MANUAL),
        Deadlines(claim_us=claim_us, inactivity_us=None),
    )


def _held(
    event: str, change: HandoffChangeType, joined: str, mode_changed: bool, queue_moved: bool
) -> Outcome:
    # Someone holds it now: control moves (MANUAL), the claim timeout disarms, the inactivity
    # timeout arms, and the customer is told who joined.
    return Outcome(
        HandoffState.CLAIMED,
        [*([MODE_CHANGED] if mode_changed else []), event, joined],
        [change],
        ControlChange(NEXT, SessionMode.MANUAL),
        CLAIMED_DEADLINES,
        queue_moved,
    )


def claimed(joined: str = JOINED, *, mode_changed: bool = False) -> Outcome:
    """Claimed (`mode_changed`: the session was AUTO); the PENDING handoff left the queue."""
    return _held("handoff_claimed", HandoffChangeType.CLAIMED, joined, mode_changed, True)


def transferred(joined: str) -> Outcome:
    """Held by another operator now; it was not queued, so no queue moves."""
    return _held("handoff_transferred", HandoffChangeType.TRANSFERRED, joined, False, False)


def offer_changed(event: str, change: HandoffChangeType) -> Outcome:
    """An offer made or declined: still PENDING, control moves but the mode and deadlines stay."""
    return Outcome(HandoffState.PENDING, [event], [change], ControlChange(NEXT, None))


def ended(*, to_ai: bool, queue_moved: bool = False) -> Outcome:
    """Ended, both timeouts disarmed. Back to the AI (`to_ai`): the session goes AUTO and the
    customer is told; otherwise it stays MANUAL."""
    if to_ai:
        log = [MODE_CHANGED, "handoff_ended", AI_BACK]
        control = ControlChange(NEXT, SessionMode.AUTO)
    else:
        log, control = ["handoff_ended"], ControlChange(NEXT, None)
    return Outcome(
        HandoffState.ENDED, log, [HandoffChangeType.ENDED], control, ENDED_DEADLINES, queue_moved
    )


# The holder writes: nothing changes hands, only the inactivity timeout restarts.
HOLDER_WROTE = Outcome(
    HandoffState.CLAIMED, [], [], None, Deadlines(claim_us=KEEP, inactivity_us=INACTIVITY_DEADLINE)
)
# Opened and claimed in one go: two control changes, both on the inbox.
TAKEN_OVER = Outcome(
    HandoffState.CLAIMED,
    [MODE_CHANGED, "handoff_requested", "handoff_claimed", JOINED],
    [HandoffChangeType.REQUESTED, HandoffChangeType.CLAIMED],
    ControlChange(EPOCH + 2, SessionMode.MANUAL),
    CLAIMED_DEADLINES,
)
ONLY_THE_MODE = Outcome(None, [MODE_CHANGED], [], ControlChange(NEXT, SessionMode.AUTO))
# Claim timeout, KEEP_WAITING: the customer is told once; the claim timeout does not fire again.
KEPT_WAITING = Outcome(
    HandoffState.PENDING,
    ["handoff_claim_timeout", STILL_BUSY],
    [HandoffChangeType.CLAIM_TIMEOUT],
    None,
    Deadlines(claim_us=None, inactivity_us=KEEP),
)

RETURNED = HandoffOutcome.RETURNED_TO_AI
RESOLVED = HandoffOutcome.RESOLVED_BY_HUMAN
ABANDONED = HandoffOutcome.ABANDONED

# Each row: its name (the test id), then given this handoff, this command -> this outcome.
TRANSITIONS = {
    # requests
    "request: AUTO -> MANUAL, PENDING, customer told": given(
        None, opening(), requested(CONNECTING, mode_changed=True), session=AUTO
    ),
    "request with nobody available: the customer is told so, once": given(
        None,
        opening(operators_available=False),
        requested(NO_OPERATOR, mode_changed=True),
        session=AUTO,
    ),
    "request on a MANUAL session, silent, no claim timeout": given(
        None,
        opening(announce=False),
        requested(claim_us=None),
        policy=HandoffPolicy(),
    ),
    # claims and offers
    "claim a PENDING handoff": given(PENDING, claim(), claimed()),
    # The other rows check no epoch; a caller's current one must pass the stale check.
    "claim naming the current epoch": given(PENDING, claim(expected_epoch=EPOCH), claimed()),
    "claim on behalf of the AI: the operator stays anonymous": given(
        PENDING, claim(on_behalf_of_ai=True), claimed(ANONYMOUS_JOINED)
    ),
    "claim on a session set back to AUTO: MANUAL again": given(
        PENDING, claim(), claimed(mode_changed=True), session=AUTO
    ),
    "claim by the operator it is offered to": given(
        OFFERED_TO_BOB, claim(BOB), claimed(BOB_JOINED)
    ),
    "offer a PENDING handoff": given(
        PENDING, offer(BOB), offer_changed("handoff_offered", HandoffChangeType.OFFERED)
    ),
    "accept an offer: claimed": given(
        OFFERED_TO_BOB, respond(BOB, accept=True), claimed(BOB_JOINED)
    ),
    "decline an offer: pending again, for anyone": given(
        OFFERED_TO_BOB,
        respond(BOB, accept=False),
        offer_changed("handoff_offer_declined", HandoffChangeType.OFFER_DECLINED),
    ),
    "transfer a claimed handoff": given(
        CLAIMED_BY_OLGA, transfer("olga", BOB), transferred(BOB_JOINED)
    ),
    # releases
    "release resolved: ended, the session stays MANUAL": given(
        CLAIMED_BY_OLGA, release("olga", RESOLVED), ended(to_ai=False)
    ),
    "release returned to the AI: AUTO, customer told": given(
        CLAIMED_BY_OLGA, release("olga", RETURNED), ended(to_ai=True)
    ),
    "release a PENDING handoff naming no one: the queue moves": given(
        PENDING, release("", ABANDONED), ended(to_ai=False, queue_moved=True)
    ),
    "release by the operator it is offered to": given(
        OFFERED_TO_BOB, release("bob", ABANDONED), ended(to_ai=False, queue_moved=True)
    ),
    # a human writes
    "takeover: a human writes on a session nobody holds": given(
        None, message(OLGA), TAKEN_OVER, session=AUTO
    ),
    "claim by answering a PENDING handoff": given(PENDING, message(OLGA), claimed()),
    "holder check: the holder writes, nothing changes hands": given(
        CLAIMED_BY_OLGA, message(OLGA), HOLDER_WROTE
    ),
    "holder check: no participant counts as the holder": given(
        CLAIMED_BY_OLGA, message(ANONYMOUS, on_behalf_of_ai=True), HOLDER_WROTE
    ),
    # the integration sets the mode
    "mode set to MANUAL opens a handoff": given(
        None, mode(SessionMode.MANUAL), requested(CONNECTING, mode_changed=True), session=AUTO
    ),
    "mode set to AUTO ends the open handoff": given(
        CLAIMED_BY_OLGA, mode(SessionMode.AUTO), ended(to_ai=True)
    ),
    "mode set to AUTO with no handoff: just the mode": given(
        None, mode(SessionMode.AUTO), ONLY_THE_MODE
    ),
    # timeouts (a deadline at or before NOW is due)
    "claim timeout KEEP_WAITING: customer told once, still queued": given(
        PENDING, claim_timeout(NOW), KEPT_WAITING
    ),
    "claim timeout RETURN_TO_AI: timed out, AUTO": given(
        PENDING, claim_timeout(NOW - S), ended(to_ai=True, queue_moved=True), policy=RETURN_TO_AI
    ),
    "inactivity timeout RETURN_TO_AI (anything but END)": given(
        CLAIMED_BY_OLGA, inactivity_timeout(NOW), ended(to_ai=True), policy=RETURN_TO_AI
    ),
    "inactivity timeout END: ended, the session stays MANUAL": given(
        CLAIMED_BY_OLGA, inactivity_timeout(NOW), ended(to_ai=False), policy=END_ON_INACTIVITY
    ),
}


@pytest.mark.parametrize("row", TRANSITIONS.values(), ids=TRANSITIONS.keys())
def test_transition(row: Case[Outcome]) -> None:
    decision = decided(row.handoff, row.command, row.context)
    expect = row.expect
    assert (decision.handoff.state if decision.handoff else None) is expect.state
    assert entries(decision.events) == expect.log
    assert [entry.change for entry in decision.inbox] == expect.inbox
    assert decision.control == expect.control
    assert decision.deadlines == expect.deadlines
    assert decision.queue_moved is expect.queue_moved
    # Each inbox change is recorded by its lifecycle event, which says what the change left.
    for entry in decision.inbox:
        recording = decision.events[entry.event_index].data
        assert recording["type"] == f"baton.handoff_{entry.change.value}"
        assert recording["state"] == entry.handoff.state.value
        assert recording["control_epoch"] == entry.handoff.control_epoch
    if decision.handoff is not None and decision.control is not None:
        assert decision.handoff.control_epoch == decision.control.epoch


# ---------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refused:
    """Why (what a program switches on), the exact wording, and the error the API maps it to."""

    reason: RefusalReason
    message: str
    error: type[BatonError] = FailedPrecondition


STALE = Refused(
    RefusalReason.STALE_EPOCH,
    "session 'ses_1' is at control epoch 3, not 2: someone changed who controls it; re-read the "
    "session or handoff and decide again",
    StaleEpoch,
)
HELD_BY_OLGA_NOT_BOB = Refused(
    RefusalReason.HELD_BY_OTHER, "handoff 'hof_1' is held by operator 'olga' (Olga), not 'bob'"
)
ALREADY_ENDED = Refused(RefusalReason.ENDED, "handoff 'hof_1' already ended (resolved_by_human)")
PARTICIPANT_REQUIRED = Refused(
    RefusalReason.PARTICIPANT_REQUIRED,
    "required: nobody holds session 'ses_1' yet, and this message would hand it to its author",
    InvalidArgument,
)

REFUSALS = {
    "request with a stale epoch": given(None, opening(expected_epoch=2), STALE),
    "request while one is open": given(
        PENDING,
        opening(),
        Refused(
            RefusalReason.ALREADY_OPEN,
            "session 'ses_1' already has an open handoff 'hof_1' (pending); end it before "
            "requesting another",
            AlreadyExists,
        ),
    ),
    "claim a CLAIMED handoff held by another": given(
        CLAIMED_BY_OLGA, claim(BOB), HELD_BY_OLGA_NOT_BOB
    ),
    "claim what you hold": given(
        CLAIMED_BY_OLGA,
        claim(OLGA),
        Refused(RefusalReason.ALREADY_YOURS, "handoff 'hof_1' is already held by you ('olga')"),
    ),
    "claim a handoff offered to someone else": given(
        OFFERED_TO_BOB,
        claim(OLGA),
        Refused(
            RefusalReason.OFFERED_TO_OTHER,
            "handoff 'hof_1' is offered to operator 'bob'; only they can claim it until they "
            "decline",
        ),
    ),
    "claim an ended handoff": given(ENDED, claim(), ALREADY_ENDED),
    "stale epoch is judged before anything else": given(ENDED, claim(expected_epoch=2), STALE),
    "offer a claimed handoff": given(CLAIMED_BY_OLGA, offer(BOB), HELD_BY_OLGA_NOT_BOB),
    "offer an ended handoff": given(ENDED, offer(BOB), ALREADY_ENDED),
    "respond to an offer made to someone else": given(
        OFFERED_TO_BOB,
        respond(OLGA, accept=True),
        Refused(
            RefusalReason.NOT_OFFERED_TO_YOU, "handoff 'hof_1' is not offered to operator 'olga'"
        ),
    ),
    "respond when nothing is offered": given(
        PENDING,
        respond(BOB, accept=False),
        Refused(
            RefusalReason.NOT_OFFERED_TO_YOU, "handoff 'hof_1' is not offered to operator 'bob'"
        ),
    ),
    "transfer a PENDING handoff": given(
        PENDING,
        transfer("olga", BOB),
        Refused(
            RefusalReason.NOT_CLAIMED, "handoff 'hof_1' is not claimed; claim or offer it instead"
        ),
    ),
    "transfer what you do not hold": given(
        CLAIMED_BY_OLGA, transfer("bob", BOB), HELD_BY_OLGA_NOT_BOB
    ),
    "transfer to yourself": given(
        CLAIMED_BY_OLGA,
        transfer("olga", OLGA),
        Refused(RefusalReason.SAME_OPERATOR, "operator 'olga' already holds handoff 'hof_1'"),
    ),
    "release what someone else holds": given(
        CLAIMED_BY_OLGA, release("bob", RESOLVED), HELD_BY_OLGA_NOT_BOB
    ),
    "release a PENDING handoff offered to another": given(
        OFFERED_TO_BOB,
        release("olga", ABANDONED),
        Refused(
            RefusalReason.OFFERED_TO_OTHER,
            "handoff 'hof_1' is offered to operator 'bob', not 'olga'; only they can end it "
            "until they decline",
        ),
    ),
    "release an ended handoff": given(ENDED, release("olga", RESOLVED), ALREADY_ENDED),
    "holder check: someone else writes on a claimed handoff": given(
        CLAIMED_BY_OLGA, message(BOB), HELD_BY_OLGA_NOT_BOB
    ),
    "takeover without a participant": given(
        None, message(ANONYMOUS), PARTICIPANT_REQUIRED, session=AUTO
    ),
    "claim by answering without a participant": given(
        PENDING, message(ANONYMOUS), PARTICIPANT_REQUIRED
    ),
    "answer a handoff offered to someone else": given(
        OFFERED_TO_BOB,
        message(OLGA),
        Refused(
            RefusalReason.OFFERED_TO_OTHER,
            "handoff 'hof_1' is offered to operator 'bob'; only they can take it until they "
            "decline",
        ),
    ),
}


@pytest.mark.parametrize("row", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusal(row: Case[Refused]) -> None:
    refusal = refused(row.handoff, row.command, row.context)
    expect = row.expect
    assert refusal.reason is expect.reason
    assert refusal.message == expect.message
    error = refusal.error()
    assert type(error) is expect.error
    assert expect.message in error.message


NOT_DUE = [
    pytest.param(PENDING, TimeoutKind.CLAIM, None, id="claim deadline cleared (fired elsewhere)"),
    pytest.param(PENDING, TimeoutKind.CLAIM, NOW + 1, id="claim deadline not reached"),
    pytest.param(CLAIMED_BY_OLGA, TimeoutKind.CLAIM, NOW, id="claimed before the claim timeout"),
    pytest.param(ENDED, TimeoutKind.INACTIVITY, NOW, id="ended before the inactivity timeout"),
    pytest.param(CLAIMED_BY_OLGA, TimeoutKind.INACTIVITY, NOW + 1, id="operator wrote since"),
]


@pytest.mark.parametrize(("handoff", "kind", "deadline_us"), NOT_DUE)
def test_a_timeout_that_no_longer_applies_does_nothing(
    handoff: Handoff, kind: TimeoutKind, deadline_us: int | None
) -> None:
    refusal = refused(handoff, Timeout(kind=kind, deadline_us=deadline_us))
    assert refusal.reason is RefusalReason.NOT_DUE


# ---------------------------------------------------------------- details of some transitions


def test_stale_epoch_refusal_names_both_epochs() -> None:
    error = refused(PENDING, claim(expected_epoch=7)).error()
    assert isinstance(error, StaleEpoch)
    assert error.metadata == {"session_id": "ses_1", "expected_epoch": "7", "control_epoch": "3"}


def test_a_request_is_a_new_pending_handoff_with_every_event_in_the_turns_correlation() -> None:
    decision = decided(None, opening(correlation_id="cor_turn"), ON_AUTO)
    handoff = after(decision)
    assert decision.is_new
    assert (handoff.id, handoff.requested_at_us, handoff.control_epoch) == ("hof_new", NOW, NEXT)
    assert (handoff.requested_by, handoff.summary) == (
        HandoffRequester.CUSTOMER,
        "Reason: wants a person",
    )
    assert {d.correlation_id for d in decision.events} == {"cor_turn"}
    assert decision.correlation_id == "cor_turn"
    assert decision.tell_queue_position
    requested = recorded(decision)
    assert requested["operators_available"] is True
    assert requested["requested_by"] == "customer"


def test_who_acts_is_in_every_lifecycle_and_mode_event() -> None:
    decision = decided(None, opening(), ON_AUTO)
    assert decision.actor == ACTOR
    custom = [d for d in decision.events if d.kind is EventKind.CUSTOM]
    assert custom and all(d.data["actor"] == ACTOR.to_dict() for d in custom)
    # Baton's own changes (the timer) name no one.
    timed_out = decided(PENDING, claim_timeout(NOW))
    assert timed_out.actor is None
    assert all("actor" not in d.data for d in timed_out.events)


def test_takeover_shows_the_inbox_both_steps_and_notes_the_first_reply() -> None:
    decision = decided(None, message(OLGA), ON_AUTO)
    requested, claimed = (entry.handoff for entry in decision.inbox)
    assert (requested.state, requested.control_epoch) == (HandoffState.PENDING, EPOCH + 1)
    assert (claimed.state, claimed.control_epoch) == (HandoffState.CLAIMED, EPOCH + 2)
    assert requested.requested_by is HandoffRequester.HUMAN_TAKEOVER
    assert requested.reason == "taken over by a human agent"
    handoff = after(decision)
    assert decision.is_new
    assert (handoff.operator, handoff.claimed_at_us, handoff.first_human_reply_at_us) == (
        OLGA,
        NOW,
        NOW,
    )
    # A takeover never queued: it neither tells a place nor moves the queue.
    assert not decision.tell_queue_position and not decision.queue_moved


def test_a_later_reply_keeps_the_first_reply_time() -> None:
    answered = replace(CLAIMED_BY_OLGA, first_human_reply_at_us=NOW - 5 * S)
    decision = decided(answered, message(OLGA))
    assert after(decision).first_human_reply_at_us == NOW - 5 * S


def test_a_transfer_keeps_the_claim_time_and_changes_the_holder() -> None:
    decision = decided(CLAIMED_BY_OLGA, transfer("olga", BOB, on_behalf_of_ai=True))
    handoff = after(decision)
    assert not decision.is_new
    assert (handoff.operator, handoff.operator_on_behalf_of_ai) == (BOB, True)
    assert handoff.claimed_at_us == CLAIMED_BY_OLGA.claimed_at_us
    assert entries(decision.events)[-1] == ANONYMOUS_JOINED


def test_an_end_records_outcome_note_and_time_and_clears_the_offer() -> None:
    decision = decided(OFFERED_TO_BOB, release("bob", RETURNED, note="ok"))
    handoff = after(decision)
    assert (handoff.outcome, handoff.note, handoff.ended_at_us, handoff.offered_to) == (
        HandoffOutcome.RETURNED_TO_AI,
        "ok",
        NOW,
        None,
    )
    ended = recorded(decision)
    assert (ended["outcome"], ended["note"]) == ("returned_to_ai", "ok")


def test_mode_set_to_manual_says_whether_anyone_is_there() -> None:
    nobody = decided(None, mode(SessionMode.MANUAL, present=False), ON_AUTO)
    requested = recorded(nobody)
    assert requested["operators_available"] is False
    assert requested["requested_by"] == "external_system"
    assert requested["reason"] == "mode set to manual"
    assert entries(nobody.events)[-1].startswith("say: No one from our team is available")


def test_a_command_on_a_handoff_needs_that_handoff() -> None:
    with pytest.raises(ValueError):
        decide(None, claim(), NOW, ON_MANUAL)
