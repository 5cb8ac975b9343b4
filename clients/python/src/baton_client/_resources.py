"""Typed helpers over the generated stubs: one small class per service.

Each method builds the request, calls the stub with the client's default deadline (override
with `deadline=`: seconds, or None for none), and returns the resource rather than the
response wrapper. Failures raise typed errors (`baton_client.errors`: `NotFound`,
`InvalidArgument`, ... all `BatonError`, itself a `grpc.aio.AioRpcError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_client.errors import as_baton_error

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

__all__ = ["Agents", "Customers", "Events", "Sessions", "enum_value"]

#: An enum value: the generated constant (`pb.SESSION_MODE_MANUAL`) or its name, with or without
#: the prefix and in any case ("MANUAL", "manual", "SESSION_MODE_MANUAL").
EnumArg = int | str


class Unset(Enum):
    """Type of `_UNSET`, the default of optional arguments: "not given" (distinct from None,
    which means no deadline)."""

    UNSET = "UNSET"


_UNSET: Literal[Unset.UNSET] = Unset.UNSET

_V = TypeVar("_V", bound=int)

#: A deadline argument: seconds, None for none, or `_UNSET` for the client's default.
Deadline = float | Unset | None

#: What a custom event's data may hold: JSON-like values (as `google.protobuf.Struct` takes them).
StructValue: TypeAlias = (
    "struct_pb2.Struct | struct_pb2.ListValue | str | float | bool"
    " | Mapping[str, StructValue] | Sequence[StructValue] | None"
)


def enum_value(enum: _EnumTypeWrapper[_V], prefix: str, value: EnumArg) -> int:
    """The number of an enum value given as a number or a (short) name."""
    if isinstance(value, str):
        name = value.strip().upper()
        if not name.startswith(prefix):
            name = prefix + name
        try:
            return int(enum.Value(name))
        except ValueError:
            names = ", ".join(n.removeprefix(prefix) for n in enum.keys())
            raise ValueError(f"unknown {enum.DESCRIPTOR.name} {value!r} (one of {names})") from None
    return int(value)


def _mode(value: EnumArg) -> pb.SessionMode.ValueType:
    return pb.SessionMode.ValueType(enum_value(pb.SessionMode, "SESSION_MODE_", value))


def _kind(value: EnumArg) -> pb.EventKind.ValueType:
    return pb.EventKind.ValueType(enum_value(pb.EventKind, "EVENT_KIND_", value))


def _source(value: EnumArg) -> pb.EventSource.ValueType:
    return pb.EventSource.ValueType(enum_value(pb.EventSource, "EVENT_SOURCE_", value))


def _status(value: EnumArg) -> pb.Status.ValueType:
    return pb.Status.ValueType(enum_value(pb.Status, "STATUS_", value))


def _mask(**fields: object) -> field_mask_pb2.FieldMask:
    paths = [name for name, value in fields.items() if value is not _UNSET]
    if not paths:
        raise ValueError("nothing to update: pass at least one field")
    return field_mask_pb2.FieldMask(paths=paths)


def _struct(data: Mapping[str, StructValue]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


class _Helper:
    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline

    def _t(self, deadline: Deadline) -> float | None:
        return self._deadline if isinstance(deadline, Unset) else deadline


class Agents(_Helper):
    """AgentService: `client.agents`."""

    def __init__(self, stub: svc.AgentServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def create(
        self, name: str, *, description: str = "", deadline: Deadline = _UNSET
    ) -> pb.Agent:
        request = rr.CreateAgentRequest(agent=pb.Agent(name=name, description=description))
        return (await self._stub.CreateAgent(request, timeout=self._t(deadline))).agent

    async def get(self, agent_id: str, *, deadline: Deadline = _UNSET) -> pb.Agent:
        request = rr.GetAgentRequest(agent_id=agent_id)
        return (await self._stub.GetAgent(request, timeout=self._t(deadline))).agent

    async def list(
        self, *, page_size: int = 0, page_token: str = "", deadline: Deadline = _UNSET
    ) -> rr.ListAgentsResponse:
        """One page; `next_page_token` is empty on the last one. See `iterate` for all."""
        request = rr.ListAgentsRequest(page_size=page_size, page_token=page_token)
        return await self._stub.ListAgents(request, timeout=self._t(deadline))

    async def iterate(self, *, page_size: int = 0) -> AsyncIterator[pb.Agent]:
        """Every agent, oldest first, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list(page_size=page_size, page_token=token)
            for agent in page.agents:
                yield agent
            token = page.next_page_token
            if not token:
                return

    async def update(
        self,
        agent_id: str,
        *,
        name: str | Unset = _UNSET,
        description: str | Unset = _UNSET,
        deadline: Deadline = _UNSET,
    ) -> pb.Agent:
        """Changes the fields passed (and only those)."""
        mask = _mask(name=name, description=description)
        agent = pb.Agent(
            name=name if not isinstance(name, Unset) else "",
            description=description if not isinstance(description, Unset) else "",
        )
        request = rr.UpdateAgentRequest(agent_id=agent_id, agent=agent, update_mask=mask)
        return (await self._stub.UpdateAgent(request, timeout=self._t(deadline))).agent

    async def delete(self, agent_id: str, *, deadline: Deadline = _UNSET) -> None:
        request = rr.DeleteAgentRequest(agent_id=agent_id)
        await self._stub.DeleteAgent(request, timeout=self._t(deadline))


class Customers(_Helper):
    """CustomerService: `client.customers`."""

    def __init__(self, stub: svc.CustomerServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def create(
        self,
        name: str,
        *,
        metadata: Mapping[str, str] | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Customer:
        request = rr.CreateCustomerRequest(customer=pb.Customer(name=name, metadata=metadata))
        return (await self._stub.CreateCustomer(request, timeout=self._t(deadline))).customer

    async def get(self, customer_id: str, *, deadline: Deadline = _UNSET) -> pb.Customer:
        request = rr.GetCustomerRequest(customer_id=customer_id)
        return (await self._stub.GetCustomer(request, timeout=self._t(deadline))).customer

    async def list(
        self, *, page_size: int = 0, page_token: str = "", deadline: Deadline = _UNSET
    ) -> rr.ListCustomersResponse:
        """One page; `next_page_token` is empty on the last one. See `iterate` for all."""
        request = rr.ListCustomersRequest(page_size=page_size, page_token=page_token)
        return await self._stub.ListCustomers(request, timeout=self._t(deadline))

    async def iterate(self, *, page_size: int = 0) -> AsyncIterator[pb.Customer]:
        """Every customer, oldest first, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list(page_size=page_size, page_token=token)
            for customer in page.customers:
                yield customer
            token = page.next_page_token
            if not token:
                return

    async def update(
        self,
        customer_id: str,
        *,
        name: str | Unset = _UNSET,
        metadata: Mapping[str, str] | Unset = _UNSET,
        deadline: Deadline = _UNSET,
    ) -> pb.Customer:
        """Changes the fields passed; `metadata` replaces the whole map."""
        mask = _mask(name=name, metadata=metadata)
        customer = pb.Customer(
            name=name if not isinstance(name, Unset) else "",
            metadata=metadata if not isinstance(metadata, Unset) else None,
        )
        request = rr.UpdateCustomerRequest(
            customer_id=customer_id, customer=customer, update_mask=mask
        )
        return (await self._stub.UpdateCustomer(request, timeout=self._t(deadline))).customer

    async def delete(self, customer_id: str, *, deadline: Deadline = _UNSET) -> None:
        request = rr.DeleteCustomerRequest(customer_id=customer_id)
        await self._stub.DeleteCustomer(request, timeout=self._t(deadline))


class Sessions(_Helper):
    """SessionService: `client.sessions`."""

    def __init__(self, stub: svc.SessionServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def create(
        self,
        *,
        agent_id: str,
        customer_id: str,
        title: str = "",
        mode: EnumArg = pb.SESSION_MODE_UNSPECIFIED,
        metadata: Mapping[str, str] | None = None,
        deadline: Deadline = _UNSET,
    ) -> pb.Session:
        """A new session (mode AUTO unless given); its log starts with an event at offset 0."""
        session = pb.Session(
            agent_id=agent_id,
            customer_id=customer_id,
            title=title,
            mode=_mode(mode),
            metadata=metadata,
        )
        request = rr.CreateSessionRequest(session=session)
        return (await self._stub.CreateSession(request, timeout=self._t(deadline))).session

    async def get(self, session_id: str, *, deadline: Deadline = _UNSET) -> pb.Session:
        request = rr.GetSessionRequest(session_id=session_id)
        return (await self._stub.GetSession(request, timeout=self._t(deadline))).session

    async def list(
        self,
        *,
        agent_id: str = "",
        customer_id: str = "",
        mode: EnumArg = pb.SESSION_MODE_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
        deadline: Deadline = _UNSET,
    ) -> rr.ListSessionsResponse:
        """One page, filtered; `next_page_token` is empty on the last one."""
        request = rr.ListSessionsRequest(
            agent_id=agent_id,
            customer_id=customer_id,
            mode=_mode(mode),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._stub.ListSessions(request, timeout=self._t(deadline))

    async def iterate(
        self,
        *,
        agent_id: str = "",
        customer_id: str = "",
        mode: EnumArg = pb.SESSION_MODE_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[pb.Session]:
        """Every matching session, oldest first, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list(
                agent_id=agent_id,
                customer_id=customer_id,
                mode=mode,
                page_size=page_size,
                page_token=token,
            )
            for session in page.sessions:
                yield session
            token = page.next_page_token
            if not token:
                return

    async def update(
        self,
        session_id: str,
        *,
        title: str | Unset = _UNSET,
        mode: EnumArg | Unset = _UNSET,
        metadata: Mapping[str, str] | Unset = _UNSET,
        deadline: Deadline = _UNSET,
    ) -> pb.Session:
        """Changes the fields passed; `metadata` replaces the whole map. A mode change is
        recorded in the log as a "baton.session_mode_changed" event."""
        mask = _mask(mode=mode, title=title, metadata=metadata)
        session = pb.Session(
            title=title if not isinstance(title, Unset) else "",
            mode=_mode(mode) if not isinstance(mode, Unset) else pb.SESSION_MODE_UNSPECIFIED,
            metadata=metadata if not isinstance(metadata, Unset) else None,
        )
        request = rr.UpdateSessionRequest(session_id=session_id, session=session, update_mask=mask)
        return (await self._stub.UpdateSession(request, timeout=self._t(deadline))).session

    async def set_mode(
        self, session_id: str, mode: EnumArg, *, deadline: Deadline = _UNSET
    ) -> pb.Session:
        """AUTO (the AI answers) or MANUAL (humans answer): `set_mode(sid, "manual")`."""
        return await self.update(session_id, mode=mode, deadline=deadline)

    async def delete(self, session_id: str, *, deadline: Deadline = _UNSET) -> None:
        """Deletes the session and its log; open follow streams end with NOT_FOUND."""
        request = rr.DeleteSessionRequest(session_id=session_id)
        await self._stub.DeleteSession(request, timeout=self._t(deadline))


class Events(_Helper):
    """EventService: `client.events` (appends and one-shot reads; see `BatonClient.follow`)."""

    def __init__(self, stub: svc.EventServiceAsyncStub, deadline: float | None) -> None:
        super().__init__(deadline)
        self._stub = stub

    async def create(
        self,
        session_id: str,
        *,
        kind: EnumArg,
        source: EnumArg,
        message: pb.MessageData | None = None,
        tool: pb.ToolData | None = None,
        status: pb.StatusData | None = None,
        custom: Mapping[str, StructValue] | struct_pb2.Struct | None = None,
        correlation_id: str = "",
        idempotency_key: str = "",
        deadline: Deadline = _UNSET,
    ) -> pb.Event:
        """Appends any event; set the one payload matching `kind`. Returns it with its offset.

        With an `idempotency_key`, retrying the same append returns the original event. When
        none is given the client generates one ("auto-<uuid>"), so its own retries (after
        UNAVAILABLE) never append twice.
        """
        request = rr.CreateEventRequest(
            session_id=session_id,
            kind=_kind(kind),
            source=_source(source),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
        )
        # Setting a member of the `data` oneof selects it (the last one set wins).
        if message is not None:
            request.message.CopyFrom(message)
        if tool is not None:
            request.tool.CopyFrom(tool)
        if status is not None:
            request.status.CopyFrom(status)
        if custom is not None:
            request.custom.CopyFrom(
                custom if isinstance(custom, struct_pb2.Struct) else _struct(custom)
            )
        return (await self._stub.CreateEvent(request, timeout=self._t(deadline))).event

    async def send_message(
        self,
        session_id: str,
        text: str,
        *,
        source: EnumArg = pb.EVENT_SOURCE_CUSTOMER,
        participant: pb.Participant | None = None,
        correlation_id: str = "",
        idempotency_key: str = "",
        deadline: Deadline = _UNSET,
    ) -> pb.Event:
        """Appends a MESSAGE event (from the customer unless `source` says otherwise)."""
        return await self.create(
            session_id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=source,
            message=pb.MessageData(text=text, participant=participant),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            deadline=deadline,
        )

    async def send_status(
        self,
        session_id: str,
        status: EnumArg,
        *,
        detail: str | None = None,
        source: EnumArg = pb.EVENT_SOURCE_AI_AGENT,
        correlation_id: str = "",
        idempotency_key: str = "",
        deadline: Deadline = _UNSET,
    ) -> pb.Event:
        """Appends a STATUS event ("typing", "ready", ...), by default from the AI agent."""
        return await self.create(
            session_id,
            kind=pb.EVENT_KIND_STATUS,
            source=source,
            status=pb.StatusData(status=_status(status), detail=detail),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            deadline=deadline,
        )

    async def send_tool(
        self,
        session_id: str,
        tool_calls: Sequence[pb.ToolCall],
        *,
        source: EnumArg = pb.EVENT_SOURCE_AI_AGENT,
        correlation_id: str = "",
        idempotency_key: str = "",
        deadline: Deadline = _UNSET,
    ) -> pb.Event:
        """Appends a TOOL event with one step's tool calls."""
        return await self.create(
            session_id,
            kind=pb.EVENT_KIND_TOOL,
            source=source,
            tool=pb.ToolData(tool_calls=tool_calls),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            deadline=deadline,
        )

    async def send_custom(
        self,
        session_id: str,
        data: Mapping[str, StructValue],
        *,
        source: EnumArg = pb.EVENT_SOURCE_SYSTEM,
        correlation_id: str = "",
        idempotency_key: str = "",
        deadline: Deadline = _UNSET,
    ) -> pb.Event:
        """Appends a CUSTOM event with JSON-like `data` (keys starting "baton." are Baton's)."""
        return await self.create(
            session_id,
            kind=pb.EVENT_KIND_CUSTOM,
            source=source,
            custom=data,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            deadline=deadline,
        )

    async def read(
        self,
        session_id: str,
        *,
        min_offset: int = 0,
        kinds: Sequence[EnumArg] = (),
        sources: Sequence[EnumArg] = (),
        deadline: float | None = None,
    ) -> AsyncIterator[pb.Event]:
        """The stored events from `min_offset`, then stops (no follow, no reconnects, no
        deadline unless given)."""
        request = rr.ListEventsRequest(
            session_id=session_id,
            min_offset=min_offset,
            kinds=[_kind(k) for k in kinds],
            sources=[_source(s) for s in sources],
        )
        call = self._stub.ListEvents(request, timeout=self._t(deadline))
        try:
            async for response in call:
                for event in response.events:
                    yield event
        except grpc.aio.AioRpcError as error:
            raise as_baton_error(error) from None
        finally:
            call.cancel()

    async def history(
        self,
        session_id: str,
        *,
        min_offset: int = 0,
        kinds: Sequence[EnumArg] = (),
        sources: Sequence[EnumArg] = (),
        deadline: float | None = None,
    ) -> list[pb.Event]:
        """`read` collected into a list."""
        events = self.read(
            session_id, min_offset=min_offset, kinds=kinds, sources=sources, deadline=deadline
        )
        return [event async for event in events]
