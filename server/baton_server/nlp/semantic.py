"""Matching by meaning: guideline conditions and canned responses against what the customer said,
by cosine similarity of all-MiniLM-L6-v2 sentence embeddings.

A guideline's condition is described to the model by its views (views.py: the condition and
customer-voice sentences derived from it by fixed rules), compared as their mean vector, and by
its complaints ("my item is missing", for a refund for a missing item), each on its own. What
the customer said is split into units: each recent message and each of its clauses
(phrasing.clauses). Every unit votes for the one guideline it is most similar to, if that
similarity reaches MATCH_THRESHOLD (a clause: MATCH_THRESHOLD + CLAUSE_MARGIN) and is not far
below the unit's similarity to the nearest text of background.py (chatter: "are you a bot?")
(BACKGROUND_LEAD); a guideline matches when some unit voted for it, with its best similarity as
the score. One vote per unit keeps near neighbours ("refund" vs "billing") from matching
together, while a message with two requests can still match two.

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

from baton_server.nlp.background import BACKGROUND
from baton_server.nlp.embeddings import EmbeddingCache
from baton_server.nlp.views import complaints, views

# Calibrated on data, not guessed: `python -m bench.nlp --calibrate` sweeps the three over the
# dev split of bench/data/nlp/utterances.jsonl (three agents; paraphrases, typos, several
# requests per message, chatter, near misses) and picks the setting with the best F1 of
# guideline matches among those that match at most 5 % of the off-topic chatter (ties: the
# higher values). bench.nlp reports what they give on the held-out test split, and says when the
# code and dev disagree. Dev: 416 messages (155 of them chatter, so one false match is 0.6 %).
# F1 is flat near the choice (0.886-0.889 for a background lead from -0.15 to -0.05).
MATCH_THRESHOLD = 0.34
CLAUSE_MARGIN = 0.0
# A unit votes only if its guideline is at least this much more similar to it than the nearest
# background text (background.py; negative: may be that much less similar). Swept with the two
# above.
BACKGROUND_LEAD: float | None = -0.15
# Background texts this similar to one of the agent's own condition vectors are left out (set by
# hand, not swept: none of the evaluation agents' conditions comes this close to one).
BACKGROUND_OVERLAP = 0.5

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
FloatVector = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    clause: bool  # a part of a message (see phrasing.clauses), not the whole message


@dataclass(frozen=True, slots=True)
class Vote:
    guideline: int  # index into the conditions scored
    score: float
    unit: str  # the message or clause that voted


@dataclass(frozen=True, slots=True)
class Description:
    """The texts a guideline's condition is embedded as (views.py). The condition's vector is
    the mean of its views' (one prototype: the centroid is steadier than the best single view,
    which lets short views like "someone please" pull in chatter); each complaint (what a
    request for a remedy is for: "my item is missing") counts on its own, as customers often
    say only that."""

    views: tuple[str, ...]
    complaints: tuple[str, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return (*self.views, *self.complaints)


@functools.lru_cache(maxsize=4096)
def describe(condition: str) -> Description:
    return Description(views(condition), complaints(condition))


def condition_vectors(vectors: FloatMatrix, description: Description) -> FloatMatrix:
    """The vectors a condition is compared by, from the rows of its texts (`description.texts`
    order): the views' centroid, then one per complaint."""
    centroid = vectors[: len(description.views)].mean(0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    return np.vstack([centroid, vectors[len(description.views) :]])


@dataclass(frozen=True, slots=True)
class Scores:
    guidelines: FloatMatrix  # units (rows) x conditions (columns)
    background: FloatVector  # per unit: its similarity to the nearest background text


async def unit_scores(
    cache: EmbeddingCache,
    units: Sequence[Unit],
    conditions: Sequence[str],
    also: Sequence[str] = (),
) -> Scores:
    """Similarity of each unit to each condition (to the closest of its vectors) and to the
    background (background.py; texts too close to a condition left out). Texts in `also` (what
    the reply will be chosen by: actions, canned responses) are embedded in the same forward
    pass if they are new, so that the turn needs no second one. A condition's texts repeat every
    turn: only a new message is embedded."""
    described = [describe(c) for c in conditions]
    texts = [t for d in described for t in d.texts]
    vectors = await cache.vectors([*(u.text for u in units), *texts, *BACKGROUND, *also])
    said = vectors[: len(units)]
    start = len(units)
    columns = []
    for description in described:
        rows = vectors[start : start + len(description.texts)]
        start += len(description.texts)
        columns.append(condition_vectors(rows, description))
    background = vectors[start : start + len(BACKGROUND)]
    scores = np.full((len(units), len(conditions)), -1.0, dtype=np.float32)
    nearest = np.full(len(units), -1.0, dtype=np.float32)
    if not len(units) or not columns:
        return Scores(scores, nearest)
    for column, prototypes in enumerate(columns):
        scores[:, column] = (said @ prototypes.T).max(1)
    own = np.vstack(columns)
    kept = background[(background @ own.T).max(1) < BACKGROUND_OVERLAP]
    if len(kept):
        nearest = (said @ kept.T).max(1)
    return Scores(scores, nearest)


def votes(
    scores: Scores,
    units: Sequence[Unit],
    threshold: float = MATCH_THRESHOLD,
    clause_margin: float = CLAUSE_MARGIN,
    background_lead: float | None = BACKGROUND_LEAD,
) -> list[Vote]:
    """Each unit's vote (its most similar guideline, if similar enough, and not much less
    similar than the nearest background text; `background_lead` None: no background check);
    per guideline the strongest vote, strongest first."""
    best: dict[int, Vote] = {}
    rows = zip(scores.guidelines, scores.background, units, strict=True)
    for row, nearest, unit in rows:
        if not len(row):
            break
        guideline = int(row.argmax())
        score = float(row[guideline])
        needed = threshold + clause_margin if unit.clause else threshold
        if background_lead is not None:
            needed = max(needed, float(nearest) + background_lead)
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
