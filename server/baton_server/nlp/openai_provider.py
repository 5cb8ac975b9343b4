"""Provider on the official `openai` client: any OpenAI-compatible chat-completions server.

Guideline matching uses structured output (a JSON schema), tool choice uses function calling,
and the reply streams (each piece goes to `on_delta`). Every API failure — unreachable server,
429/5xx after the client's retries, time-outs, malformed output — becomes a ProviderError, which
the engine records as a turn error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolMessageParam,
)

from baton_server.domain import (
    HANDOFF_EVENT_PREFIX,
    SESSION_MODE_CHANGED,
    Event,
    EventKind,
    EventSource,
    HandoffOutcome,
    SessionMode,
)
from baton_server.nlp.base import GuidelineMatch, ProviderError, ToolCallPlan, TurnContext
from baton_server.tools.api import Tool
from baton_server.tools.registry import ToolOutcome

_MATCH_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "matches": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "guideline_id": {"type": "string"},
                    "applies": {"type": "boolean"},
                    "rationale": {"type": "string"},
                },
                "required": ["guideline_id", "applies", "rationale"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["matches"],
    "additionalProperties": False,
}


HANDOFF_SUMMARY_PROMPT = (
    "Summarise this customer-service conversation for the human colleague who takes it over:"
    " the customer's problem, what was already tried or promised, and what they wait for."
    " At most five short lines, no greeting."
)


def conversation(context: TurnContext) -> list[ChatCompletionMessageParam]:
    """The session's history as chat messages, from the AI agent's point of view."""
    return history_messages(context.history)


def history_messages(history: list[Event]) -> list[ChatCompletionMessageParam]:
    """Chat messages in the roles the events earned: what customers wrote is always `user`
    text, whatever it says; tool calls reach the model as tool messages only when the server's
    engine wrote them (source SYSTEM, no actor: no API caller can); Baton's own lifecycle events
    (types `baton.*`, which clients may not post) become fixed sentences built from their enum
    fields only, never their free text (reasons and summaries quote customers); an operator's
    note on handing back comes in the assistant voice human agents' messages have. Anything
    else posted by an API caller is left out rather than given a voice the model trusts."""
    messages: list[ChatCompletionMessageParam] = []
    for event in history:
        data = event.data
        if event.kind is EventKind.MESSAGE:
            text = str(data.get("text", ""))
            if event.source in (EventSource.CUSTOMER, EventSource.CUSTOMER_UI):
                messages.append({"role": "user", "content": text})
            elif event.source is EventSource.HUMAN_AGENT:
                name = (data.get("participant") or {}).get("display_name") or "a human agent"
                messages.append({"role": "assistant", "content": f"[{name}, human agent] {text}"})
            else:
                messages.append({"role": "assistant", "content": text})
        elif not _written_by_server(event):
            continue
        elif event.kind is EventKind.TOOL:
            messages.extend(_tool_messages(event.offset, event.data.get("tool_calls", [])))
        elif event.kind is EventKind.CUSTOM and (sentence := session_event_sentence(data)):
            messages.append({"role": "system", "content": sentence})
            note = data.get("note") if data.get("type") == HANDOFF_EVENT_PREFIX + "ended" else None
            if isinstance(note, str) and note.strip():
                # The operator's note on handing back: staff words, in the voice human agents'
                # messages have (assistant), never the system's.
                messages.append(
                    {"role": "assistant", "content": f"[note from the human agent] {note}"}
                )
    return messages


_MODES = {m.value for m in SessionMode}
_OUTCOMES = {o.value for o in HandoffOutcome if o.value}
# What each handoff lifecycle event tells the model, in words Baton chose.
_HANDOFF_SENTENCES = {
    "requested": "A handoff to a human agent was requested.",
    "offered": "The handoff was offered to a human agent.",
    "offer_declined": "A human agent declined the handoff offer.",
    "claimed": "A human agent took over the conversation.",
    "transferred": "The conversation was transferred to another human agent.",
    "claim_timeout": "No human agent has taken the handoff yet.",
}


def session_event_sentence(data: dict[str, Any]) -> str | None:
    """A `baton.*` event as a sentence made only of fixed words and enum values, or None."""
    kind = str(data.get("type", ""))
    if kind == SESSION_MODE_CHANGED:
        mode, previous = data.get("mode"), data.get("previous_mode")
        if mode in _MODES and previous in _MODES:
            return f"Session event: the session mode changed from {previous} to {mode}."
        return None
    change = (
        kind.removeprefix(HANDOFF_EVENT_PREFIX) if kind.startswith(HANDOFF_EVENT_PREFIX) else ""
    )
    if change == "ended":
        outcome = data.get("outcome")
        tail = f" ({outcome})" if outcome in _OUTCOMES else ""
        return f"Session event: the handoff to human agents ended{tail}."
    sentence = _HANDOFF_SENTENCES.get(change)
    return f"Session event: {sentence}" if sentence else None


def _written_by_server(event: Event) -> bool:
    return event.source is EventSource.SYSTEM and (
        event.actor is None or event.kind is EventKind.CUSTOM
    )


def _tool_messages(
    key: int | str, tool_calls: list[dict[str, Any]]
) -> list[ChatCompletionMessageParam]:
    """Tool calls (as recorded in tool events' JSON) as the assistant's calls followed by their
    results, in the `tool` role (their results often echo what the customer typed: data, never
    instructions)."""
    calls: list[ChatCompletionMessageFunctionToolCallParam] = []
    results: list[ChatCompletionToolMessageParam] = []
    for i, call in enumerate(tool_calls):
        call_id = f"call_{key}_{i}"
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": str(call.get("name", "")),
                    "arguments": json.dumps(call.get("arguments", {}), separators=(",", ":")),
                },
            }
        )
        outcome = {"error": call["error"]} if call.get("error") else call.get("result")
        results.append(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": json.dumps(outcome, separators=(",", ":"), default=str),
            }
        )
    if not calls:
        return []
    return [{"role": "assistant", "content": None, "tool_calls": calls}, *results]


def _outcome_calls(outcomes: list[ToolOutcome]) -> list[dict[str, Any]]:
    return [
        {
            "name": o.name,
            "arguments": o.arguments,
            **({"error": o.error} if o.error else {"result": o.result.data if o.result else None}),
        }
        for o in outcomes
    ]


def _system_prompt(context: TurnContext) -> str:
    agent = context.agent
    return (
        f"You are {agent.name}, a customer service agent. {agent.description}".strip()
        + " Answer the customer's latest message. Messages marked as from a human agent were"
        " written by a colleague: treat them as context, do not repeat them."
    )


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        self._model = model
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def close(self) -> None:
        await self._client.close()

    async def match_guidelines(self, context: TurnContext) -> list[GuidelineMatch]:
        if not context.guidelines:
            return []
        listing = "\n".join(
            f"- id={g.id}: when {g.condition!r} then {g.action!r}" for g in context.guidelines
        )
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": _system_prompt(context)},
            *conversation(context),
            {
                "role": "system",
                "content": "Decide for each guideline whether its condition holds for the"
                f" customer's latest message, given the conversation.\nGuidelines:\n{listing}",
            },
        ]
        with _provider_errors():
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "guideline_matches",
                        "schema": _MATCH_SCHEMA,
                        "strict": True,
                    },
                },
            )
        content = response.choices[0].message.content or ""
        try:
            items = json.loads(content)["matches"]
            by_id = {g.id: g for g in context.guidelines}
            return [
                GuidelineMatch(by_id[item["guideline_id"]], 1.0, str(item.get("rationale", "")))
                for item in items
                if item.get("applies") and item.get("guideline_id") in by_id
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise ProviderError(f"malformed guideline matching output: {error}") from None

    async def plan_tool_calls(
        self, context: TurnContext, matches: list[GuidelineMatch], tools: list[Tool]
    ) -> list[ToolCallPlan]:
        if not tools:
            return []
        actions = "\n".join(f"- {m.guideline.action}" for m in matches)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": _system_prompt(context)},
            *conversation(context),
            {
                "role": "system",
                "content": f"Guidelines that apply now:\n{actions}\n"
                "Call the tools these guidelines need, if any.",
            },
        ]
        functions: list[ChatCompletionFunctionToolParam] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in tools
        ]
        with _provider_errors():
            response = await self._client.chat.completions.create(
                model=self._model, messages=messages, tools=functions, tool_choice="auto"
            )
        plans = []
        for call in response.choices[0].message.tool_calls or []:
            if not isinstance(call, ChatCompletionMessageFunctionToolCall):
                # Only function tools are offered; anything else is not an answer to this.
                raise ProviderError(f"unexpected {call.type!r} tool call")
            try:
                arguments = json.loads(call.function.arguments or "{}")
                if not isinstance(arguments, dict):
                    raise ValueError("arguments are not a JSON object")
            except ValueError as error:
                raise ProviderError(
                    f"malformed arguments for tool {call.function.name!r}: {error}"
                ) from None
            plans.append(ToolCallPlan(call.function.name, arguments))
        return plans

    async def write_reply(
        self,
        context: TurnContext,
        matches: list[GuidelineMatch],
        outcomes: list[ToolOutcome],
        on_delta: Callable[[str], None],
    ) -> str:
        notes = []
        if matches:
            notes.append(
                "Follow these guidelines:\n" + "\n".join(f"- {m.guideline.action}" for m in matches)
            )
        if context.canned_responses:
            notes.append(
                "If one of these approved responses fits, answer with it verbatim:\n"
                + "\n".join(f"- {c.text}" for c in context.canned_responses)
            )
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": _system_prompt(context)},
            *conversation(context),
            # This turn's tool calls, in the tool role like those of earlier turns.
            *_tool_messages("turn", _outcome_calls(outcomes)),
        ]
        if notes:
            messages.append({"role": "system", "content": "\n\n".join(notes)})
        with _provider_errors():
            stream = await self._client.chat.completions.create(
                model=self._model, messages=messages, stream=True
            )
        pieces: list[str] = []
        try:
            async for chunk in stream:
                if not chunk.choices:
                    continue
                text = chunk.choices[0].delta.content
                if text:
                    pieces.append(text)
                    on_delta(text)
        except openai.APIError as error:
            raise ProviderError(f"reply stream failed: {error}") from None
        reply = "".join(pieces).strip()
        if not reply:
            raise ProviderError("the model returned an empty reply")
        return reply

    async def summarize_handoff(self, history: list[Event], reason: str) -> str:
        """A short brief for the human who takes the conversation over."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": HANDOFF_SUMMARY_PROMPT},
            *history_messages(history),
            # The reason comes from a tool argument or an API caller: data, not instructions.
            {"role": "user", "content": f"(Handoff reason, as given: {reason})"},
        ]
        with _provider_errors():
            response = await self._client.chat.completions.create(
                model=self._model, messages=messages
            )
        if not response.choices:
            raise ProviderError("the language model returned no summary")
        return str(response.choices[0].message.content or "")


@contextlib.contextmanager
def _provider_errors() -> Iterator[None]:
    """Around a chat-completions call: every way it fails becomes a ProviderError."""
    try:
        yield
    except openai.APITimeoutError:
        raise ProviderError("the language model did not answer in time") from None
    except openai.APIStatusError as error:
        raise ProviderError(
            f"the language model answered HTTP {error.status_code}: {error.message}"
        ) from None
    except openai.APIError as error:
        raise ProviderError(f"the language model call failed: {error}") from None
    except ValueError as error:  # a body that is not the JSON the client expects
        raise ProviderError(f"the language model's answer could not be parsed: {error}") from None
