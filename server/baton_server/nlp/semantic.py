"""Matching by meaning: guideline conditions and canned responses against what the customer said,
by cosine similarity of all-MiniLM-L6-v2 sentence embeddings.

A guideline is described to the model by its condition and by the condition in the customer's
voice (phrasing.first_person). What the customer said is split into units: each recent message
and each of its clauses (phrasing.clauses). Every unit votes for the one guideline it is most
similar to, if that similarity reaches MATCH_THRESHOLD (a clause: MATCH_THRESHOLD +
CLAUSE_MARGIN, as a fragment like "I sent the parcel back" is weaker evidence than a whole
message); a guideline matches when some unit voted for it, with its best similarity as the
score. One vote per unit keeps near neighbours ("refund" vs "billing") from matching together,
while a message with two requests can still match two.

It measures closeness of meaning, not intent: a message that talks about a guideline's subject
without asking for anything ("the refund came through, thanks") is as close as one that asks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from baton_server.nlp.embeddings import EmbeddingCache
from baton_server.nlp.phrasing import first_person

# Calibrated on data, not guessed: `python -m bench.nlp --calibrate` sweeps both over the dev
# split of bench/data/nlp/utterances.jsonl (three agents; paraphrases, typos, several requests
# per message, chatter, near misses) and picks the pair with the best F1 of guideline matches
# among those that match at most 5 % of the off-topic chatter (ties: the higher values). bench.nlp
# reports what they give on the held-out test split, and says when the code and dev disagree.
# Dev: 416 messages (155 of them chatter, so one false match is 0.6 %). The F1 is flat near the
# choice (0.83 from 0.26 to 0.31): the constraint on chatter, not the F1, decides it.
MATCH_THRESHOLD = 0.31
CLAUSE_MARGIN = 0.05

# Reply choice, set by hand (not swept; bench.nlp's "reply" rows measure them). A canned response
# answers a matched guideline when it is at least this similar to the guideline's action (a
# response about something else is not sent in its place).
CANNED_THRESHOLD = 0.3
# The conversation's weight, next to the action's, in choosing among fitting canned responses.
CONTEXT_WEIGHT = 0.5
# With no guideline matched, a canned response is sent only if it is this close to the message
# itself (a near paraphrase of a question it answers); else the fallback reply.
UNMATCHED_CANNED_THRESHOLD = 0.6

FloatMatrix = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    clause: bool  # a part of a message (see phrasing.clauses), not the whole message


@dataclass(frozen=True, slots=True)
class Vote:
    guideline: int  # index into the conditions scored
    score: float
    unit: str  # the message or clause that voted


@functools.lru_cache(maxsize=4096)
def descriptions(condition: str) -> tuple[str, ...]:
    """The texts a guideline's condition is embedded as (similarity: the best of them)."""
    voiced = first_person(condition)
    return (condition,) if voiced is None or voiced == condition else (condition, voiced)


async def unit_scores(
    cache: EmbeddingCache,
    units: Sequence[Unit],
    conditions: Sequence[str],
    also: Sequence[str] = (),
) -> FloatMatrix:
    """Similarity of each unit (rows) to each condition (columns). Texts in `also` (what the
    reply will be chosen by: actions, canned responses) are embedded in the same forward pass
    if they are new, so that the turn needs no second one."""
    texts = [d for c in conditions for d in descriptions(c)]
    owners = [i for i, c in enumerate(conditions) for _ in descriptions(c)]
    vectors = await cache.vectors([*(u.text for u in units), *texts, *also])
    similarity = vectors[: len(units)] @ vectors[len(units) : len(units) + len(texts)].T
    scores = np.full((len(units), len(conditions)), -1.0, dtype=np.float32)
    for column, owner in enumerate(owners):
        np.maximum(scores[:, owner], similarity[:, column], out=scores[:, owner])
    return scores


def votes(
    scores: FloatMatrix,
    units: Sequence[Unit],
    threshold: float = MATCH_THRESHOLD,
    clause_margin: float = CLAUSE_MARGIN,
) -> list[Vote]:
    """Each unit's vote (its most similar guideline, if similar enough); per guideline the
    strongest vote, strongest first."""
    best: dict[int, Vote] = {}
    for row, unit in zip(scores, units, strict=True):
        if not len(row):
            break
        guideline = int(row.argmax())
        score = float(row[guideline])
        needed = threshold + clause_margin if unit.clause else threshold
        if score >= needed and (guideline not in best or score > best[guideline].score):
            best[guideline] = Vote(guideline, score, unit.text)
    return sorted(best.values(), key=lambda v: -v.score)


_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def fill(template: str, fields: Mapping[str, str]) -> str | None:
    """A canned response with its `{{field}}`s filled from tool results, or None when one of
    them has no value (that response does not fit this turn)."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        found = fields.get(match.group(1))
        if found is None:
            missing = True
            return ""
        return found

    filled = _FIELD.sub(value, template)
    return None if missing else filled


def as_words(template: str) -> str:
    """A template as the model reads it: `{{order}}` as the word "order"."""
    return _FIELD.sub(lambda m: m.group(1).replace("_", " "), template)


async def choose_canned(
    cache: EmbeddingCache,
    canned: Sequence[str],
    fields: Mapping[str, str],
    action: str | None,
    context: Sequence[str],
) -> str | None:
    """The canned response that fits: close enough to the guideline's `action`, and among those
    the one that states most of what tools found (filled `{{field}}`s), then the closest to the
    action and the `context` (what the customer said, what tools found: their mean vector).
    With no action: the closest to the context, if close enough. None if nothing fits. Templates
    whose fields this turn cannot fill are skipped. Every text here repeats across turns, so
    each is embedded once."""
    usable = [(text, filled) for text in canned if (filled := fill(text, fields)) is not None]
    if not usable or not context:
        return None
    templates = [as_words(text) for text, _ in usable]
    vectors = await cache.vectors([*context, *([action] if action else []), *templates])
    said = vectors[: len(context)].sum(0)
    said /= max(float(np.linalg.norm(said)), 1e-12)
    options = vectors[-len(usable) :]
    to_context = options @ said
    if action is None:
        best = int(to_context.argmax())
        return usable[best][1] if to_context[best] >= UNMATCHED_CANNED_THRESHOLD else None
    to_action = options @ vectors[len(context)]
    ranked = [
        (len(_FIELD.findall(text)), float(to_action[i] + CONTEXT_WEIGHT * to_context[i]), i)
        for i, (text, _) in enumerate(usable)
        if to_action[i] >= CANNED_THRESHOLD
    ]
    return usable[max(ranked)[2]][1] if ranked else None
