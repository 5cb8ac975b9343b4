"""Proto ⇄ domain mapping, with the validation that names the offending request field."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from baton_server.api.protos import pb, rr
from baton_server.config import InputLimits
from baton_server.domain import (
    Agent,
    CannedResponse,
    Customer,
    Event,
    EventDraft,
    EventKind,
    EventSource,
    Guideline,
    Session,
    SessionMode,
)
from baton_server.errors import FieldViolation, InvalidArgument
from baton_server.tools import Tool
from baton_server.tools.workers import WorkerInfo

# Custom event types Baton writes itself (session created, mode changed): clients may not.
RESERVED_TYPE_PREFIX = "baton."
MAX_ID_LENGTH = 128
MAX_KEY_LENGTH = 128
MAX_DISPLAY_NAME_LENGTH = 256
MAX_CORRELATION_ID_LENGTH = 256

KIND_TO_PROTO = {
    EventKind.MESSAGE: pb.EVENT_KIND_MESSAGE,
    EventKind.TOOL: pb.EVENT_KIND_TOOL,
    EventKind.STATUS: pb.EVENT_KIND_STATUS,
    EventKind.CUSTOM: pb.EVENT_KIND_CUSTOM,
}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}
SOURCE_TO_PROTO = {
    EventSource.CUSTOMER: pb.EVENT_SOURCE_CUSTOMER,
    EventSource.CUSTOMER_UI: pb.EVENT_SOURCE_CUSTOMER_UI,
    EventSource.AI_AGENT: pb.EVENT_SOURCE_AI_AGENT,
    EventSource.HUMAN_AGENT: pb.EVENT_SOURCE_HUMAN_AGENT,
    EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT: (
        pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT
    ),
    EventSource.SYSTEM: pb.EVENT_SOURCE_SYSTEM,
}
SOURCE_FROM_PROTO = {v: k for k, v in SOURCE_TO_PROTO.items()}
MODE_TO_PROTO = {SessionMode.AUTO: pb.SESSION_MODE_AUTO, SessionMode.MANUAL: pb.SESSION_MODE_MANUAL}
MODE_FROM_PROTO = {v: k for k, v in MODE_TO_PROTO.items()}
ROLE_TO_PROTO = {
    "admin": pb.ACTOR_ROLE_ADMIN,
    "integration": pb.ACTOR_ROLE_INTEGRATION,
    "operator": pb.ACTOR_ROLE_OPERATOR,
    "customer": pb.ACTOR_ROLE_CUSTOMER,
}
STATUS_NAMES = {
    pb.STATUS_ACKNOWLEDGED: "acknowledged",
    pb.STATUS_PROCESSING: "processing",
    pb.STATUS_TYPING: "typing",
    pb.STATUS_READY: "ready",
    pb.STATUS_CANCELLED: "cancelled",
    pb.STATUS_ERROR: "error",
}
STATUS_FROM_NAME = {v: k for k, v in STATUS_NAMES.items()}
# Which `data` oneof field belongs to which kind.
DATA_FIELD = {
    EventKind.MESSAGE: "message",
    EventKind.TOOL: "tool",
    EventKind.STATUS: "status",
    EventKind.CUSTOM: "custom",
}


def _enum_choices(enum_type: Any, skip_zero: bool = True) -> str:
    names = [v.name for v in enum_type.DESCRIPTOR.values if not (skip_zero and v.number == 0)]
    return ", ".join(names)


# ---------------------------------------------------------------- small validators


class Violations:
    """Collects every problem of a request so the client can fix them all at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.single(field, "required")
    return optional_id(value, field)


def optional_id(value: str, field: str) -> str:
    """An id that may be empty (a filter), but not longer than any id can be."""
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument.single(field, f"longer than {MAX_ID_LENGTH} characters")
    return value


def check_update_mask(paths: list[str], allowed: tuple[str, ...]) -> set[str]:
    if not paths:
        raise InvalidArgument.single(
            "update_mask", f"required; name the fields to update: {', '.join(allowed)}"
        )
    unknown = [p for p in paths if p not in allowed]
    if unknown:
        raise InvalidArgument.single(
            "update_mask",
            f"unknown field path(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}",
        )
    return set(paths)


def mode_from_proto(value: int, field: str, *, allow_unspecified: bool) -> SessionMode | None:
    if value == pb.SESSION_MODE_UNSPECIFIED and allow_unspecified:
        return None
    mode = MODE_FROM_PROTO.get(pb.SessionMode.ValueType(value))
    if mode is None:
        raise InvalidArgument.single(
            field, f"must be one of {_enum_choices(pb.SessionMode)} (got {value})"
        )
    return mode


def check_metadata(metadata: Any, field: str, limits: InputLimits) -> dict[str, str]:
    """A metadata map within the configured limits, as a dict."""
    items = dict(metadata)
    if len(items) > limits.max_metadata_entries:
        raise InvalidArgument.single(
            field, f"at most {limits.max_metadata_entries} entries (got {len(items)})"
        )
    problems = Violations()
    for key, value in items.items():
        if len(key) > limits.max_metadata_key_length:
            problems.add(
                field,
                f"key {key[:32]!r}... longer than {limits.max_metadata_key_length} characters",
            )
        if len(value) > limits.max_metadata_value_length:
            problems.add(
                f"{field}[{key!r}]",
                f"value longer than {limits.max_metadata_value_length} characters",
            )
    problems.raise_if_any()
    return items


def require_name(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument.single(field, "required; must not be empty or whitespace")
    return value


# ---------------------------------------------------------------- times


# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
MIN_TIMESTAMP_S, MAX_TIMESTAMP_S = -62_135_596_800, 253_402_300_799


def timestamp_us(value: Timestamp, field: str) -> int:
    """A request Timestamp as microseconds, or INVALID_ARGUMENT naming the field."""
    if not MIN_TIMESTAMP_S <= value.seconds <= MAX_TIMESTAMP_S or not 0 <= value.nanos < 10**9:
        raise InvalidArgument.single(
            field, "not a valid timestamp (seconds within years 1-9999, nanos 0-999999999)"
        )
    return value.seconds * 1_000_000 + value.nanos // 1000


def timestamp(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


# ---------------------------------------------------------------- resources


def agent_to_proto(agent: Agent) -> pb.Agent:
    from baton_server.api.handoff_mapping import policy_to_proto  # (imports this module)

    return pb.Agent(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        created_at=timestamp(agent.created_at_us),
        handoff_policy=policy_to_proto(agent.handoff_policy),
    )


def customer_to_proto(customer: Customer) -> pb.Customer:
    return pb.Customer(
        id=customer.id,
        name=customer.name,
        metadata=customer.metadata,
        created_at=timestamp(customer.created_at_us),
    )


def session_to_proto(session: Session) -> pb.Session:
    return pb.Session(
        id=session.id,
        agent_id=session.agent_id,
        customer_id=session.customer_id,
        title=session.title,
        mode=MODE_TO_PROTO[session.mode],
        metadata=session.metadata,
        created_at=timestamp(session.created_at_us),
        updated_at=timestamp(session.updated_at_us),
        next_offset=session.next_offset,
        control_epoch=session.control_epoch,
    )


# ---------------------------------------------------------------- events: proto -> domain


def draft_from_request(
    request: rr.CreateEventRequest, limits: InputLimits | None = None
) -> EventDraft:
    """Validates a CreateEventRequest and turns it into an EventDraft."""
    limits = limits or InputLimits()
    problems = Violations()
    kind = KIND_FROM_PROTO.get(request.kind)
    if kind is None:
        problems.add("kind", f"required; one of {_enum_choices(pb.EventKind)}")
    source = SOURCE_FROM_PROTO.get(request.source)
    if source is None:
        problems.add("source", f"required; one of {_enum_choices(pb.EventSource)}")
    data_field = request.WhichOneof("data")
    data: dict[str, Any] = {}
    if data_field is None:
        problems.add("data", "set exactly one of message, tool, status, custom, matching kind")
    elif kind is not None and DATA_FIELD[kind] != data_field:
        problems.add(
            data_field,
            f"does not match kind {pb.EventKind.Name(request.kind)}; "
            f"set {DATA_FIELD[kind]!r} instead",
        )
    else:
        data = _data_from_proto(data_field, getattr(request, data_field), problems)
        if data_field == "message" and len(request.message.text) > limits.max_text_length:
            problems.add(
                "message.text",
                f"longer than {limits.max_text_length} characters ({len(request.message.text)})",
            )
    if (
        source is EventSource.HUMAN_AGENT
        and data_field == "message"
        and not request.message.participant.id.strip()
    ):
        problems.add(
            "message.participant.id",
            "required for human agent messages (who wrote it); or use source "
            "EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT to speak as the AI agent",
        )
    participant = request.message.participant
    if len(participant.id) > MAX_ID_LENGTH:
        problems.add("message.participant.id", f"longer than {MAX_ID_LENGTH} characters")
    if len(participant.display_name) > MAX_DISPLAY_NAME_LENGTH:
        problems.add(
            "message.participant.display_name", f"longer than {MAX_DISPLAY_NAME_LENGTH} characters"
        )
    if len(request.idempotency_key) > MAX_KEY_LENGTH:
        problems.add("idempotency_key", f"longer than {MAX_KEY_LENGTH} characters")
    if len(request.correlation_id) > MAX_CORRELATION_ID_LENGTH:
        problems.add("correlation_id", f"longer than {MAX_CORRELATION_ID_LENGTH} characters")
    problems.raise_if_any()
    assert kind is not None and source is not None
    return EventDraft(
        kind=kind,
        source=source,
        data=data,
        correlation_id=request.correlation_id,
        idempotency_key=request.idempotency_key,
    )


def _data_from_proto(field: str, value: Any, problems: Violations) -> dict[str, Any]:
    if field == "message":
        if not value.text.strip():
            problems.add("message.text", "required; must not be empty or whitespace")
        data: dict[str, Any] = {"text": value.text}
        if value.HasField("participant"):
            data["participant"] = {
                "id": value.participant.id,
                "display_name": value.participant.display_name,
            }
        return data
    if field == "status":
        name = STATUS_NAMES.get(value.status)
        if name is None:
            problems.add("status.status", f"required; one of {_enum_choices(pb.Status)}")
        data = {"status": name}
        if value.HasField("detail"):
            data["detail"] = value.detail
        return data
    if field == "tool":
        if not value.tool_calls:
            problems.add("tool.tool_calls", "at least one tool call is required")
        calls = []
        for i, call in enumerate(value.tool_calls):
            if not call.name.strip():
                problems.add(f"tool.tool_calls[{i}].name", "required")
            item: dict[str, Any] = {
                "name": call.name,
                "arguments": _json(call.arguments, f"tool.tool_calls[{i}].arguments", problems),
            }
            if call.HasField("result"):
                item["result"] = _json(call.result, f"tool.tool_calls[{i}].result", problems)
            if call.error:
                item["error"] = call.error
            calls.append(item)
        return {"tool_calls": calls}
    custom: dict[str, Any] = _json(value, "custom", problems)
    if str(custom.get("type", "")).startswith(RESERVED_TYPE_PREFIX):
        problems.add(
            "custom.type",
            f"types starting with {RESERVED_TYPE_PREFIX!r} are reserved for Baton's own events",
        )
    return custom


def _json(value: Any, field: str, problems: Violations) -> Any:
    """A Struct/Value as plain JSON; NaN and infinities have no JSON form."""
    try:
        return json_format.MessageToDict(value)
    except ValueError:
        problems.add(field, "numbers must be finite (no NaN or Infinity)")
        return {}


# ---------------------------------------------------------------- events: domain -> proto


def event_to_proto(event: Event) -> pb.Event:
    proto = pb.Event(
        id=event.id,
        session_id=event.session_id,
        offset=event.offset,
        kind=KIND_TO_PROTO[event.kind],
        source=SOURCE_TO_PROTO[event.source],
        correlation_id=event.correlation_id,
    )
    actor = event.actor
    if actor is not None:
        proto_actor = proto.actor
        proto_actor.key_id = actor.key_id
        proto_actor.role = ROLE_TO_PROTO.get(actor.role, pb.ACTOR_ROLE_UNSPECIFIED)
        if actor.customer_id:
            proto_actor.customer_id = actor.customer_id
    # Set in place: building a Timestamp and passing it would copy it.
    created = proto.created_at
    created.seconds, micros = divmod(event.created_at_us, 1_000_000)
    created.nanos = micros * 1000
    data = event.data
    kind = event.kind
    if kind is EventKind.MESSAGE:
        message = proto.message
        message.text = data["text"]
        participant = data.get("participant")
        if participant:
            message.participant.id = participant["id"]
            message.participant.display_name = participant["display_name"]
    elif kind is EventKind.STATUS:
        proto.status.status = STATUS_FROM_NAME[data["status"]]
        if "detail" in data:
            proto.status.detail = data["detail"]
    elif kind is EventKind.TOOL:
        for call in data["tool_calls"]:
            item = proto.tool.tool_calls.add(name=call["name"], error=call.get("error", ""))
            item.arguments.update(call["arguments"])
            if "result" in call:
                json_format.ParseDict(call["result"], item.result)
    else:
        custom = struct_pb2.Struct()
        custom.update(data)
        proto.custom.CopyFrom(custom)
    return proto


def guideline_to_proto(guideline: Guideline) -> pb.Guideline:
    return pb.Guideline(
        id=guideline.id,
        agent_id=guideline.agent_id,
        condition=guideline.condition,
        action=guideline.action,
        tool_names=list(guideline.tool_names),
        enabled=guideline.enabled,
        created_at=timestamp(guideline.created_at_us),
    )


def canned_response_to_proto(canned: CannedResponse) -> pb.CannedResponse:
    return pb.CannedResponse(
        id=canned.id,
        agent_id=canned.agent_id,
        text=canned.text,
        created_at=timestamp(canned.created_at_us),
    )


def tool_to_proto(tool: Tool, workers: list[WorkerInfo]) -> pb.Tool:
    proto = pb.Tool(
        name=tool.name,
        description=tool.description,
        origin=pb.TOOL_ORIGIN_WORKER if tool.from_worker else pb.TOOL_ORIGIN_PYTHON,
        retry_safe=tool.retry_safe,
        workers=[
            pb.ToolWorker(
                worker_id=w.worker_id,
                calls_in_flight=w.calls_in_flight,
                max_concurrent_calls=w.max_concurrent_calls,
                connect_time=timestamp(w.connected_at_us),
            )
            for w in workers
        ],
    )
    proto.parameters.update(tool.parameters)
    if tool.timeout_s is not None:
        proto.timeout.FromMilliseconds(int(tool.timeout_s * 1000))
    return proto
