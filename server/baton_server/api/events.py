"""EventService servicer: CreateEvent and the server-streaming ListEvents."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from baton_server.api.grpc_types import Context
from baton_server.api.mapping import (
    KIND_FROM_PROTO,
    SOURCE_FROM_PROTO,
    draft_from_request,
    event_to_proto,
    require_id,
    timestamp,
)
from baton_server.api.protos import pb, rr, svc_grpc
from baton_server.auth.principal import current_principal
from baton_server.config import InputLimits
from baton_server.domain import Event, EventFilter, now_us
from baton_server.errors import InvalidArgument
from baton_server.service.event_stream import (
    CaughtUp,
    Delta,
    EncodedBatch,
    EventsBatch,
    FellBehind,
    Heartbeat,
)
from baton_server.service.events import Conversation

LIVE_PROTO_CACHE = 4096
# ListEventsResponse.events is field 1, length-delimited: a response holding only events is
# each stored Event's bytes behind this tag and its length.
_EVENTS_TAG = b"\x0a"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_event(event: Event) -> bytes:
    """What the store keeps with each event (Repository `encode_event`)."""
    return event_to_proto(event).SerializeToString()


def encoded_response(encoded: list[bytes]) -> bytes:
    """A serialized ListEventsResponse carrying these encoded events, built by concatenation."""
    return b"".join(_EVENTS_TAG + _varint(len(wire)) + wire for wire in encoded)


def serialize_response(response: Any) -> bytes:
    """ListEvents' serializer: passes pre-built bytes through, serializes messages."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def filter_from_request(request: rr.ListEventsRequest) -> EventFilter:
    kinds = []
    for i, value in enumerate(request.kinds):
        if value not in KIND_FROM_PROTO:
            raise InvalidArgument.single(
                f"kinds[{i}]", f"unknown or unspecified event kind {value}"
            )
        kinds.append(KIND_FROM_PROTO[value])
    sources = []
    for i, source in enumerate(request.sources):
        if source not in SOURCE_FROM_PROTO:
            raise InvalidArgument.single(
                f"sources[{i}]", f"unknown or unspecified event source {source}"
            )
        sources.append(SOURCE_FROM_PROTO[source])
    return EventFilter(frozenset(kinds), frozenset(sources))


class EventServicer(svc_grpc.EventServiceServicer):
    def __init__(
        self,
        conversation: Conversation,
        limits: InputLimits,
    ) -> None:
        self._conversation = conversation
        self._limits = limits
        # Live events go to every follower of a session: build each one's proto once.
        self._live_protos: OrderedDict[str, Any] = OrderedDict()

    def _live_proto(self, event: Event) -> Any:
        proto = self._live_protos.get(event.id)
        if proto is None:
            proto = self._live_protos[event.id] = event_to_proto(event)
            if len(self._live_protos) > LIVE_PROTO_CACHE:
                self._live_protos.popitem(last=False)
        return proto

    async def CreateEvent(
        self, request: rr.CreateEventRequest, context: Context
    ) -> rr.CreateEventResponse:
        session_id = require_id(request.session_id, "session_id")
        draft = draft_from_request(request, self._limits)
        stored, shown = await self._conversation.append(current_principal(), session_id, draft)
        if shown is None:  # fail closed: where it landed, nothing of what it holds
            return rr.CreateEventResponse(
                event=pb.Event(id=stored.id, session_id=stored.session_id, offset=stored.offset)
            )
        return rr.CreateEventResponse(event=event_to_proto(shown))

    async def ListEvents(
        self, request: rr.ListEventsRequest, context: Context
    ) -> AsyncIterator[Any]:
        session_id = require_id(request.session_id, "session_id")
        if request.min_offset < 0:
            raise InvalidArgument.single("min_offset", "must not be negative")
        event_filter = filter_from_request(request)
        async for item in self._conversation.stream(
            current_principal(), session_id, request.min_offset, event_filter, request.follow
        ):
            if isinstance(item, EncodedBatch):
                yield encoded_response(item.encoded)
            elif isinstance(item, EventsBatch):
                encode = self._live_proto if item.live else event_to_proto
                yield rr.ListEventsResponse(events=[encode(e) for e in item.events])
            elif isinstance(item, CaughtUp):
                yield rr.ListEventsResponse(caught_up=True, next_offset=item.position)
            elif isinstance(item, FellBehind):
                yield rr.ListEventsResponse(fell_behind=True, next_offset=item.position)
            elif isinstance(item, Delta):
                yield rr.ListEventsResponse(
                    delta=pb.MessageDelta(
                        correlation_id=item.delta.correlation_id,
                        text=item.delta.text,
                        index=item.delta.index,
                    )
                )
            elif isinstance(item, Heartbeat):
                yield rr.ListEventsResponse(
                    heartbeat=rr.ListEventsHeartbeat(
                        next_offset=item.position, time=timestamp(now_us())
                    )
                )
