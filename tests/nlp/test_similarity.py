"""The offline provider's similarity score (nlp/similarity.py), without a server."""

from __future__ import annotations

import pytest

from baton_server.nlp.similarity import content_words, coverage, stem


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("refunds", "refund"),
        ("asking", "ask"),
        ("shipped", "shipp"),  # crude on purpose: documented, and both sides stem alike
        ("boxes", "box"),
        ("bus", "bus"),  # too short to strip
        ("ring", "ring"),
    ],
)
def test_stem(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_content_words_drop_stop_words_and_conversation_words() -> None:
    assert content_words("The customer asks: where is my REFUND?!") == {"refund"}
    assert content_words("") == frozenset()


@pytest.mark.parametrize(
    ("reference", "text", "expected"),
    [
        ("customer asks about a refund", "how do refunds work", 1.0),
        ("refund for a damaged parcel", "my parcel arrived damaged", 2 / 3),
        ("refund for a damaged parcel", "hello there", 0.0),
        ("the customer asks", "anything at all", 0.0),  # no content words: never matches
    ],
)
def test_coverage(reference: str, text: str, expected: float) -> None:
    assert coverage(reference, text) == pytest.approx(expected)
