"""Pure functions over a HandoffPolicy: defaults, operating hours, customer-facing texts."""

from __future__ import annotations

import math
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from baton_server.domain import HandoffPolicy, OperatingWindow, us_to_datetime

DEFAULT_TEXTS = {
    "handoff_started_message": "I'm connecting you with a member of our team.",
    "operator_joined_message": "{operator} has joined the conversation.",
    "operator_joined_anonymous_message": "A member of our team has joined the conversation.",
    "ai_back_message": "You're back with our virtual assistant.",
    "no_operator_message": (
        "No one from our team is available right now. Your request is queued and we will "
        "answer here as soon as we can."
    ),
    "queue_position_message": (
        "You are number {position} in the queue. Estimated wait: about {wait_minutes} min."
    ),
    "claim_timeout_message": "Thank you for waiting; our team is still busy.",
}
DEFAULT_WAIT_PER_POSITION_S = 120.0
CLAIM_TIMEOUT_ACTIONS = ("keep_waiting", "return_to_ai")
INACTIVITY_TIMEOUT_ACTIONS = ("return_to_ai", "end")


def text(policy: HandoffPolicy, name: str, **values: object) -> str:
    template = getattr(policy, name) or DEFAULT_TEXTS[name]
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def parse_clock(value: str) -> time | None:
    """ "HH:MM" → time; "24:00" → None (end of day). Raises ValueError on anything else."""
    hours, _, minutes = value.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"{value!r} is not HH:MM")
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0):
        return None
    if h > 23 or m > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return time(h, m)


def validate(policy: HandoffPolicy) -> list[tuple[str, str]]:
    """(field, problem) pairs; empty when the policy is usable."""
    problems: list[tuple[str, str]] = []
    if policy.time_zone:
        try:
            ZoneInfo(policy.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(("time_zone", f"unknown time zone {policy.time_zone!r}"))
    for i, window in enumerate(policy.operating_hours):
        for name in ("start", "end"):
            try:
                parsed = parse_clock(getattr(window, name))
                if name == "start" and parsed is None:
                    problems.append((f"operating_hours[{i}].start", "must be before 24:00"))
            except ValueError as error:
                problems.append((f"operating_hours[{i}].{name}", str(error)))
        if any(day < 1 or day > 7 for day in window.weekdays):
            problems.append((f"operating_hours[{i}].weekdays", "weekdays are 1 (Mon) to 7 (Sun)"))
    for name in ("claim_timeout_s", "inactivity_timeout_s", "default_wait_per_position_s"):
        value = getattr(policy, name)
        if value < 0 or not math.isfinite(value):
            problems.append((name.removesuffix("_s"), "must be a non-negative duration"))
    return problems


def _inside(window: OperatingWindow, moment: datetime) -> bool:
    if window.weekdays and moment.isoweekday() not in window.weekdays:
        return False
    start, end = parse_clock(window.start), parse_clock(window.end)
    now = moment.time()
    return (start is None or now >= start) and (end is None or now < end)


def within_operating_hours(policy: HandoffPolicy, now_us: int) -> bool:
    if not policy.operating_hours:
        return True
    moment = us_to_datetime(now_us).astimezone(ZoneInfo(policy.time_zone or "UTC"))
    return any(_inside(window, moment) for window in policy.operating_hours)


def estimated_wait_s(policy: HandoffPolicy, position: int, recent_waits_us: list[int]) -> float:
    """Position × the median recent time-to-claim (or the policy's default per position)."""
    if recent_waits_us:
        ordered = sorted(recent_waits_us)
        per_position = ordered[len(ordered) // 2] / 1_000_000
    else:
        per_position = policy.default_wait_per_position_s or DEFAULT_WAIT_PER_POSITION_S
    return position * per_position


def deadline(now_us: int, seconds: float) -> int | None:
    return now_us + int(seconds * 1_000_000) if seconds > 0 else None
