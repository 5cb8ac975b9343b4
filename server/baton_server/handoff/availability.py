"""Whether an operator can take a handoff now: someone watches the inbox, within the agent's
operating hours. Pure: presence is read by the caller."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from baton_server.domain import HandoffPolicy
from baton_server.handoff import policy as policies


class Unavailable(enum.StrEnum):
    """Why no operator is available (`RequestHandoffResponse.unavailable_reason`)."""

    NO_OPERATOR_WATCHING = "NO_OPERATOR_WATCHING"
    OUTSIDE_OPERATING_HOURS = "OUTSIDE_OPERATING_HOURS"


@dataclass(frozen=True, slots=True)
class Availability:
    available: bool
    # An `Unavailable` value (the wire carries it as text), or "" when available.
    reason: str = ""


def availability(policy: HandoffPolicy, now_us: int, operators_present: bool) -> Availability:
    if not policies.within_operating_hours(policy, now_us):
        return Availability(False, Unavailable.OUTSIDE_OPERATING_HOURS.value)
    if not operators_present:
        return Availability(False, Unavailable.NO_OPERATOR_WATCHING.value)
    return Availability(True)
