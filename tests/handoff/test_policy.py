"""Handoff policy arithmetic (handoff/policy.py), without a server: texts, operating hours,
estimated waits, deadlines and validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baton_server.domain import HandoffPolicy, OperatingWindow
from baton_server.handoff import policy as policies


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def test_texts_fall_back_to_the_defaults_and_fill_placeholders() -> None:
    custom = HandoffPolicy(queue_position_message="#{position}, ~{wait_minutes}m")
    assert policies.text(custom, "queue_position_message", position=3, wait_minutes=4) == "#3, ~4m"
    default = policies.text(HandoffPolicy(), "operator_joined_message", operator="Olga")
    assert default == "Olga has joined the conversation."


WEEKDAYS_9_TO_17 = HandoffPolicy(
    time_zone="Europe/Berlin",
    operating_hours=(OperatingWindow((1, 2, 3, 4, 5), "09:00", "17:00"),),
)


@pytest.mark.parametrize(
    ("utc_moment", "open_now"),
    [
        (datetime(2026, 11, 30, 8, 0, tzinfo=UTC), True),  # Monday 09:00 in Berlin
        (datetime(2026, 11, 30, 7, 59, tzinfo=UTC), False),  # 08:59
        (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), False),  # 17:00: the end is exclusive
        (datetime(2026, 12, 5, 10, 0, tzinfo=UTC), False),  # Saturday
    ],
)
def test_operating_hours_in_the_policys_time_zone(utc_moment: datetime, open_now: bool) -> None:
    assert policies.within_operating_hours(WEEKDAYS_9_TO_17, _us(utc_moment)) is open_now


def test_no_operating_hours_means_always_open() -> None:
    assert policies.within_operating_hours(HandoffPolicy(), 0)


def test_until_midnight_window() -> None:
    late = HandoffPolicy(operating_hours=(OperatingWindow((), "18:00", "24:00"),))
    assert policies.within_operating_hours(late, _us(datetime(2026, 1, 1, 23, 59, tzinfo=UTC)))
    assert not policies.within_operating_hours(late, _us(datetime(2026, 1, 1, 17, 0, tzinfo=UTC)))


@pytest.mark.parametrize(
    ("position", "waits_us", "per_position_default", "expected_s"),
    [
        (3, [], 0.0, 360.0),  # the built-in 2 minutes per position
        (2, [], 30.0, 60.0),  # the policy's default
        (2, [10_000_000, 20_000_000, 90_000_000], 30.0, 40.0),  # the median recent wait
        (1, [10_000_000, 20_000_000], 0.0, 20.0),  # upper median of an even count
    ],
)
def test_estimated_wait(
    position: int, waits_us: list[int], per_position_default: float, expected_s: float
) -> None:
    policy = HandoffPolicy(default_wait_per_position_s=per_position_default)
    assert policies.estimated_wait_s(policy, position, waits_us) == expected_s


def test_deadlines_only_for_positive_durations() -> None:
    assert policies.deadline(1_000_000, 2.5) == 3_500_000
    assert policies.deadline(1_000_000, 0) is None


def test_validation_names_each_bad_field() -> None:
    bad = HandoffPolicy(
        time_zone="Mars/Olympus",
        operating_hours=(OperatingWindow((0, 8), "24:00", "25:00"),),
        claim_timeout_s=-1,
        inactivity_timeout_s=float("inf"),
    )
    assert [field for field, _ in policies.validate(bad)] == [
        "time_zone",
        "operating_hours[0].start",
        "operating_hours[0].end",
        "operating_hours[0].weekdays",
        "claim_timeout",
        "inactivity_timeout",
    ]
    assert policies.validate(WEEKDAYS_9_TO_17) == []
