"""Handoff analytics arithmetic (handoff/stats.py), without a server: hand-computed numbers."""

from __future__ import annotations

from dataclasses import replace

from baton_server.domain import (
    Handoff,
    HandoffOutcome,
    HandoffRequester,
    HandoffState,
)
from baton_server.handoff.stats import REHANDOFF_WINDOW_US, compute_stats, percentiles

S = 1_000_000  # microseconds in a second

BASE = Handoff(
    id="hof_0",
    session_id="ses_0",
    agent_id="agt_1",
    state=HandoffState.ENDED,
    reason="refund",
    summary="",
    requested_by=HandoffRequester.TOOL,
    operator=None,
    operator_on_behalf_of_ai=False,
    offered_to=None,
    requested_at_us=0,
    claimed_at_us=None,
    first_human_reply_at_us=None,
    ended_at_us=None,
    outcome=HandoffOutcome.NONE,
    note="",
    control_epoch=1,
)


def test_nearest_rank_percentiles() -> None:
    assert percentiles([]).count == 0
    ten = percentiles([v * S for v in range(10, 0, -1)])  # 1..10 s, unsorted
    assert (ten.count, ten.p50_us, ten.p90_us) == (10, 5 * S, 9 * S)
    one = percentiles([7])
    assert (one.p50_us, one.p90_us) == (7, 7)


def test_stats_over_a_small_day() -> None:
    claimed = replace(
        BASE,
        id="hof_a",
        session_id="ses_a",
        claimed_at_us=60 * S,
        first_human_reply_at_us=90 * S,
        ended_at_us=300 * S,
        outcome=HandoffOutcome.RETURNED_TO_AI,
    )
    takeover = replace(
        BASE,
        id="hof_b",
        session_id="ses_b",
        requested_by=HandoffRequester.HUMAN_TAKEOVER,
        claimed_at_us=0,
        first_human_reply_at_us=0,
        ended_at_us=50 * S,
        outcome=HandoffOutcome.RESOLVED_BY_HUMAN,
    )
    abandoned = replace(
        BASE, id="hof_c", session_id="ses_c", ended_at_us=30 * S, outcome=HandoffOutcome.ABANDONED
    )
    # Session a comes back to humans 10 minutes after its return to the AI: a re-handoff.
    again = replace(
        BASE, id="hof_d", session_id="ses_a", requested_at_us=300 * S + 600 * S, reason="Refund!"
    )
    late = replace(
        again, id="hof_e", session_id="ses_a", requested_at_us=300 * S + REHANDOFF_WINDOW_US + 1
    )
    handoffs = [claimed, takeover, abandoned, again]
    history = {"ses_a": [claimed, again], "ses_b": [takeover], "ses_c": [abandoned]}
    reasons = {"hof_a": "refund", "hof_b": "refund", "hof_c": "broken", "hof_d": "refund"}
    stats = compute_stats(8, 3, handoffs, history, reasons)
    assert stats.handoff_rate == 3 / 8
    assert stats.handoffs == 4
    assert stats.by_reason == {"refund": 3, "broken": 1}
    assert stats.by_outcome == {"RETURNED_TO_AI": 1, "RESOLVED_BY_HUMAN": 1, "ABANDONED": 1}
    # The takeover never queued: only the claimed handoff counts for time to claim.
    assert (stats.time_to_claim.count, stats.time_to_claim.p50_us) == (1, 60 * S)
    assert stats.time_to_first_human_reply.count == 2
    assert stats.abandoned_while_queued == 1
    assert stats.returned_to_ai_share == 1 / 3
    assert stats.rehandoffs_within_30_minutes == 1
    outside = compute_stats(
        8, 3, [claimed, late], {"ses_a": [claimed, late]}, reasons | {"hof_e": "x"}
    )
    assert outside.rehandoffs_within_30_minutes == 0


def test_no_sessions_no_division_by_zero() -> None:
    stats = compute_stats(0, 0, [], {}, {})
    assert (stats.handoff_rate, stats.returned_to_ai_share) == (0.0, 0.0)
