"""Several texts per guideline condition, each a way a customer might put it.

A condition is written once, tersely and in the third person ("The customer asks for a human");
customers say the same thing in many shapes ("can I talk to a real person?"). One sentence
vector of the condition sits far from many of them. `views` derives, by fixed rules from the
condition's own words (no data, no model), customer-voice sentences; semantic.py compares a
message with their mean vector (a prototype of the condition).

The rules, on the condition in the customer's voice (phrasing.first_person):
- alternatives: "where my order or parcel is" → "where my order is", "where my parcel is";
  "my delivery is late or has not arrived" → "my delivery is late", "my delivery has not
  arrived".
- SYNONYMS: a few words of customer service and what customers write for them: "a human" →
  "a person", "someone", "a representative"; "sign in" → "log in"; "a refund" → "my money back".
- templates (_RULES): "I want X" → "can I get X", "I need X"; "I want to V" → "can I V", "how do
  I V"; "I want to know where my X is" → "where is my X?"; "I have a question about X" → "what
  about X?"; "I cannot V" → "I can't V", "I am unable to V"; "my X has not arrived" → "where is
  my X?"; "I was charged X" → "you charged me X".

`complaints`: a request for a remedy ("a refund for a missing item") is often made by stating
only the problem ("my drink is missing"): the problem, in the customer's words, counts on its own.

Chosen on the dev split of bench/data/nlp (see bench/README.md): the rules were written from the
conditions' grammar; which synonyms to keep was checked on dev only.
"""

from __future__ import annotations

import functools
import re

from baton_server.nlp.phrasing import first_person

# Words of customer-service conditions, and what customers write for them (generic, not any one
# agent's). Applied one at a time.
SYNONYMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a human", ("a person", "a real person", "someone", "an agent", "a representative")),
    ("a person", ("a human", "a real person", "somebody", "a staff member", "a live agent")),
    ("speak to", ("talk to", "chat with", "be put through to", "be connected to")),
    ("talk to", ("speak to", "chat with", "be put through to", "be connected to")),
    ("sign in", ("log in",)),
    ("log in", ("sign in",)),
    ("sign in to", ("get into",)),
    ("log in to", ("get into",)),
    ("a refund", ("my money back",)),
    ("parcel", ("package",)),
    ("order", ("package",)),
    ("delivery", ("order",)),
    ("bill", ("payment",)),
    ("invoice", ("payment",)),
    ("charged", ("billed",)),
    ("cancel", ("stop", "end")),
)

# A cap on a condition's views, each embedded once per agent (dev recall rose up to 48).
MAX_VIEWS = 48

_DETERMINERS = frozenset("a an the my your their".split())


def alternatives(text: str) -> list[str]:
    """`text` with one "A or B" reduced to one side: a word (or a determiner and a word) each
    side ("where my order or parcel is" → "where my order is", "where my parcel is"), or whole
    clauses when a verb follows `or` ("my delivery is late or has not arrived" → "my delivery
    is late", "my delivery has not arrived")."""
    words = text.split()
    found = []
    for i, word in enumerate(words):
        if word != "or" or i == 0 or i == len(words) - 1:
            continue
        after = words[i + 1 :]
        subject = _subject(words[:i])
        if subject and len(after) >= 3 and after[0].lower() not in _DETERMINERS:
            found += [" ".join(words[:i]), " ".join([*subject, *after])]
            continue
        b = 2 if after[0].lower() in _DETERMINERS and len(after) > 1 else 1
        found.append(" ".join([*words[:i], *after[b:]]))
        keep_b = after if b == 1 or i < 2 or words[i - 2].lower() not in _DETERMINERS else after[1:]
        found.append(" ".join([*words[: i - 1], *keep_b]))
    return found


_SUBJECT_ENDS = frozenset("is are was were has have can't cannot".split())
_MODALS = frozenset("can't cannot want need would".split())


def _subject(words: list[str]) -> list[str]:
    """The subject of the clause before `or`, for the clause after it: "I cannot" (of "I cannot
    log in"), "my delivery" (of "my delivery is late")."""
    if not words:
        return []
    if words[0].lower() == "i":
        modal = words[1:2] if len(words) > 1 and words[1].lower() in _MODALS else []
        return [words[0], *modal]
    if words[0].lower() == "my":
        for j, word in enumerate(words[1:], start=1):
            if word.lower() in _SUBJECT_ENDS:
                return words[:j]
    return []


_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"^I want to know (where|when|how|why|what|whether|if) (.+?) (is|are|was|were)$",
     (r"\1 \3 \2?", r"\1's \2?")),
    (r"^I want to know (.+)$", (r"\1?", r"can you tell me \1")),
    (r"^I want to (.+)$", (r"can I \1", r"I would like to \1", r"how do I \1",
                           r"please let me \1", r"I need to \1")),
    (r"^I want (?!to )(.+)$", (r"can I get \1", r"I need \1", r"\1 please", r"give me \1")),
    (r"^I have a question about (.+)$", (r"what about \1?", r"question about \1",
                                          r"can you explain \1")),
    (r"^I (?:cannot|can't|can not) (.+)$", (r"I can't \1", r"I am unable to \1",
                                            r"help, I can't \1", r"I'm not able to \1")),
    (r"^(my .+?) (?:has|have) not (arrived|come)$", (r"\1 hasn't \2", r"where is \1?",
                                                     r"\1 still hasn't \2")),
    (r"^(my .+?) is late$", (r"\1 is late", r"where is \1?", r"\1 is taking too long")),
    (r"^my (.+?) (?:has|have) not arrived$", (r"my \1 is not here yet", r"still no \1")),
    (r"^I was charged (.+)$", (r"you charged me \1", r"I got charged \1")),
)  # fmt: skip


def _templates(text: str) -> list[str]:
    found = []
    for pattern, outputs in _RULES:
        match = re.match(pattern, text, flags=re.IGNORECASE)
        if match:
            found += [match.expand(output) for output in outputs]
    return found


def _synonyms(text: str) -> list[str]:
    found = []
    for word, others in SYNONYMS:
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        if pattern.search(text):
            found += [pattern.sub(other, text, count=1) for other in others]
    return found


@functools.lru_cache(maxsize=4096)
def views(condition: str) -> tuple[str, ...]:
    """The texts `condition` is embedded as: itself, in the customer's voice, and what the rules
    above derive from that (at most MAX_VIEWS: the condition, its alternatives and synonyms
    first, then the templates)."""
    voiced = first_person(condition)
    if voiced is None:
        return (condition,)
    split = alternatives(voiced)
    base = [voiced, *split]
    worded = [s for b in base for s in _synonyms(b)]
    # Templates read one clause: not a text that still has "A or B" in it.
    plain = [t for t in [*base, *worded] if " or " not in f" {t} "] or [voiced]
    shaped = [t for p in plain for t in _templates(p)]
    found = [condition, *base, *worded, *shaped]
    unique = list(dict.fromkeys(" ".join(t.split()) for t in found if t.strip()))
    return tuple(unique[:MAX_VIEWS])


# What a request is for is itself the complaint: "a refund for a missing item" ← "my item is
# missing". Customers often state only that; these views form a prototype of their own.
_COMPLAINT = re.compile(
    r"^I (?:want|need) (?:a refund|my money back|a replacement|compensation) for "
    r"(?:a|an|the|my) (\w+) (\w+)$",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def complaints(condition: str) -> tuple[str, ...]:
    """The complaint behind a request for a remedy, in the customer's words (none if the
    condition asks for no remedy)."""
    voiced = first_person(condition)
    if voiced is None:
        return ()
    found = []
    for text in [voiced, *alternatives(voiced)]:
        match = _COMPLAINT.match(text)
        if match:
            adjective, noun = match.groups()
            found += [
                f"my {noun} is {adjective}",
                f"the {noun} was {adjective}",
                f"I got a {adjective} {noun}",
            ]
    return tuple(dict.fromkeys(found))
