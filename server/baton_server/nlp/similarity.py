"""The offline provider's documented similarity score.

`coverage(reference, text)` is the share of the reference's content words that occur in `text`:
both are lower-cased and split on anything that is not a letter or digit; stop words and words
that describe the conversation rather than its content ("customer", "asks", "wants", ...) are
dropped; a crude stemmer strips common English suffixes ("asking" → "ask", "refunds" →
"refund"). A guideline matches when its condition's coverage by the customer's latest message is
at least 0.5.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")

STOP_WORDS = frozenset(
    """a an the and or but if then so of to in on at by for with from about into over under
    is are was were be been being am do does did have has had i me my we our you your he she it
    its they them their this that these those there here what which who whom how when where why
    can could would should will shall may might must not no yes please thanks thank hi hello
    hey just really very also too some any all more most much many let lets get got
    customer customers user users client asks ask asking asked wants want wanting wanted says
    say saying said tells tell request requests requesting requested would like need
    needs""".split()
)

_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in words(text) if word not in STOP_WORDS)


def coverage(reference: str, text: str) -> float:
    """Share (0..1) of `reference`'s content words found in `text`."""
    wanted = content_words(reference)
    if not wanted:
        return 0.0
    return len(wanted & content_words(text)) / len(wanted)
