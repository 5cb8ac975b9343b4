"""Text shaping before embedding: what customers type, and how guidelines are worded.

- `normalise`: chat spelling ("cant", "pls", "wheres") to the words the model learned.
- `Speller`: a misspelt word ("parcle", "refnd") one or two edits away from a word of the agent's
  own texts (guidelines, canned responses) becomes that word. The model reads unknown words as
  word pieces, which carry little meaning.
- `clauses`: a message's parts ("where is my order? also I want a refund"), so that each intent
  of a message is scored on its own and not blurred into one average.
- `first_person`: "The customer asks where their order is" → "I want to know where my order
  is": a condition says what customers say in the third person; the model compares sentences
  best in the same voice.
- `says_something`: False for greetings, thanks and other words that carry no request ("hello",
  "ok thanks"): short texts embed close to everything, and "hello" scored as near to "The
  customer asks for a human" as real requests do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from baton_server.nlp.similarity import STOP_WORDS, words

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")

CHAT_SPELLING = {
    "cant": "can't",
    "dont": "don't",
    "doesnt": "doesn't",
    "didnt": "didn't",
    "isnt": "isn't",
    "wasnt": "wasn't",
    "arent": "aren't",
    "havent": "haven't",
    "hasnt": "hasn't",
    "wont": "won't",
    "couldnt": "couldn't",
    "wouldnt": "wouldn't",
    "shouldnt": "shouldn't",
    "im": "I'm",
    "ive": "I've",
    "youre": "you're",
    "thats": "that's",
    "whats": "what's",
    "wheres": "where's",
    "hows": "how's",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "u": "you",
    "ur": "your",
    "tho": "though",
}


SMALL_TALK = frozenset(
    """hi hello hey hiya howdy yo greetings thanks thank thx ty cheers ok okay k kk cool great
    nice good morning afternoon evening night bye goodbye cya lol haha hah hehe lmao brb yeah
    yep yup sure fine alright welcome""".split()
)


def says_something(text: str) -> bool:
    """Whether `text` has a word that is neither a stop word nor small talk."""
    return any(w not in STOP_WORDS and w not in SMALL_TALK for w in words(text))


def normalise(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        return CHAT_SPELLING.get(word.lower(), word)

    return _WORD.sub(replace, text)


def _edits(word: str) -> set[str]:
    """Strings one deletion, transposition, substitution or insertion away (a-z)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return {
        *(a + b[1:] for a, b in splits if b),
        *(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1),
        *(a + c + b[1:] for a, b in splits if b for c in letters),
        *(a + c + b for a, b in splits for c in letters),
    }


class Speller:
    """Corrects words that are neither known to the model's vocabulary (`known`) nor in
    `domain`, towards a domain word: one edit away for words of 4+ letters, two for 8+. A word
    with two equally close candidates is left alone."""

    def __init__(self, domain: Iterable[str], known: Callable[[str], bool]) -> None:
        found = (w.lower() for text in domain for w in _WORD.findall(text))
        self._domain = frozenset(w for w in found if len(w) >= 4 and "'" not in w)
        self._known = known

    def correct(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            word = match.group(0)
            fixed = self._fix(word.lower())
            return word if fixed is None else fixed

        return _WORD.sub(replace, text)

    def _fix(self, word: str) -> str | None:
        if len(word) < 4 or word in self._domain or "'" in word or self._known(word):
            return None
        found = sorted(self._domain & _edits(word))
        if not found and len(word) >= 8:
            found = [
                w
                for w in sorted(self._domain)
                if w[0] == word[0] and abs(len(w) - len(word)) <= 2 and distance(w, word) <= 2
            ]
        return found[0] if len(found) == 1 else None


def distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


# Clause boundaries: sentence ends, semicolons, and the joints of "X, and also Y"-like messages.
_CLAUSE = re.compile(
    r"[.!?;]+\s*|\s*,\s*(?:and|also|plus|but|so)?\s*|\s+(?:and also|and|also|plus|but)\s+",
    re.IGNORECASE,
)


def clauses(text: str) -> list[str]:
    """The parts of a message worth scoring on their own (none when it has only one)."""
    parts = [p.strip() for p in _CLAUSE.split(text) if p and len(p.strip()) > 2]
    return parts if len(parts) > 1 else []


_SUBJECT = re.compile(r"^\s*the (?:customer|user|client|caller|visitor)('s)?\b", re.IGNORECASE)
_VOICE = [
    (r"^I asks (?:for|to have)\b", "I want"),
    (r"^I asks about\b", "I have a question about"),
    (r"^I asks (?=where|when|how|why|what|whether|if|who|which)", "I want to know "),
    (r"^I (?:asks|wants|would like|requests) to\b", "I want to"),
    (r"^I (ask|want|need|say|request|tell|mention|complain|report)s\b", r"I \1"),
    (r"^I is\b", "I am"),
    (r"^I has\b", "I have"),
    (r"^I does\b", "I do"),
    (r"\btheir\b", "my"),
    (r"\btheirs\b", "mine"),
    (r"\bthemselves\b", "myself"),
    (r"\bthem\b", "me"),
    (r"\bthey are\b", "I am"),
    (r"\bthey have\b", "I have"),
    (r"\bthey\b", "I"),
]


def first_person(condition: str) -> str | None:
    """The condition in the customer's own voice, or None if it is not about "the customer"."""
    match = _SUBJECT.match(condition)
    if match is None:
        return None
    text = ("my" if match.group(1) else "I") + condition[match.end() :]
    for pattern, replacement in _VOICE:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text
