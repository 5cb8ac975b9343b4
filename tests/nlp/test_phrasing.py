"""Text shaping before embedding (nlp/phrasing.py): chat spelling, typos, clauses, voice."""

from __future__ import annotations

import pytest

from baton_server.nlp.phrasing import (
    Speller,
    clauses,
    distance,
    first_person,
    normalise,
    says_something,
)


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("cant log in pls", "can't log in please"),
        ("wheres my order, thx", "where's my order, thanks"),
        ("Dont", "don't"),
        ("pleased to cancel", "pleased to cancel"),  # whole words only
    ],
)
def test_normalise(typed: str, normalised: str) -> None:
    assert normalise(typed) == normalised


DOMAIN = [
    "The customer asks where their order or parcel is",
    "Explain that a refund reaches their account within 5 business days",
    "Connect the customer with a representative",
]
VOCABULARY = {"my", "is", "late", "status", "need", "now", "speak", "with", "parcels", "pizza"}


@pytest.mark.parametrize(
    ("typed", "corrected"),
    [
        ("my parcle is late", "my parcel is late"),  # transposition
        ("rfund status", "refund status"),  # one insertion away from a domain word
        ("speak with represenative", "speak with representative"),  # two edits, long word
        ("parcels", "parcels"),  # known to the model: left alone
        ("pizza", "pizza"),
        ("ordr", "order"),
    ],
)
def test_speller_corrects_towards_the_agents_own_words(typed: str, corrected: str) -> None:
    speller = Speller(DOMAIN, lambda word: word in VOCABULARY)
    assert speller.correct(typed) == corrected


def test_speller_leaves_ambiguous_words_alone() -> None:
    speller = Speller(["card", "cart"], lambda word: False)
    assert speller.correct("carx") == "carx"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("kitten", "sitting", 3), ("teh", "the", 1), ("same", "same", 0), ("", "abc", 3)],
)
def test_distance(a: str, b: str, expected: int) -> None:
    assert distance(a, b) == expected


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "I want a refund and I want to talk to a real person",
            ["I want a refund", "I want to talk to a real person"],
        ),
        (
            "Hi! Two things: has it shipped, and how long do refunds take?",
            ["Two things: has it shipped", "how long do refunds take"],
        ),
        ("refund please", []),
        ("ok, thanks", []),  # one part worth scoring is no split
    ],
)
def test_clauses(text: str, parts: list[str]) -> None:
    assert clauses(text) == parts


@pytest.mark.parametrize(
    ("condition", "voiced"),
    [
        ("The customer asks for a human", "I want a human"),
        ("The customer asks about a refund", "I have a question about a refund"),
        ("The customer asks where their order is", "I want to know where my order is"),
        ("The customer wants to cancel their subscription", "I want to cancel my subscription"),
        ("The customer's delivery is late", "my delivery is late"),
        ("The customer cannot log in", "I cannot log in"),
        ("Always greet warmly", None),
    ],
)
def test_first_person(condition: str, voiced: str | None) -> None:
    assert first_person(condition) == voiced


@pytest.mark.parametrize(
    ("text", "something"),
    [
        ("hello", False),
        ("Hi there!", False),
        ("ok, thanks so much", False),
        ("good morning :)", False),
        ("hello, where is my parcel?", True),
        ("refund", True),
        ("x", True),  # not small talk: left to the threshold
    ],
)
def test_says_something(text: str, something: bool) -> None:
    assert says_something(text) is something
