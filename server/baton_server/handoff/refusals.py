"""Why the state machine refuses a command, in words a client can act on.

Each refusal has a reason a program switches on and the exact message clients get today (tests
assert them). `Refusal.error()` turns it into the domain error the API maps to a status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from baton_server.domain import Handoff, Operator, Session
from baton_server.errors import (
    AlreadyExists,
    BatonError,
    FailedPrecondition,
    InvalidArgument,
    StaleEpoch,
)


class RefusalReason(enum.Enum):
    STALE_EPOCH = "stale_epoch"  # the caller acted on an old picture of who controls it
    ALREADY_OPEN = "already_open"  # the session already has an open handoff
    ENDED = "ended"
    HELD_BY_OTHER = "held_by_other"
    ALREADY_YOURS = "already_yours"  # claiming what you hold
    OFFERED_TO_OTHER = "offered_to_other"
    NOT_OFFERED_TO_YOU = "not_offered_to_you"
    NOT_CLAIMED = "not_claimed"  # transfer of a handoff nobody holds
    SAME_OPERATOR = "same_operator"  # transfer to whoever holds it
    PARTICIPANT_REQUIRED = "participant_required"  # a takeover must say who takes over
    NOT_DUE = "not_due"  # a timeout no longer applies (claimed, answered, fired elsewhere)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: RefusalReason
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    # PARTICIPANT_REQUIRED: the request field at fault.
    field: str = ""

    def error(self) -> BatonError:
        if self.reason is RefusalReason.STALE_EPOCH:
            return StaleEpoch(
                self.metadata["session_id"],
                int(self.metadata["expected_epoch"]),
                int(self.metadata["control_epoch"]),
            )
        if self.reason is RefusalReason.ALREADY_OPEN:
            return AlreadyExists(self.message, metadata=dict(self.metadata))
        if self.reason is RefusalReason.PARTICIPANT_REQUIRED:
            return InvalidArgument.single(self.field, self.message)
        return FailedPrecondition(self.message, metadata=dict(self.metadata))


def stale_epoch(session: Session, expected: int) -> Refusal:
    error = StaleEpoch(session.id, expected, session.control_epoch)
    return Refusal(RefusalReason.STALE_EPOCH, error.message, error.metadata)


def already_open(session_id: str, existing: Handoff) -> Refusal:
    return Refusal(
        RefusalReason.ALREADY_OPEN,
        f"session {session_id!r} already has an open handoff {existing.id!r} "
        f"({existing.state.value}); end it before requesting another",
        {"handoff_id": existing.id, "state": existing.state.value},
    )


def ended(handoff: Handoff) -> Refusal:
    return Refusal(
        RefusalReason.ENDED,
        f"handoff {handoff.id!r} already ended ({handoff.outcome.value})",
        {"handoff_id": handoff.id, "state": handoff.state.value},
    )


def held_by_other(handoff: Handoff, operator_id: str) -> Refusal:
    holder = handoff.operator or Operator("")
    return Refusal(
        RefusalReason.HELD_BY_OTHER,
        f"handoff {handoff.id!r} is held by operator {holder.id!r} "
        f"({holder.display_name or 'no name'}), not {operator_id!r}",
        {"handoff_id": handoff.id, "holder_id": holder.id},
    )


def already_yours(handoff: Handoff, operator_id: str) -> Refusal:
    return Refusal(
        RefusalReason.ALREADY_YOURS,
        f"handoff {handoff.id!r} is already held by you ({operator_id!r})",
        {"handoff_id": handoff.id, "holder_id": operator_id},
    )


def offered_to_other(handoff: Handoff, offered: Operator, doing: str) -> Refusal:
    """`doing`: what only the operator it is offered to may do ("claim", "take")."""
    return Refusal(
        RefusalReason.OFFERED_TO_OTHER,
        f"handoff {handoff.id!r} is offered to operator {offered.id!r}; "
        f"only they can {doing} it until they decline",
        {"handoff_id": handoff.id, "offered_to": offered.id},
    )


def offered_to_other_not_you(handoff: Handoff, offered: Operator, operator_id: str) -> Refusal:
    """Ending a handoff offered to someone else (the message names who tried)."""
    return Refusal(
        RefusalReason.OFFERED_TO_OTHER,
        f"handoff {handoff.id!r} is offered to operator {offered.id!r}, not "
        f"{operator_id!r}; only they can end it until they decline",
        {"handoff_id": handoff.id, "offered_to": offered.id},
    )


def not_offered_to_you(handoff: Handoff, operator_id: str) -> Refusal:
    return Refusal(
        RefusalReason.NOT_OFFERED_TO_YOU,
        f"handoff {handoff.id!r} is not offered to operator {operator_id!r}",
        {"handoff_id": handoff.id},
    )


def not_claimed(handoff: Handoff) -> Refusal:
    return Refusal(
        RefusalReason.NOT_CLAIMED,
        f"handoff {handoff.id!r} is not claimed; claim or offer it instead",
        {"handoff_id": handoff.id, "state": handoff.state.value},
    )


def same_operator(handoff: Handoff, operator_id: str) -> Refusal:
    return Refusal(
        RefusalReason.SAME_OPERATOR,
        f"operator {operator_id!r} already holds handoff {handoff.id!r}",
        {"handoff_id": handoff.id},
    )


def participant_required(session_id: str) -> Refusal:
    return Refusal(
        RefusalReason.PARTICIPANT_REQUIRED,
        f"required: nobody holds session {session_id!r} yet, and this message would "
        "hand it to its author",
        field="message.participant.id",
    )


def not_due(handoff: Handoff, kind: str) -> Refusal:
    return Refusal(
        RefusalReason.NOT_DUE,
        f"the {kind} timeout of handoff {handoff.id!r} no longer applies",
        {"handoff_id": handoff.id},
    )
