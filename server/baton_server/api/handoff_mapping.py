"""Proto ⇄ domain mapping for handoffs and handoff policies."""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration

from baton_server.api.mapping import MAX_DISPLAY_NAME_LENGTH, require_id, timestamp
from baton_server.api.protos import pb
from baton_server.domain import (
    Handoff,
    HandoffChange,
    HandoffChangeType,
    HandoffOutcome,
    HandoffPolicy,
    HandoffRequester,
    HandoffState,
    OperatingWindow,
    Operator,
)
from baton_server.errors import FieldViolation, InvalidArgument
from baton_server.handoff import policy as policies
from baton_server.handoff.stats import HandoffStats, Percentiles

STATE_TO_PROTO = {
    HandoffState.PENDING: pb.HANDOFF_STATE_PENDING,
    HandoffState.CLAIMED: pb.HANDOFF_STATE_CLAIMED,
    HandoffState.ENDED: pb.HANDOFF_STATE_ENDED,
}
STATE_FROM_PROTO = {v: k for k, v in STATE_TO_PROTO.items()}
OUTCOME_TO_PROTO = {
    HandoffOutcome.NONE: pb.HANDOFF_OUTCOME_UNSPECIFIED,
    HandoffOutcome.RESOLVED_BY_HUMAN: pb.HANDOFF_OUTCOME_RESOLVED_BY_HUMAN,
    HandoffOutcome.RETURNED_TO_AI: pb.HANDOFF_OUTCOME_RETURNED_TO_AI,
    HandoffOutcome.ABANDONED: pb.HANDOFF_OUTCOME_ABANDONED,
    HandoffOutcome.TIMED_OUT: pb.HANDOFF_OUTCOME_TIMED_OUT,
}
OUTCOME_FROM_PROTO = {v: k for k, v in OUTCOME_TO_PROTO.items()}
REQUESTER_TO_PROTO = {
    HandoffRequester.TOOL: pb.HANDOFF_REQUESTER_TOOL,
    HandoffRequester.EXTERNAL_SYSTEM: pb.HANDOFF_REQUESTER_EXTERNAL_SYSTEM,
    HandoffRequester.CUSTOMER: pb.HANDOFF_REQUESTER_CUSTOMER,
    HandoffRequester.HUMAN_TAKEOVER: pb.HANDOFF_REQUESTER_HUMAN_TAKEOVER,
}
CHANGE_TO_PROTO = {t: getattr(pb, f"HANDOFF_CHANGE_TYPE_{t.name}") for t in HandoffChangeType}
CLAIM_ACTIONS = {
    pb.CLAIM_TIMEOUT_ACTION_UNSPECIFIED: "keep_waiting",
    pb.CLAIM_TIMEOUT_ACTION_KEEP_WAITING: "keep_waiting",
    pb.CLAIM_TIMEOUT_ACTION_RETURN_TO_AI: "return_to_ai",
}
INACTIVITY_ACTIONS = {
    pb.INACTIVITY_TIMEOUT_ACTION_UNSPECIFIED: "return_to_ai",
    pb.INACTIVITY_TIMEOUT_ACTION_RETURN_TO_AI: "return_to_ai",
    pb.INACTIVITY_TIMEOUT_ACTION_END: "end",
}
_TEXTS = tuple(policies.DEFAULT_TEXTS)
_DURATIONS = {
    "claim_timeout": "claim_timeout_s",
    "inactivity_timeout": "inactivity_timeout_s",
    "default_wait_per_position": "default_wait_per_position_s",
}


def _participant(operator: Operator | None) -> pb.Participant | None:
    return pb.Participant(id=operator.id, display_name=operator.display_name) if operator else None


def handoff_to_proto(handoff: Handoff) -> pb.Handoff:
    proto = pb.Handoff(
        id=handoff.id,
        session_id=handoff.session_id,
        agent_id=handoff.agent_id,
        state=STATE_TO_PROTO[handoff.state],
        reason=handoff.reason,
        summary=handoff.summary,
        requested_by=REQUESTER_TO_PROTO[handoff.requested_by],
        operator=_participant(handoff.operator),
        operator_on_behalf_of_ai=handoff.operator_on_behalf_of_ai,
        offered_to=_participant(handoff.offered_to),
        requested_at=timestamp(handoff.requested_at_us),
        outcome=OUTCOME_TO_PROTO[handoff.outcome],
        note=handoff.note,
        control_epoch=handoff.control_epoch,
        queue_position=handoff.queue_position,
    )
    for name in ("claimed_at", "first_human_reply_at", "ended_at"):
        value = getattr(handoff, f"{name}_us")
        if value is not None:
            getattr(proto, name).CopyFrom(timestamp(value))
    return proto


def change_to_proto(change: HandoffChange) -> pb.HandoffChange:
    return pb.HandoffChange(
        position=change.position,
        type=CHANGE_TO_PROTO[change.type],
        handoff=handoff_to_proto(change.handoff),
        event_offset=change.event_offset,
        time=timestamp(change.created_at_us),
    )


def operator_from_proto(value: Any, field: str) -> Operator:
    if len(value.display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidArgument.single(
            f"{field}.display_name", f"longer than {MAX_DISPLAY_NAME_LENGTH} characters"
        )
    return Operator(require_id(value.id.strip() and value.id, f"{field}.id"), value.display_name)


def outcome_from_proto(value: int, field: str = "outcome") -> HandoffOutcome:
    outcome = OUTCOME_FROM_PROTO.get(pb.HandoffOutcome.ValueType(value), HandoffOutcome.NONE)
    if outcome in (HandoffOutcome.NONE, HandoffOutcome.TIMED_OUT):
        raise InvalidArgument.single(
            field,
            "required: RESOLVED_BY_HUMAN, RETURNED_TO_AI or ABANDONED (TIMED_OUT is "
            "set by the server)",
        )
    return outcome


# Ten years: longer timeouts are a mistake, not a policy.
MAX_DURATION_S = 10 * 365 * 86_400


def _seconds(duration: Duration, field: str) -> float:
    if not 0 <= duration.seconds <= MAX_DURATION_S or not 0 <= duration.nanos < 10**9:
        raise InvalidArgument.single(
            field, f"must be a duration from 0 to {MAX_DURATION_S} seconds (nanos 0-999999999)"
        )
    return duration.seconds + duration.nanos / 1e9


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def policy_from_proto(value: Any, field: str = "agent.handoff_policy") -> HandoffPolicy:
    problems: list[FieldViolation] = []
    if value.claim_timeout_action not in CLAIM_ACTIONS:
        problems.append(FieldViolation(f"{field}.claim_timeout_action", "unknown action"))
    if value.inactivity_timeout_action not in INACTIVITY_ACTIONS:
        problems.append(FieldViolation(f"{field}.inactivity_timeout_action", "unknown action"))
    if problems:
        raise InvalidArgument(problems)
    texts: dict[str, Any] = {name: getattr(value, name) for name in _TEXTS}
    durations: dict[str, Any] = {
        attr: _seconds(getattr(value, name), f"{field}.{name}") for name, attr in _DURATIONS.items()
    }
    policy = HandoffPolicy(
        **texts,
        **durations,
        claim_timeout_action=CLAIM_ACTIONS[value.claim_timeout_action],
        inactivity_timeout_action=INACTIVITY_ACTIONS[value.inactivity_timeout_action],
        time_zone=value.time_zone,
        operating_hours=tuple(
            OperatingWindow(tuple(w.weekdays), w.start, w.end) for w in value.operating_hours
        ),
    )
    issues = policies.validate(policy)
    if issues:
        raise InvalidArgument([FieldViolation(f"{field}.{f}", d) for f, d in issues])
    return policy


def policy_to_proto(policy: HandoffPolicy) -> pb.HandoffPolicy:
    claim = {v: k for k, v in CLAIM_ACTIONS.items() if k}
    inactivity = {v: k for k, v in INACTIVITY_ACTIONS.items() if k}
    texts: dict[str, Any] = {name: getattr(policy, name) for name in _TEXTS}
    durations: dict[str, Any] = {
        name: _duration(getattr(policy, attr)) for name, attr in _DURATIONS.items()
    }
    return pb.HandoffPolicy(
        **texts,
        **durations,
        claim_timeout_action=claim[policy.claim_timeout_action],
        inactivity_timeout_action=inactivity[policy.inactivity_timeout_action],
        time_zone=policy.time_zone,
        operating_hours=[
            pb.OperatingWindow(weekdays=list(w.weekdays), start=w.start, end=w.end)
            for w in policy.operating_hours
        ],
    )


def _percentiles(value: Percentiles) -> pb.DurationPercentiles:
    return pb.DurationPercentiles(
        count=value.count, p50=_duration(value.p50_us / 1e6), p90=_duration(value.p90_us / 1e6)
    )


def stats_to_proto(stats: HandoffStats) -> pb.HandoffStats:
    return pb.HandoffStats(
        sessions=stats.sessions,
        sessions_with_handoff=stats.sessions_with_handoff,
        handoff_rate=stats.handoff_rate,
        handoffs=stats.handoffs,
        by_reason=stats.by_reason,
        by_outcome=stats.by_outcome,
        time_to_claim=_percentiles(stats.time_to_claim),
        time_to_first_human_reply=_percentiles(stats.time_to_first_human_reply),
        abandoned_while_queued=stats.abandoned_while_queued,
        returned_to_ai_share=stats.returned_to_ai_share,
        rehandoffs_within_30_minutes=stats.rehandoffs_within_30_minutes,
    )
