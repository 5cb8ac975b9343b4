"""EventService servicer: CreateEvent and the server-streaming ListEvents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, assert_never

from baton_server.api.grpc_types import Context
from baton_server.api.mapping import (
    KIND_FROM_PROTO,
    SOURCE_FROM_PROTO,
    draft_from_request,
    event_to_proto,
    require_id,
    timestamp,
)
from baton_server.api.protos import pb, rr
from baton_server.auth.principal import current_principal
from baton_server.config import InputLimits
from baton_server.domain import EVERYTHING, Event, EventFilter, now_us
from baton_server.errors import InvalidArgument
from baton_server.service.event_stream import (
    CaughtUp,
    Delta,
    EncodedBatch,
    EventsBatch,
    FellBehind,
    Heartbeat,
    StreamItem,
)
from baton_server.service.events import Conversation
from baton_server.store import EventEncoding

# ListEventsResponse.events and CreateEventResponse.event are both field 1, length-delimited:
# a response holding only events is each stored Event's bytes behind this tag and its length.
_EVENT_FIELD_TAG = b"\x0a"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_event(event: Event) -> bytes:
    """An event as stored: a serialized baton.v1.Event framed as field 1 (tag and length), so
    the bytes of N events side by side are a serialized ListEventsResponse carrying them, and
    one event's bytes are a serialized CreateEventResponse."""
    encoded = event_to_proto(event).SerializeToString()
    return _EVENT_FIELD_TAG + _varint(len(encoded)) + encoded


# What the store keeps with each event (encode_event). Bump the version when the Event message,
# its mapping or the framing changes what an event encodes to: rows stored with another version
# are then encoded anew on read (store/migrations 0010).
EVENT_ENCODING = EventEncoding(version=1, encode=encode_event)


def encoded_response(encoded: list[bytes]) -> bytes:
    """A serialized ListEventsResponse carrying these stored events: their concatenation."""
    return b"".join(encoded)


def serialize_response(response: Any) -> bytes:
    """Serializer for responses that may be pre-built bytes: passes those through."""
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
    if not kinds and not sources:
        return EVERYTHING  # shared: idle streams are many
    return EventFilter(frozenset(kinds), frozenset(sources))


class EventServicer:
    """baton.v1.EventService. Not a subclass of the generated servicer: both methods may answer
    with pre-built bytes (events as stored), which its types do not allow; `add_event_service`
    registers it with serializers that pass those bytes through."""

    def __init__(
        self,
        conversation: Conversation,
        limits: InputLimits,
    ) -> None:
        self._conversation = conversation
        self._limits = limits

    async def CreateEvent(
        self, request: rr.CreateEventRequest, context: Context
    ) -> rr.CreateEventResponse | bytes:
        """Pre-built bytes when the caller sees the event as stored (see add_event_service)."""
        session_id = require_id(request.session_id, "session_id")
        draft = draft_from_request(request, self._limits)
        stored, shown = await self._conversation.append(current_principal(), session_id, draft)
        if shown is None:  # fail closed: where it landed, nothing of what it holds
            return rr.CreateEventResponse(
                event=pb.Event(id=stored.id, session_id=stored.session_id, offset=stored.offset)
            )
        if shown is stored and stored.encoded is not None:
            return stored.encoded
        return rr.CreateEventResponse(event=event_to_proto(shown))

    def ListEvents(self, request: rr.ListEventsRequest, context: Context) -> AsyncIterator[Any]:
        session_id = require_id(request.session_id, "session_id")
        if request.min_offset < 0:
            raise InvalidArgument.single("min_offset", "must not be negative")
        event_filter = filter_from_request(request)
        return self._conversation.stream(
            current_principal(),
            session_id,
            request.min_offset,
            event_filter,
            request.follow,
            _response,
        )


def _response(item: StreamItem) -> Any:
    if isinstance(item, EncodedBatch):
        return encoded_response(item.encoded)
    if isinstance(item, EventsBatch):
        return rr.ListEventsResponse(events=[event_to_proto(e) for e in item.events])
    # Markers leave as bytes: grpc holds the last message sent while a stream idles, and a
    # message object brings its own arena.
    if isinstance(item, CaughtUp):
        return rr.ListEventsResponse(caught_up=True, next_offset=item.position).SerializeToString()
    if isinstance(item, FellBehind):
        return rr.ListEventsResponse(
            fell_behind=True, next_offset=item.position
        ).SerializeToString()
    if isinstance(item, Delta):
        delta = item.delta
        return rr.ListEventsResponse(
            delta=pb.MessageDelta(
                correlation_id=delta.correlation_id, text=delta.text, index=delta.index
            )
        )
    if isinstance(item, Heartbeat):
        return rr.ListEventsResponse(
            heartbeat=rr.ListEventsHeartbeat(next_offset=item.position, time=timestamp(now_us()))
        ).SerializeToString()
    assert_never(item)
