"""Appending to a session's log, as the caller may: a human agent's message goes through the
handoff rules (injected: it may take the session over, and only the holder writes on a claimed
handoff); anything else is appended as is. A customer gets back the customer view of what they
wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from baton_server.auth.principal import Principal, Role
from baton_server.domain import (
    Actor,
    Event,
    EventDraft,
    EventFilter,
    EventKind,
    EventSource,
    HandoffChangeType,
    InboxNotice,
)
from baton_server.service.event_stream import EventsBatch, EventStreamer, StreamItem
from baton_server.service.visibility import customer_view
from baton_server.store import Repository

# (session id, draft, who acts) -> the appended message, under the handoff rules.
HumanMessageHandler = Callable[[str, EventDraft, Actor | None], Awaitable[Event]]

Out = TypeVar("Out")

HUMAN_SOURCES = (EventSource.HUMAN_AGENT, EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT)


# Operators watch the customers of handed-off (MANUAL) sessions on the inbox stream.
CUSTOMER_WROTE = InboxNotice(HandoffChangeType.CUSTOMER_MESSAGE)


def is_customer_message(draft: EventDraft) -> bool:
    return draft.kind is EventKind.MESSAGE and draft.source is EventSource.CUSTOMER


def is_human_message(draft: EventDraft) -> bool:
    return draft.kind is EventKind.MESSAGE and draft.source in HUMAN_SOURCES


class Conversation:
    def __init__(
        self,
        repository: Repository,
        human_message: HumanMessageHandler,
        streamer: EventStreamer,
    ) -> None:
        self._repo = repository
        self._human_message = human_message
        self._streamer = streamer

    async def append(
        self, caller: Principal | None, session_id: str, draft: EventDraft
    ) -> tuple[Event, Event | None]:
        """The stored event, and what the caller may see of it (None: nothing but where it
        landed; never the case for what customers may post, messages)."""
        actor = caller.actor() if caller is not None else None
        if is_human_message(draft):
            event = await self._human_message(session_id, draft, actor)
        else:
            inbox = CUSTOMER_WROTE if is_customer_message(draft) else None
            event = await self._repo.append_event(session_id, draft, actor, inbox=inbox)
        if caller is not None and caller.role is Role.CUSTOMER:
            return event, customer_view(event)
        return event, event

    def stream(
        self,
        caller: Principal | None,
        session_id: str,
        min_offset: int,
        event_filter: EventFilter,
        follow: bool,
        render: Callable[[StreamItem], Out],
    ) -> AsyncIterator[Out]:
        """The session's log from `min_offset` (see EventStreamer), as the caller may see it,
        each item as `render` makes it: customers get the customer view, decoded per event and
        never from shared caches. Staff get the streamer's own iterator: no wrapping
        generator, whose frame every idle stream would hold."""
        if caller is None or caller.role is not Role.CUSTOMER:
            return self._streamer.rendered(session_id, min_offset, event_filter, follow, render)
        return self._customer_stream(session_id, min_offset, event_filter, follow, render)

    async def _customer_stream(
        self,
        session_id: str,
        min_offset: int,
        event_filter: EventFilter,
        follow: bool,
        render: Callable[[StreamItem], Out],
    ) -> AsyncIterator[Out]:
        async for item in self._streamer.stream(
            session_id, min_offset, event_filter, follow, decoded=True
        ):
            if isinstance(item, EventsBatch):
                shown = [view for e in item.events if (view := customer_view(e)) is not None]
                if shown:
                    yield render(EventsBatch(shown))
                continue
            yield render(item)
