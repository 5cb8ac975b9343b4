"""HandoffService servicer: validate, map, call the handoff controls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from baton_server.api.grpc_types import Context
from baton_server.api.handoff_mapping import (
    STATE_FROM_PROTO,
    change_to_proto,
    handoff_to_proto,
    operator_from_proto,
    outcome_from_proto,
    stats_to_proto,
)
from baton_server.api.mapping import optional_id, require_id, timestamp, timestamp_us
from baton_server.api.protos import pb, rr, svc_grpc
from baton_server.auth.principal import current_actor
from baton_server.domain import HandoffRequester, Operator, now_us
from baton_server.errors import InvalidArgument
from baton_server.handoff.controls import HandoffControls
from baton_server.handoff.inbox import HandoffInbox
from baton_server.handoff.stats import compute_stats
from baton_server.store.handoffs import HandoffReader

REQUESTERS = {
    pb.HANDOFF_REQUESTER_UNSPECIFIED: HandoffRequester.EXTERNAL_SYSTEM,
    pb.HANDOFF_REQUESTER_EXTERNAL_SYSTEM: HandoffRequester.EXTERNAL_SYSTEM,
    pb.HANDOFF_REQUESTER_CUSTOMER: HandoffRequester.CUSTOMER,
}
MAX_REASON_LENGTH = 1000
MAX_NOTE_LENGTH = 10_000


# Inbox responses stay well under the default 4 MiB message limit, whatever the backlog.
MAX_RESPONSE_BYTES = 1024 * 1024


def batches(changes: list[Any]) -> list[list[Any]]:
    """Splits changes into responses of at most MAX_RESPONSE_BYTES (one change at least)."""
    out: list[list[Any]] = [[]]
    size = 0
    for change in changes:
        bytes_ = change.ByteSize()
        if out[-1] and size + bytes_ > MAX_RESPONSE_BYTES:
            out.append([])
            size = 0
        out[-1].append(change)
        size += bytes_
    return out


def _epoch(request: Any) -> int | None:
    """The epoch a control request expects the session at, if it names one (any of the
    control requests: they share the optional `expected_epoch` field, not a type)."""
    return int(request.expected_epoch) if request.HasField("expected_epoch") else None


def _limited(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument.single(field, f"longer than {limit} characters")
    return value


class HandoffServicer(svc_grpc.HandoffServiceServicer):
    def __init__(
        self, controls: HandoffControls, reader: HandoffReader, inbox: HandoffInbox
    ) -> None:
        self.controls = self._controls = controls
        self._reader = reader
        self._inbox = inbox

    async def RequestHandoff(
        self, request: rr.RequestHandoffRequest, context: Context
    ) -> rr.RequestHandoffResponse:
        session_id = require_id(request.session_id, "session_id")
        if not request.reason.strip():
            raise InvalidArgument.single("reason", "required; say why in a few words")
        reason = _limited(request.reason, "reason", MAX_REASON_LENGTH)
        requested_by = REQUESTERS.get(request.requested_by)
        if requested_by is None:
            raise InvalidArgument.single(
                "requested_by", "EXTERNAL_SYSTEM or CUSTOMER (the others are set by the server)"
            )
        opening = await self._controls.prepare(session_id, reason, requested_by)
        handoff = await self._controls.request(opening, _epoch(request), actor=current_actor())
        return rr.RequestHandoffResponse(
            handoff=handoff_to_proto(handoff),
            operators_available=opening.availability.available,
            unavailable_reason=opening.availability.reason,
        )

    async def GetHandoff(
        self, request: rr.GetHandoffRequest, context: Context
    ) -> rr.GetHandoffResponse:
        handoff = await self._controls.get(require_id(request.handoff_id, "handoff_id"))
        return rr.GetHandoffResponse(handoff=handoff_to_proto(handoff))

    async def ListHandoffs(
        self, request: rr.ListHandoffsRequest, context: Context
    ) -> rr.ListHandoffsResponse:
        state = None
        if request.state:
            state = STATE_FROM_PROTO.get(request.state)
            if state is None:
                raise InvalidArgument.single("state", f"unknown handoff state {request.state}")
        page = await self._reader.list(
            request.page_size,
            request.page_token,
            session_id=request.session_id,
            agent_id=request.agent_id,
            state=state,
        )
        return rr.ListHandoffsResponse(
            handoffs=[handoff_to_proto(h) for h in page.items],
            next_page_token=page.next_page_token,
        )

    async def ClaimHandoff(
        self, request: rr.ClaimHandoffRequest, context: Context
    ) -> rr.ClaimHandoffResponse:
        handoff = await self._controls.claim(
            require_id(request.handoff_id, "handoff_id"),
            operator_from_proto(request.operator, "operator"),
            request.on_behalf_of_ai,
            _epoch(request),
            actor=current_actor(),
        )
        return rr.ClaimHandoffResponse(handoff=handoff_to_proto(handoff))

    async def OfferHandoff(
        self, request: rr.OfferHandoffRequest, context: Context
    ) -> rr.OfferHandoffResponse:
        handoff = await self._controls.offer(
            require_id(request.handoff_id, "handoff_id"),
            operator_from_proto(request.operator, "operator"),
            _epoch(request),
            actor=current_actor(),
        )
        return rr.OfferHandoffResponse(handoff=handoff_to_proto(handoff))

    async def RespondToOffer(
        self, request: rr.RespondToOfferRequest, context: Context
    ) -> rr.RespondToOfferResponse:
        handoff = await self._controls.respond_to_offer(
            require_id(request.handoff_id, "handoff_id"),
            operator_from_proto(request.operator, "operator"),
            request.accept,
            request.on_behalf_of_ai,
            _epoch(request),
            actor=current_actor(),
        )
        return rr.RespondToOfferResponse(handoff=handoff_to_proto(handoff))

    async def ReleaseHandoff(
        self, request: rr.ReleaseHandoffRequest, context: Context
    ) -> rr.ReleaseHandoffResponse:
        handoff = await self._controls.release(
            require_id(request.handoff_id, "handoff_id"),
            request.operator_id,
            outcome_from_proto(request.outcome),
            _limited(request.note, "note", MAX_NOTE_LENGTH),
            _epoch(request),
            actor=current_actor(),
        )
        return rr.ReleaseHandoffResponse(handoff=handoff_to_proto(handoff))

    async def TransferHandoff(
        self, request: rr.TransferHandoffRequest, context: Context
    ) -> rr.TransferHandoffResponse:
        handoff = await self._controls.transfer(
            require_id(request.handoff_id, "handoff_id"),
            require_id(request.from_operator_id, "from_operator_id"),
            operator_from_proto(request.to_operator, "to_operator"),
            request.on_behalf_of_ai,
            _epoch(request),
            actor=current_actor(),
        )
        return rr.TransferHandoffResponse(handoff=handoff_to_proto(handoff))

    async def WatchHandoffs(
        self, request: rr.WatchHandoffsRequest, context: Context
    ) -> AsyncIterator[rr.WatchHandoffsResponse]:
        after = request.after_position if request.HasField("after_position") else None
        if after is not None and after < 0:
            raise InvalidArgument.single("after_position", "must not be negative")
        operator: Operator | None = None
        if request.HasField("operator"):
            operator = operator_from_proto(request.operator, "operator")
        agent_id = optional_id(request.agent_id, "agent_id")
        async for item in self._inbox.watch(agent_id, after, operator):
            if item.changes:
                for batch in batches([change_to_proto(c) for c in item.changes]):
                    yield rr.WatchHandoffsResponse(changes=batch)
            elif item.caught_up_position is not None:
                yield rr.WatchHandoffsResponse(
                    caught_up=True, caught_up_position=item.caught_up_position
                )
            elif item.heartbeat_position is not None:
                yield rr.WatchHandoffsResponse(
                    heartbeat=rr.WatchHandoffsHeartbeat(
                        position=item.heartbeat_position, time=timestamp(now_us())
                    )
                )

    async def GetHandoffStats(
        self, request: rr.GetHandoffStatsRequest, context: Context
    ) -> rr.GetHandoffStatsResponse:
        start = (
            timestamp_us(request.start_time, "start_time") if request.HasField("start_time") else 0
        )
        end = (
            timestamp_us(request.end_time, "end_time")
            if request.HasField("end_time")
            else self._controls.clock() + 1
        )
        if end <= start:
            raise InvalidArgument.single("end_time", "must be after start_time")
        inputs = await self._reader.stats_inputs(request.agent_id, start, end)
        return rr.GetHandoffStatsResponse(stats=stats_to_proto(compute_stats(*inputs)))
