"""Handoff analytics: a pure function over handoff records."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from baton_server.domain import Handoff, HandoffOutcome, HandoffRequester

REHANDOFF_WINDOW_US = 30 * 60 * 1_000_000


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int = 0
    p50_us: int = 0
    p90_us: int = 0


@dataclass(frozen=True, slots=True)
class HandoffStats:
    sessions: int
    sessions_with_handoff: int
    handoff_rate: float
    handoffs: int
    by_reason: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    time_to_claim: Percentiles = Percentiles()
    time_to_first_human_reply: Percentiles = Percentiles()
    abandoned_while_queued: int = 0
    returned_to_ai_share: float = 0.0
    rehandoffs_within_30_minutes: int = 0


def percentiles(values: list[int]) -> Percentiles:
    """Nearest-rank p50 and p90."""
    if not values:
        return Percentiles()
    ordered = sorted(values)

    def rank(p: float) -> int:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return Percentiles(len(ordered), rank(0.5), rank(0.9))


def compute_stats(
    sessions: int,
    sessions_with_handoff: int,
    handoffs: list[Handoff],
    history: dict[str, list[Handoff]],
    reason_keys: dict[str, str],
) -> HandoffStats:
    """`sessions`: created in the range, `sessions_with_handoff` of them had one; `handoffs`:
    requested in the range; `history`: every handoff of their sessions (to find re-handoffs
    after a return to the AI); `reason_keys`: normalised reason per handoff id."""
    ended = [h for h in handoffs if h.outcome is not HandoffOutcome.NONE]
    outcomes = Counter(h.outcome.value.upper() for h in ended)
    rehandoffs = 0
    for handoff in handoffs:
        earlier = [
            h
            for h in history.get(handoff.session_id, [])
            if h.outcome is HandoffOutcome.RETURNED_TO_AI
            and h.ended_at_us is not None
            and h.ended_at_us <= handoff.requested_at_us
        ]
        if earlier:
            last_return = max(h.ended_at_us or 0 for h in earlier)
            if handoff.requested_at_us - last_return <= REHANDOFF_WINDOW_US:
                rehandoffs += 1
    return HandoffStats(
        sessions=sessions,
        sessions_with_handoff=sessions_with_handoff,
        handoff_rate=sessions_with_handoff / sessions if sessions else 0.0,
        handoffs=len(handoffs),
        by_reason=dict(Counter(reason_keys[h.id] for h in handoffs)),
        by_outcome=dict(outcomes),
        # Takeovers never waited in the queue.
        time_to_claim=percentiles(
            [
                h.claimed_at_us - h.requested_at_us
                for h in handoffs
                if h.claimed_at_us is not None
                and h.requested_by is not HandoffRequester.HUMAN_TAKEOVER
            ]
        ),
        time_to_first_human_reply=percentiles(
            [
                h.first_human_reply_at_us - h.requested_at_us
                for h in handoffs
                if h.first_human_reply_at_us is not None
            ]
        ),
        abandoned_while_queued=sum(
            1 for h in handoffs if h.outcome is HandoffOutcome.ABANDONED and h.claimed_at_us is None
        ),
        returned_to_ai_share=(outcomes.get("RETURNED_TO_AI", 0) / len(ended) if ended else 0.0),
        rehandoffs_within_30_minutes=rehandoffs,
    )
