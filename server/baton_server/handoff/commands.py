"""What can be asked of a handoff: the commands the state machine (machine.py) decides on.

Each command names who acts (`actor`: the audit trail of the events it writes; None is Baton
itself) and, for operator controls, the control epoch the caller believes current
(`expected_epoch`; None: the caller does not check). Ids a command creates (a new handoff's)
come with it, so deciding stays pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from baton_server.domain import (
    Actor,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    Operator,
    SessionMode,
)


class TimeoutKind(enum.Enum):
    """Which deadline of a handoff fell due."""

    CLAIM = "claim"  # nobody claimed it in time
    INACTIVITY = "inactivity"  # the operator went quiet


class ClaimTimeoutAction(enum.StrEnum):
    KEEP_WAITING = "keep_waiting"
    RETURN_TO_AI = "return_to_ai"

    @classmethod
    def of(cls, policy: HandoffPolicy) -> ClaimTimeoutAction:
        # Anything but "return_to_ai" keeps the customer waiting (the safe side).
        if policy.claim_timeout_action == cls.RETURN_TO_AI.value:
            return cls.RETURN_TO_AI
        return cls.KEEP_WAITING


class InactivityTimeoutAction(enum.StrEnum):
    RETURN_TO_AI = "return_to_ai"
    END = "end"

    @classmethod
    def of(cls, policy: HandoffPolicy) -> InactivityTimeoutAction:
        # Anything but "end" gives the customer back to the AI rather than leave them alone.
        return cls.END if policy.inactivity_timeout_action == cls.END.value else cls.RETURN_TO_AI


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    """Hand the session to humans: a PENDING handoff (tool, external system, customer)."""

    handoff_id: str
    reason: str
    requested_by: HandoffRequester
    summary: str
    operators_available: bool
    actor: Actor | None
    # The agent turn that asked for it: its events then share the turn's correlation id.
    correlation_id: str = ""
    # Tell the customer (started, no operator, place in the queue).
    announce: bool = True
    expected_epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    operator: Operator
    on_behalf_of_ai: bool
    actor: Actor | None
    expected_epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """Reserve a PENDING handoff for one operator."""

    operator: Operator
    actor: Actor | None
    expected_epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondToOffer:
    operator: Operator
    accept: bool
    on_behalf_of_ai: bool
    actor: Actor | None
    expected_epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    from_operator_id: str
    to_operator: Operator
    on_behalf_of_ai: bool
    actor: Actor | None
    expected_epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """End the handoff; RETURNED_TO_AI gives the session back to the AI."""

    # Who ends it; empty: a backend naming no one (allowed unless someone holds it).
    operator_id: str
    outcome: HandoffOutcome
    note: str
    actor: Actor | None
    expected_epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HumanMessage:
    """A human agent writes on the session: the holder check, a claim by answering a PENDING
    handoff, or a takeover of a session nobody holds."""

    # The message's participant (id empty: "the holder", on a CLAIMED handoff only).
    operator: Operator
    on_behalf_of_ai: bool
    # The id the handoff gets if this message takes the session over.
    takeover_handoff_id: str
    actor: Actor | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeChange:
    """UpdateSession changes the mode: MANUAL opens a handoff when none is open, AUTO ends the
    open one as RETURNED_TO_AI. (The caller checked its expected epoch already.)"""

    mode: SessionMode
    reason: str
    # The id a handoff opened by this change gets.
    handoff_id: str
    # Whether an operator watches the inbox for the session's agent right now.
    operators_present: bool
    actor: Actor | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """A deadline fell due, by the timer's reading (the timer acts: no actor)."""

    kind: TimeoutKind
    # The deadline as stored now (None: cleared meanwhile, e.g. it already fired).
    deadline_us: int | None


Command = (
    Open | Claim | Offer | RespondToOffer | Transfer | Release | HumanMessage | ModeChange | Timeout
)
