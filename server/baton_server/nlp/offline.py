"""Deterministic, network-free provider: runs Baton end to end on a fresh machine and in tests.

It does not understand language. It matches guideline conditions to the latest customer message
by word coverage (see similarity.py), calls the matched guidelines' tools with every string
parameter set to the customer's message, and replies with the canned response that covers most of
the best guideline's action (or, with no match, of the message) if it covers at least a third,
else with the best guideline's action itself, else with a fixed fallback.
"""

from __future__ import annotations

from collections.abc import Callable

from baton_server.nlp.base import GuidelineMatch, ToolCallPlan, TurnContext
from baton_server.nlp.similarity import coverage
from baton_server.tools.api import Tool
from baton_server.tools.registry import ToolOutcome

MATCH_THRESHOLD = 0.5
CANNED_THRESHOLD = 0.34
FALLBACK_REPLY = "Thanks for your message. Could you tell me a little more so I can help?"


class OfflineProvider:
    name = "offline"

    async def match_guidelines(self, context: TurnContext) -> list[GuidelineMatch]:
        matches = []
        for guideline in context.guidelines:
            score = coverage(guideline.condition, context.latest_text)
            if score >= MATCH_THRESHOLD:
                matches.append(GuidelineMatch(guideline, score, f"word coverage {score:.2f}"))
        return sorted(matches, key=lambda m: -m.score)

    async def plan_tool_calls(
        self, context: TurnContext, matches: list[GuidelineMatch], tools: list[Tool]
    ) -> list[ToolCallPlan]:
        plans = []
        for item in tools:
            properties = item.parameters.get("properties", {})
            arguments = {
                name: context.latest_text
                for name, schema in properties.items()
                if schema.get("type") == "string"
            }
            plans.append(ToolCallPlan(item.name, arguments))
        return plans

    async def write_reply(
        self,
        context: TurnContext,
        matches: list[GuidelineMatch],
        outcomes: list[ToolOutcome],
        on_delta: Callable[[str], None],
    ) -> str:
        # What the reply should say: the best guideline's action, else the customer's words.
        reference = matches[0].guideline.action if matches else context.latest_text
        best_text, best_score = "", 0.0
        for canned in context.canned_responses:
            score = coverage(reference, canned.text)
            if score > best_score:
                best_text, best_score = canned.text, score
        if best_score >= CANNED_THRESHOLD:
            return best_text
        if matches:
            return matches[0].guideline.action
        return FALLBACK_REPLY
