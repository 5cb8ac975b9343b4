"""Helpers for HandoffService (with `watch_handoffs`, the operator inbox), GuidelineService,
ToolService and AuthService."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client._credentials import Credentials
from baton_client._follow import CaughtUpCallback, Outage, RetryCallback, call_back
from baton_client._resources import _UNSET, Deadline, EnumArg, _Helper, enum_value
from baton_client._retry import RetryPolicy
from baton_client.errors import as_baton_error

__all__ = ["Auth", "Guidelines", "HandoffWatcher", "Handoffs", "Tools"]

log = logging.getLogger("baton_client")


def _state(value: EnumArg) -> pb.HandoffState.ValueType:
    return pb.HandoffState.ValueType(enum_value(pb.HandoffState, "HANDOFF_STATE_", value))


def _outcome(value: EnumArg) -> pb.HandoffOutcome.ValueType:
    return pb.HandoffOutcome.ValueType(enum_value(pb.HandoffOutcome, "HANDOFF_OUTCOME_", value))


def _requester(value: EnumArg) -> pb.HandoffRequester.ValueType:
    return pb.HandoffRequester.ValueType(
        enum_value(pb.HandoffRequester, "HANDOFF_REQUESTER_", value)
    )


def _participant(operator: pb.Participant | str) -> pb.Participant:
    return pb.Participant(id=operator) if isinstance(operator, str) else operator


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


class Handoffs(_Helper):
    """HandoffService: `client.handoffs`. Operators are a `Participant` or an operator id.
    Every mutating call takes `expected_epoch=` (ABORTED when the session's control epoch
    moved on)."""

    def __init__(self, stub: svc.HandoffServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def request(
        self,
        session_id: str,
        reason: str,
        *,
        requested_by: EnumArg = pb.HANDOFF_REQUESTER_UNSPECIFIED,
        expected_epoch: int | None = None,
        deadline: Deadline = _UNSET,
    ) -> rr.RequestHandoffResponse:
        """Opens a handoff (the session switches to MANUAL); the response also says whether an
        operator is available."""
        request = rr.RequestHandoffRequest(
            session_id=session_id,
            reason=reason,
            requested_by=_requester(requested_by),
            expected_epoch=expected_epoch,
        )
        return await self._stub.RequestHandoff(request, timeout=self._t(deadline))

    async def get(self, handoff_id: str, *, deadline: Deadline = _UNSET) -> pb.Handoff:
        request = rr.GetHandoffRequest(handoff_id=handoff_id)
        return (await self._stub.GetHandoff(request, timeout=self._t(deadline))).handoff

    async def list(
        self,
        *,
        session_id: str = "",
        agent_id: str = "",
        state: EnumArg = pb.HANDOFF_STATE_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
        deadline: Deadline = _UNSET,
    ) -> rr.ListHandoffsResponse:
        """One page, oldest request first; `next_page_token` is empty on the last one."""
        request = rr.ListHandoffsRequest(
            session_id=session_id,
            agent_id=agent_id,
            state=_state(state),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._stub.ListHandoffs(request, timeout=self._t(deadline))

    async def iterate(
        self,
        *,
        session_id: str = "",
        agent_id: str = "",
        state: EnumArg = pb.HANDOFF_STATE_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[pb.Handoff]:
        """Every matching handoff, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list(
                session_id=session_id,
                agent_id=agent_id,
                state=state,
                page_size=page_size,
                page_token=token,
            )
            for handoff in page.handoffs:
                yield handoff
            token = page.next_page_token
            if not token:
                return

    async def claim(
        self,
        handoff_id: str,
        operator: pb.Participant | str,
        *,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Handoff:
        """Takes a PENDING handoff; FailedPrecondition when another operator won the race."""
        request = rr.ClaimHandoffRequest(
            handoff_id=handoff_id,
            operator=_participant(operator),
            on_behalf_of_ai=on_behalf_of_ai,
            expected_epoch=expected_epoch,
        )
        return (await self._stub.ClaimHandoff(request, timeout=self._t(deadline))).handoff

    async def offer(
        self,
        handoff_id: str,
        operator: pb.Participant | str,
        *,
        expected_epoch: int | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Handoff:
        request = rr.OfferHandoffRequest(
            handoff_id=handoff_id, operator=_participant(operator), expected_epoch=expected_epoch
        )
        return (await self._stub.OfferHandoff(request, timeout=self._t(deadline))).handoff

    async def respond_to_offer(
        self,
        handoff_id: str,
        operator: pb.Participant | str,
        *,
        accept: bool,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Handoff:
        request = rr.RespondToOfferRequest(
            handoff_id=handoff_id,
            operator=_participant(operator),
            accept=accept,
            on_behalf_of_ai=on_behalf_of_ai,
            expected_epoch=expected_epoch,
        )
        return (await self._stub.RespondToOffer(request, timeout=self._t(deadline))).handoff

    async def release(
        self,
        handoff_id: str,
        outcome: EnumArg,
        *,
        operator_id: str = "",
        note: str = "",
        expected_epoch: int | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Handoff:
        """Ends a handoff: "RESOLVED_BY_HUMAN", "RETURNED_TO_AI" (AUTO again) or "ABANDONED"."""
        request = rr.ReleaseHandoffRequest(
            handoff_id=handoff_id,
            operator_id=operator_id,
            outcome=_outcome(outcome),
            note=note,
            expected_epoch=expected_epoch,
        )
        return (await self._stub.ReleaseHandoff(request, timeout=self._t(deadline))).handoff

    async def transfer(
        self,
        handoff_id: str,
        from_operator_id: str,
        to_operator: pb.Participant | str,
        *,
        on_behalf_of_ai: bool = False,
        expected_epoch: int | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Handoff:
        request = rr.TransferHandoffRequest(
            handoff_id=handoff_id,
            from_operator_id=from_operator_id,
            to_operator=_participant(to_operator),
            on_behalf_of_ai=on_behalf_of_ai,
            expected_epoch=expected_epoch,
        )
        return (await self._stub.TransferHandoff(request, timeout=self._t(deadline))).handoff

    async def stats(
        self,
        *,
        agent_id: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.HandoffStats:
        """Handoff analytics over [start_time, end_time) (all time / until now when None)."""
        request = rr.GetHandoffStatsRequest(agent_id=agent_id)
        if start_time is not None:
            request.start_time.CopyFrom(_timestamp(start_time))
        if end_time is not None:
            request.end_time.CopyFrom(_timestamp(end_time))
        return (await self._stub.GetHandoffStats(request, timeout=self._t(deadline))).stats


class Guidelines(_Helper):
    """GuidelineService: `client.guidelines`."""

    def __init__(self, stub: svc.GuidelineServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def create(
        self,
        agent_id: str,
        *,
        condition: str,
        action: str,
        tool_names: Sequence[str] = (),
        enabled: bool = True,
        deadline: Deadline = _UNSET,
    ) -> pb.Guideline:
        """A guideline of an agent: when `condition` holds, do `action` (maybe calling the
        named tools)."""
        guideline = pb.Guideline(
            agent_id=agent_id,
            condition=condition,
            action=action,
            tool_names=tool_names,
            enabled=enabled,
        )
        request = rr.CreateGuidelineRequest(guideline=guideline)
        return (await self._stub.CreateGuideline(request, timeout=self._t(deadline))).guideline

    async def get(self, guideline_id: str, *, deadline: Deadline = _UNSET) -> pb.Guideline:
        request = rr.GetGuidelineRequest(guideline_id=guideline_id)
        return (await self._stub.GetGuideline(request, timeout=self._t(deadline))).guideline

    async def list(
        self,
        *,
        agent_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        deadline: Deadline = _UNSET,
    ) -> rr.ListGuidelinesResponse:
        request = rr.ListGuidelinesRequest(
            agent_id=agent_id, page_size=page_size, page_token=page_token
        )
        return await self._stub.ListGuidelines(request, timeout=self._t(deadline))

    async def delete(self, guideline_id: str, *, deadline: Deadline = _UNSET) -> None:
        request = rr.DeleteGuidelineRequest(guideline_id=guideline_id)
        await self._stub.DeleteGuideline(request, timeout=self._t(deadline))


class Tools(_Helper):
    """ToolService: `client.tools`."""

    def __init__(self, stub: svc.ToolServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def list(self, *, deadline: Deadline = _UNSET) -> list[pb.Tool]:
        """The tools the server has loaded."""
        response = await self._stub.ListTools(rr.ListToolsRequest(), timeout=self._t(deadline))
        return list(response.tools)


class Auth(_Helper):
    """AuthService: `client.auth`."""

    def __init__(self, stub: svc.AuthServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def issue_customer_token(
        self,
        customer_id: str,
        *,
        ttl: timedelta | float | None = None,
        deadline: Deadline = _UNSET,
    ) -> rr.IssueCustomerTokenResponse:
        """A short-lived token for one customer (15 minutes unless `ttl`, seconds or a
        timedelta); `.token` and `.expire_time`. A token provider may return this response."""
        request = rr.IssueCustomerTokenRequest(customer_id=customer_id)
        if ttl is not None:
            duration = duration_pb2.Duration()
            duration.FromTimedelta(ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl))
            request.ttl.CopyFrom(duration)
        return await self._stub.IssueCustomerToken(request, timeout=self._t(deadline))


class HandoffWatcher:
    """Async iterator over the operator inbox's `HandoffChange`s; see
    `BatonClient.watch_handoffs`. `position` is the resume point: every change up to it was
    delivered (None until the first snapshot is complete when started without one)."""

    def __init__(
        self,
        stub: svc.HandoffServiceAsyncStub,
        *,
        agent_id: str,
        after_position: int | None,
        operator: pb.Participant | None,
        retry: RetryPolicy,
        on_caught_up: CaughtUpCallback | None,
        on_retry: RetryCallback | None,
        credentials: Credentials | None,
    ) -> None:
        self.agent_id = agent_id
        #: Resume point (`after_position` of the next stream).
        self.position = after_position
        self.caught_up = False
        self.connections = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        self._stub = stub
        self._operator = operator
        self._retry = retry
        self._on_caught_up = on_caught_up
        self._on_retry = on_retry
        self._credentials = credentials
        self._changes = self._run()

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def __aiter__(self) -> HandoffWatcher:
        return self

    async def __anext__(self) -> pb.HandoffChange:
        return await self._changes.__anext__()

    async def aclose(self) -> None:
        await self._changes.aclose()

    async def __aenter__(self) -> HandoffWatcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _request(self) -> rr.WatchHandoffsRequest:
        request = rr.WatchHandoffsRequest(agent_id=self.agent_id, after_position=self.position)
        if self._operator is not None:
            request.operator.CopyFrom(self._operator)
        return request

    async def _run(self) -> AsyncGenerator[pb.HandoffChange, None]:
        policy = self._retry
        outage = Outage(policy, "watching handoffs")
        refreshed = False
        while True:
            call = self._stub.WatchHandoffs(self._request())
            error: BaseException | None = None
            healthy = False
            # The snapshot's OPEN entries (possibly split over several responses) are held
            # back until its `caught_up`: a stream cut before then delivered none of them,
            # and the next stream starts a fresh snapshot (at a position of its own).
            snapshot: list[pb.HandoffChange] = []
            try:
                async for response in call:
                    if not healthy:
                        healthy = True
                        self.connections += 1
                        self.failures = 0
                        outage.ended()
                        refreshed = False
                    for change in response.changes:
                        if change.type == pb.HANDOFF_CHANGE_TYPE_OPEN:
                            snapshot.append(change)
                            continue
                        if self.position is not None and change.position <= self.position:
                            continue  # delivered before a reconnect
                        self.position = change.position
                        yield change
                    if response.caught_up:
                        held, snapshot = snapshot, []
                        for change in held:
                            yield change
                        self._advance(response.caught_up_position)
                        if not self.caught_up:
                            self.caught_up = True
                            await call_back(self._on_caught_up)
                    if response.HasField("heartbeat") and self.caught_up:
                        self._advance(response.heartbeat.position)
            except grpc.aio.AioRpcError as raw:
                exc = as_baton_error(raw)
                if (
                    exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    and not refreshed
                    and self._credentials is not None
                    and self._credentials.invalidate()
                ):
                    refreshed = True
                    continue
                if exc.code() not in policy.retry_codes:
                    raise exc from None
                error = exc
            finally:
                call.cancel()

            self.last_error = error
            self.failures += 1
            await outage.wait(
                self.failures, error, f"after position {self.position}", self._on_retry
            )

    def _advance(self, position: int) -> None:
        if self.position is None or position > self.position:
            self.position = position
