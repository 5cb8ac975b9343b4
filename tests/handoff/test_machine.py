"""The handoff state machine (handoff/machine.py), without a database: every transition and every
refusal, as tables. Each row gives the handoff as it stands, a command, and what the machine must
decide: the state after, the log entries (in order), the inbox changes, the control change and
the deadlines; or the refusal's reason and its exact wording (what clients get)."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
ACTOR = Actor("key_ops", "operator")
OLGA = Operator("olga", "Olga")
BOB = Operator("bob", "Bob")
ANONYMOUS = Operator("")
# Timeouts armed, so every deadline the machine sets shows.
POLICY = HandoffPolicy(claim_timeout_s=60, inactivity_timeout_s=300)

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
UNCHANGED = Deadlines(claim_us=KEEP, inactivity_us=KEEP)
INACTIVITY_DEADLINE = NOW + 300 * S


def entries(events: tuple[EventDraft, ...]) -> list[str]:
    """Log entries, readable: a lifecycle event by its type, a text by what it says."""
    return [
        str(d.data["type"]).removeprefix("baton.")
        if d.kind is EventKind.CUSTOM
        else f"say: {d.data['text']}"
        for d in events
    ]


def decided(
    handoff: Handoff | None,
    command: Command,
    session: Session = MANUAL,
    policy: HandoffPolicy = POLICY,
) -> Decision:
    outcome = decide(handoff, command, NOW, Context(session, policy))
    assert isinstance(outcome, Decision), outcome
    return outcome


def refused(handoff: Handoff | None, command: Command, session: Session = MANUAL) -> Refusal:
    outcome = decide(handoff, command, NOW, Context(session, POLICY))
    assert isinstance(outcome, Refusal), outcome
    return outcome


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


# ---------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Transition:
    handoff: Handoff | None
    command: Command
    state: HandoffState | None  # of the handoff after (None: no handoff involved)
    log: list[str]
    inbox: list[HandoffChangeType]
    control: ControlChange | None
    deadlines: Deadlines = UNCHANGED
    session: Session = MANUAL
    policy: HandoffPolicy = POLICY
    queue_moved: bool = False


def claim(operator: Operator = OLGA, **changes: object) -> Claim:
    command = Claim(operator=operator, on_behalf_of_ai=False, actor=ACTOR)
    return replace(command, **changes)  # type: ignore[arg-type]


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


RETURN_TO_AI = HandoffPolicy(claim_timeout_action="return_to_ai", inactivity_timeout_action="x")
END_ON_INACTIVITY = HandoffPolicy(inactivity_timeout_action="end")
NEXT = EPOCH + 1
CLAIMED_DEADLINES = Deadlines(claim_us=None, inactivity_us=INACTIVITY_DEADLINE)
ENDED_DEADLINES = Deadlines(claim_us=None, inactivity_us=None)
JOINED = "say: Olga has joined the conversation."
ANONYMOUS_JOINED = "say: A member of our team has joined the conversation."
AI_BACK = "say: You're back with our virtual assistant."

TRANSITIONS = [
    pytest.param(
        Transition(
            None,
            opening(),
            HandoffState.PENDING,
            [
                "session_mode_changed",
                "handoff_requested",
                "say: I'm connecting you with a member of our team.",
            ],
            [HandoffChangeType.REQUESTED],
            ControlChange(NEXT, SessionMode.MANUAL),
            Deadlines(claim_us=CLAIM_DEADLINE, inactivity_us=None),
            session=AUTO,
        ),
        id="request: AUTO -> MANUAL, PENDING, customer told",
    ),
    pytest.param(
        Transition(
            None,
            opening(operators_available=False),
            HandoffState.PENDING,
            [
                "session_mode_changed",
                "handoff_requested",
                "say: I'm connecting you with a member of our team.",
                "say: No one from our team is available right now. Your request is queued and "
                "we will answer here as soon as we can.",
            ],
            [HandoffChangeType.REQUESTED],
            ControlChange(NEXT, SessionMode.MANUAL),
            Deadlines(claim_us=CLAIM_DEADLINE, inactivity_us=None),
            session=AUTO,
        ),
        id="request with nobody available: the customer is told so",
    ),
    pytest.param(
        Transition(
            None,
            opening(announce=False),
            HandoffState.PENDING,
            ["handoff_requested"],
            [HandoffChangeType.REQUESTED],
            ControlChange(NEXT, SessionMode.MANUAL),
            Deadlines(claim_us=None, inactivity_us=None),
            policy=HandoffPolicy(),
        ),
        id="request on a MANUAL session, silent, no claim timeout",
    ),
    pytest.param(
        Transition(
            PENDING,
            claim(),
            HandoffState.CLAIMED,
            ["handoff_claimed", JOINED],
            [HandoffChangeType.CLAIMED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            queue_moved=True,
        ),
        id="claim a PENDING handoff",
    ),
    pytest.param(
        Transition(
            PENDING,
            claim(on_behalf_of_ai=True),
            HandoffState.CLAIMED,
            ["handoff_claimed", ANONYMOUS_JOINED],
            [HandoffChangeType.CLAIMED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            queue_moved=True,
        ),
        id="claim on behalf of the AI: the operator stays anonymous",
    ),
    pytest.param(
        Transition(
            PENDING,
            claim(),
            HandoffState.CLAIMED,
            ["session_mode_changed", "handoff_claimed", JOINED],
            [HandoffChangeType.CLAIMED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            session=AUTO,
            queue_moved=True,
        ),
        id="claim on a session set back to AUTO: MANUAL again",
    ),
    pytest.param(
        Transition(
            OFFERED_TO_BOB,
            claim(BOB),
            HandoffState.CLAIMED,
            ["handoff_claimed", "say: Bob has joined the conversation."],
            [HandoffChangeType.CLAIMED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            queue_moved=True,
        ),
        id="claim by the operator it is offered to",
    ),
    pytest.param(
        Transition(
            PENDING,
            Offer(operator=BOB, actor=ACTOR),
            HandoffState.PENDING,
            ["handoff_offered"],
            [HandoffChangeType.OFFERED],
            ControlChange(NEXT, None),
        ),
        id="offer a PENDING handoff",
    ),
    pytest.param(
        Transition(
            OFFERED_TO_BOB,
            RespondToOffer(operator=BOB, accept=True, on_behalf_of_ai=False, actor=ACTOR),
            HandoffState.CLAIMED,
            ["handoff_claimed", "say: Bob has joined the conversation."],
            [HandoffChangeType.CLAIMED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            queue_moved=True,
        ),
        id="accept an offer: claimed",
    ),
    pytest.param(
        Transition(
            OFFERED_TO_BOB,
            RespondToOffer(operator=BOB, accept=False, on_behalf_of_ai=False, actor=ACTOR),
            HandoffState.PENDING,
            ["handoff_offer_declined"],
            [HandoffChangeType.OFFER_DECLINED],
            ControlChange(NEXT, None),
        ),
        id="decline an offer: pending again, for anyone",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            Transfer(from_operator_id="olga", to_operator=BOB, on_behalf_of_ai=False, actor=ACTOR),
            HandoffState.CLAIMED,
            ["handoff_transferred", "say: Bob has joined the conversation."],
            [HandoffChangeType.TRANSFERRED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
        ),
        id="transfer a claimed handoff",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            release("olga", HandoffOutcome.RESOLVED_BY_HUMAN),
            HandoffState.ENDED,
            ["handoff_ended"],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, None),
            ENDED_DEADLINES,
        ),
        id="release resolved: ended, the session stays MANUAL",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            release("olga", HandoffOutcome.RETURNED_TO_AI),
            HandoffState.ENDED,
            ["session_mode_changed", "handoff_ended", AI_BACK],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, SessionMode.AUTO),
            ENDED_DEADLINES,
        ),
        id="release returned to the AI: AUTO, customer told",
    ),
    pytest.param(
        Transition(
            PENDING,
            release("", HandoffOutcome.ABANDONED),
            HandoffState.ENDED,
            ["handoff_ended"],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, None),
            ENDED_DEADLINES,
            queue_moved=True,
        ),
        id="release a PENDING handoff naming no one: the queue moves",
    ),
    pytest.param(
        Transition(
            OFFERED_TO_BOB,
            release("bob", HandoffOutcome.ABANDONED),
            HandoffState.ENDED,
            ["handoff_ended"],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, None),
            ENDED_DEADLINES,
            queue_moved=True,
        ),
        id="release by the operator it is offered to",
    ),
    pytest.param(
        Transition(
            None,
            message(OLGA),
            HandoffState.CLAIMED,
            ["session_mode_changed", "handoff_requested", "handoff_claimed", JOINED],
            [HandoffChangeType.REQUESTED, HandoffChangeType.CLAIMED],
            ControlChange(EPOCH + 2, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            session=AUTO,
        ),
        id="takeover: a human writes on a session nobody holds",
    ),
    pytest.param(
        Transition(
            PENDING,
            message(OLGA),
            HandoffState.CLAIMED,
            ["handoff_claimed", JOINED],
            [HandoffChangeType.CLAIMED],
            ControlChange(NEXT, SessionMode.MANUAL),
            CLAIMED_DEADLINES,
            queue_moved=True,
        ),
        id="claim by answering a PENDING handoff",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            message(OLGA),
            HandoffState.CLAIMED,
            [],
            [],
            None,
            Deadlines(claim_us=KEEP, inactivity_us=INACTIVITY_DEADLINE),
        ),
        id="holder check: the holder writes, nothing changes hands",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            message(ANONYMOUS, on_behalf_of_ai=True),
            HandoffState.CLAIMED,
            [],
            [],
            None,
            Deadlines(claim_us=KEEP, inactivity_us=INACTIVITY_DEADLINE),
        ),
        id="holder check: no participant counts as the holder",
    ),
    pytest.param(
        Transition(
            None,
            mode(SessionMode.MANUAL),
            HandoffState.PENDING,
            [
                "session_mode_changed",
                "handoff_requested",
                "say: I'm connecting you with a member of our team.",
            ],
            [HandoffChangeType.REQUESTED],
            ControlChange(NEXT, SessionMode.MANUAL),
            Deadlines(claim_us=CLAIM_DEADLINE, inactivity_us=None),
            session=AUTO,
        ),
        id="mode set to MANUAL opens a handoff",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            mode(SessionMode.AUTO),
            HandoffState.ENDED,
            ["session_mode_changed", "handoff_ended", AI_BACK],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, SessionMode.AUTO),
            ENDED_DEADLINES,
        ),
        id="mode set to AUTO ends the open handoff",
    ),
    pytest.param(
        Transition(
            None,
            mode(SessionMode.AUTO),
            None,
            ["session_mode_changed"],
            [],
            ControlChange(NEXT, SessionMode.AUTO),
        ),
        id="mode set to AUTO with no handoff: just the mode",
    ),
    pytest.param(
        Transition(
            PENDING,
            Timeout(kind=TimeoutKind.CLAIM, deadline_us=NOW),
            HandoffState.PENDING,
            ["handoff_claim_timeout", "say: Thank you for waiting; our team is still busy."],
            [HandoffChangeType.CLAIM_TIMEOUT],
            None,
            Deadlines(claim_us=None, inactivity_us=KEEP),
        ),
        id="claim timeout KEEP_WAITING: customer told once, still queued",
    ),
    pytest.param(
        Transition(
            PENDING,
            Timeout(kind=TimeoutKind.CLAIM, deadline_us=NOW - S),
            HandoffState.ENDED,
            ["session_mode_changed", "handoff_ended", AI_BACK],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, SessionMode.AUTO),
            ENDED_DEADLINES,
            policy=RETURN_TO_AI,
            queue_moved=True,
        ),
        id="claim timeout RETURN_TO_AI: timed out, AUTO",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            Timeout(kind=TimeoutKind.INACTIVITY, deadline_us=NOW),
            HandoffState.ENDED,
            ["session_mode_changed", "handoff_ended", AI_BACK],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, SessionMode.AUTO),
            ENDED_DEADLINES,
            policy=RETURN_TO_AI,
        ),
        id="inactivity timeout RETURN_TO_AI (anything but END)",
    ),
    pytest.param(
        Transition(
            CLAIMED_BY_OLGA,
            Timeout(kind=TimeoutKind.INACTIVITY, deadline_us=NOW),
            HandoffState.ENDED,
            ["handoff_ended"],
            [HandoffChangeType.ENDED],
            ControlChange(NEXT, None),
            ENDED_DEADLINES,
            policy=END_ON_INACTIVITY,
        ),
        id="inactivity timeout END: ended, the session stays MANUAL",
    ),
]


@pytest.mark.parametrize("row", TRANSITIONS)
def test_transition(row: Transition) -> None:
    decision = decided(row.handoff, row.command, row.session, row.policy)
    assert (decision.handoff.state if decision.handoff else None) is row.state
    assert entries(decision.events) == row.log
    assert [entry.change for entry in decision.inbox] == row.inbox
    assert decision.control == row.control
    assert decision.deadlines == row.deadlines
    assert decision.queue_moved is row.queue_moved
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
    handoff: Handoff | None
    command: Command
    reason: RefusalReason
    message: str
    error: type[BatonError] = FailedPrecondition
    session: Session = MANUAL


HELD_BY_OLGA_NOT_BOB = "handoff 'hof_1' is held by operator 'olga' (Olga), not 'bob'"
STALE = (
    "session 'ses_1' is at control epoch 3, not 2: someone changed who controls it; re-read the "
    "session or handoff and decide again"
)

REFUSALS = [
    pytest.param(
        Refused(None, opening(expected_epoch=2), RefusalReason.STALE_EPOCH, STALE, StaleEpoch),
        id="request with a stale epoch",
    ),
    pytest.param(
        Refused(
            PENDING,
            opening(),
            RefusalReason.ALREADY_OPEN,
            "session 'ses_1' already has an open handoff 'hof_1' (pending); end it before "
            "requesting another",
            AlreadyExists,
        ),
        id="request while one is open",
    ),
    pytest.param(
        Refused(CLAIMED_BY_OLGA, claim(BOB), RefusalReason.HELD_BY_OTHER, HELD_BY_OLGA_NOT_BOB),
        id="claim a CLAIMED handoff held by another",
    ),
    pytest.param(
        Refused(
            CLAIMED_BY_OLGA,
            claim(OLGA),
            RefusalReason.ALREADY_YOURS,
            "handoff 'hof_1' is already held by you ('olga')",
        ),
        id="claim what you hold",
    ),
    pytest.param(
        Refused(
            OFFERED_TO_BOB,
            claim(OLGA),
            RefusalReason.OFFERED_TO_OTHER,
            "handoff 'hof_1' is offered to operator 'bob'; only they can claim it until they "
            "decline",
        ),
        id="claim a handoff offered to someone else",
    ),
    pytest.param(
        Refused(
            ENDED,
            claim(),
            RefusalReason.ENDED,
            "handoff 'hof_1' already ended (resolved_by_human)",
        ),
        id="claim an ended handoff",
    ),
    pytest.param(
        Refused(ENDED, claim(expected_epoch=2), RefusalReason.STALE_EPOCH, STALE, StaleEpoch),
        id="stale epoch is judged before anything else",
    ),
    pytest.param(
        Refused(
            CLAIMED_BY_OLGA,
            Offer(operator=BOB, actor=ACTOR),
            RefusalReason.HELD_BY_OTHER,
            HELD_BY_OLGA_NOT_BOB,
        ),
        id="offer a claimed handoff",
    ),
    pytest.param(
        Refused(
            ENDED,
            Offer(operator=BOB, actor=ACTOR),
            RefusalReason.ENDED,
            "handoff 'hof_1' already ended (resolved_by_human)",
        ),
        id="offer an ended handoff",
    ),
    pytest.param(
        Refused(
            OFFERED_TO_BOB,
            RespondToOffer(operator=OLGA, accept=True, on_behalf_of_ai=False, actor=ACTOR),
            RefusalReason.NOT_OFFERED_TO_YOU,
            "handoff 'hof_1' is not offered to operator 'olga'",
        ),
        id="respond to an offer made to someone else",
    ),
    pytest.param(
        Refused(
            PENDING,
            RespondToOffer(operator=BOB, accept=False, on_behalf_of_ai=False, actor=ACTOR),
            RefusalReason.NOT_OFFERED_TO_YOU,
            "handoff 'hof_1' is not offered to operator 'bob'",
        ),
        id="respond when nothing is offered",
    ),
    pytest.param(
        Refused(
            PENDING,
            Transfer(from_operator_id="olga", to_operator=BOB, on_behalf_of_ai=False, actor=ACTOR),
            RefusalReason.NOT_CLAIMED,
            "handoff 'hof_1' is not claimed; claim or offer it instead",
        ),
        id="transfer a PENDING handoff",
    ),
    pytest.param(
        Refused(
            CLAIMED_BY_OLGA,
            Transfer(from_operator_id="bob", to_operator=BOB, on_behalf_of_ai=False, actor=ACTOR),
            RefusalReason.HELD_BY_OTHER,
            HELD_BY_OLGA_NOT_BOB,
        ),
        id="transfer what you do not hold",
    ),
    pytest.param(
        Refused(
            CLAIMED_BY_OLGA,
            Transfer(from_operator_id="olga", to_operator=OLGA, on_behalf_of_ai=False, actor=ACTOR),
            RefusalReason.SAME_OPERATOR,
            "operator 'olga' already holds handoff 'hof_1'",
        ),
        id="transfer to yourself",
    ),
    pytest.param(
        Refused(
            CLAIMED_BY_OLGA,
            release("bob", HandoffOutcome.RESOLVED_BY_HUMAN),
            RefusalReason.HELD_BY_OTHER,
            HELD_BY_OLGA_NOT_BOB,
        ),
        id="release what someone else holds",
    ),
    pytest.param(
        Refused(
            OFFERED_TO_BOB,
            release("olga", HandoffOutcome.ABANDONED),
            RefusalReason.OFFERED_TO_OTHER,
            "handoff 'hof_1' is offered to operator 'bob', not 'olga'; only they can end it "
            "until they decline",
        ),
        id="release a PENDING handoff offered to another",
    ),
    pytest.param(
        Refused(
            ENDED,
            release("olga", HandoffOutcome.RESOLVED_BY_HUMAN),
            RefusalReason.ENDED,
            "handoff 'hof_1' already ended (resolved_by_human)",
        ),
        id="release an ended handoff",
    ),
    pytest.param(
        Refused(
            CLAIMED_BY_OLGA,
            message(BOB),
            RefusalReason.HELD_BY_OTHER,
            HELD_BY_OLGA_NOT_BOB,
        ),
        id="holder check: someone else writes on a claimed handoff",
    ),
    pytest.param(
        Refused(
            None,
            message(ANONYMOUS),
            RefusalReason.PARTICIPANT_REQUIRED,
            "required: nobody holds session 'ses_1' yet, and this message would hand it to its "
            "author",
            InvalidArgument,
            AUTO,
        ),
        id="takeover without a participant",
    ),
    pytest.param(
        Refused(
            PENDING,
            message(ANONYMOUS),
            RefusalReason.PARTICIPANT_REQUIRED,
            "required: nobody holds session 'ses_1' yet, and this message would hand it to its "
            "author",
            InvalidArgument,
        ),
        id="claim by answering without a participant",
    ),
    pytest.param(
        Refused(
            OFFERED_TO_BOB,
            message(OLGA),
            RefusalReason.OFFERED_TO_OTHER,
            "handoff 'hof_1' is offered to operator 'bob'; only they can take it until they "
            "decline",
        ),
        id="answer a handoff offered to someone else",
    ),
]


@pytest.mark.parametrize("row", REFUSALS)
def test_refusal(row: Refused) -> None:
    refusal = refused(row.handoff, row.command, row.session)
    assert refusal.reason is row.reason
    assert refusal.message == row.message
    error = refusal.error()
    assert type(error) is row.error
    assert row.message in error.message


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
    decision = decided(None, opening(correlation_id="cor_turn"), AUTO)
    handoff = decision.handoff
    assert handoff is not None and decision.is_new
    assert (handoff.id, handoff.requested_at_us, handoff.control_epoch) == ("hof_new", NOW, NEXT)
    assert (handoff.requested_by, handoff.summary) == (
        HandoffRequester.CUSTOMER,
        "Reason: wants a person",
    )
    assert {d.correlation_id for d in decision.events} == {"cor_turn"}
    assert decision.correlation_id == "cor_turn"
    assert decision.tell_queue_position
    requested = decision.events[decision.inbox[0].event_index].data
    assert requested["operators_available"] is True
    assert requested["requested_by"] == "customer"


def test_who_acts_is_in_every_lifecycle_and_mode_event() -> None:
    decision = decided(None, opening(), AUTO)
    assert decision.actor == ACTOR
    custom = [d for d in decision.events if d.kind is EventKind.CUSTOM]
    assert custom and all(d.data["actor"] == ACTOR.to_dict() for d in custom)
    # Baton's own changes (the timer) name no one.
    timed_out = decided(PENDING, Timeout(kind=TimeoutKind.CLAIM, deadline_us=NOW))
    assert timed_out.actor is None
    assert all("actor" not in d.data for d in timed_out.events)


def test_takeover_shows_the_inbox_both_steps_and_notes_the_first_reply() -> None:
    decision = decided(None, message(OLGA), AUTO)
    requested, claimed = (entry.handoff for entry in decision.inbox)
    assert (requested.state, requested.control_epoch) == (HandoffState.PENDING, EPOCH + 1)
    assert (claimed.state, claimed.control_epoch) == (HandoffState.CLAIMED, EPOCH + 2)
    assert requested.requested_by is HandoffRequester.HUMAN_TAKEOVER
    assert requested.reason == "taken over by a human agent"
    handoff = decision.handoff
    assert handoff is not None and decision.is_new
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
    assert decision.handoff is not None
    assert decision.handoff.first_human_reply_at_us == NOW - 5 * S


def test_a_transfer_keeps_the_claim_time_and_changes_the_holder() -> None:
    command = Transfer(from_operator_id="olga", to_operator=BOB, on_behalf_of_ai=True, actor=ACTOR)
    decision = decided(CLAIMED_BY_OLGA, command)
    handoff = decision.handoff
    assert handoff is not None and not decision.is_new
    assert (handoff.operator, handoff.operator_on_behalf_of_ai) == (BOB, True)
    assert handoff.claimed_at_us == CLAIMED_BY_OLGA.claimed_at_us
    assert entries(decision.events)[-1] == ANONYMOUS_JOINED


def test_an_end_records_outcome_note_and_time_and_clears_the_offer() -> None:
    decision = decided(OFFERED_TO_BOB, release("bob", HandoffOutcome.RETURNED_TO_AI, note="ok"))
    handoff = decision.handoff
    assert handoff is not None
    assert (handoff.outcome, handoff.note, handoff.ended_at_us, handoff.offered_to) == (
        HandoffOutcome.RETURNED_TO_AI,
        "ok",
        NOW,
        None,
    )
    ended = decision.events[decision.inbox[0].event_index].data
    assert (ended["outcome"], ended["note"]) == ("returned_to_ai", "ok")


def test_mode_set_to_manual_says_whether_anyone_is_there() -> None:
    nobody = decided(None, mode(SessionMode.MANUAL, present=False), AUTO)
    requested = nobody.events[nobody.inbox[0].event_index].data
    assert requested["operators_available"] is False
    assert requested["requested_by"] == "external_system"
    assert requested["reason"] == "mode set to manual"
    assert entries(nobody.events)[-1].startswith("say: No one from our team is available")


def test_a_command_on_a_handoff_needs_that_handoff() -> None:
    with pytest.raises(ValueError):
        decide(None, claim(), NOW, Context(MANUAL, POLICY))
