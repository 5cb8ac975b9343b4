"""The provider interface the engine is written against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from baton_server.domain import Agent, CannedResponse, Event, Guideline
from baton_server.tools.api import Tool
from baton_server.tools.registry import ToolOutcome


class ProviderError(Exception):
    """The provider failed (unreachable, rate limited, malformed output, too slow)."""


@dataclass(frozen=True, slots=True)
class TurnContext:
    """Everything a provider may look at for one turn."""

    session_id: str
    agent: Agent
    customer_id: str
    # The conversation so far (messages, tool events, mode changes), oldest first.
    history: list[Event]
    # The customer message that started the turn.
    trigger: Event
    guidelines: list[Guideline]
    canned_responses: list[CannedResponse]

    @property
    def latest_text(self) -> str:
        return str(self.trigger.data.get("text", ""))


@dataclass(frozen=True, slots=True)
class GuidelineMatch:
    guideline: Guideline
    score: float
    rationale: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallPlan:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


class NLPProvider(Protocol):
    name: str

    async def match_guidelines(self, context: TurnContext) -> list[GuidelineMatch]:
        """Which of the agent's guidelines apply to the conversation now."""
        ...

    async def plan_tool_calls(
        self, context: TurnContext, matches: list[GuidelineMatch], tools: list[Tool]
    ) -> list[ToolCallPlan]:
        """Which of `tools` (those of the matched guidelines) to call, with what arguments."""
        ...

    async def write_reply(
        self,
        context: TurnContext,
        matches: list[GuidelineMatch],
        outcomes: list[ToolOutcome],
        on_delta: Callable[[str], None],
    ) -> str:
        """The agent's reply; providers that stream call `on_delta` with each piece."""
        ...
