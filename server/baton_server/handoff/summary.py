"""Context for the operator who takes a handoff."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from baton_server.domain import Event, EventFilter, EventKind, EventSource
from baton_server.store import Repository

log = logging.getLogger(__name__)

# Customer messages quoted by the offline summary, and events an NLP summary reads.
OFFLINE_MESSAGES = 3
HISTORY_EVENTS = 100
# Summaries travel with every inbox change: quotes and provider text are cut to these lengths.
MAX_QUOTE_CHARS = 300
MAX_SUMMARY_CHARS = 2000


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@runtime_checkable
class SummaryWriter(Protocol):
    """A provider able to summarise a conversation (the openai provider is one)."""

    async def summarize_handoff(self, history: list[Event], reason: str) -> str: ...


def offline_summary(history: list[Event], reason: str, matched_guideline: str) -> str:
    """The last customer messages and the guideline the AI agent matched, verbatim."""
    said = [
        str(e.data.get("text", ""))
        for e in history
        if e.kind is EventKind.MESSAGE and e.source is EventSource.CUSTOMER
    ][-OFFLINE_MESSAGES:]
    lines = [f"Reason: {reason}"]
    if matched_guideline:
        lines.append(f"Matched guideline: {matched_guideline}")
    if said:
        lines.append("Last customer messages:")
        lines += [f"- {clip(text, MAX_QUOTE_CHARS)}" for text in said]
    else:
        lines.append("The customer has not written yet.")
    return "\n".join(lines)


class Summarizer:
    def __init__(
        self, repository: Repository, writer: SummaryWriter | None, timeout_s: float = 15.0
    ) -> None:
        self._repository = repository
        self._writer = writer
        self._timeout_s = timeout_s

    async def summarize(self, session_id: str, reason: str, matched_guideline: str = "") -> str:
        head = await self._repository.next_offset(session_id)
        history = await self._repository.read_events(
            session_id, max(0, head - HISTORY_EVENTS), head, EventFilter(), HISTORY_EVENTS
        )
        fallback = offline_summary(history, reason, matched_guideline)
        if self._writer is None:
            return fallback
        try:
            async with asyncio.timeout(self._timeout_s):
                written = await self._writer.summarize_handoff(history, reason)
        except Exception as error:  # the handoff must not fail because a summary did
            log.warning("handoff summary by the provider failed (%s); using the offline one", error)
            return fallback
        return clip(written.strip(), MAX_SUMMARY_CHARS) or fallback
