"""Descriptor-driven fuzzing of every baton.v1 RPC (used by tests/api/test_fuzz.py).

Everything here is generic: the RPCs come from the generated service descriptors and requests
are drawn from the message descriptors, so an RPC added to the protos is fuzzed without edits.
Calls go through a blocking channel with identity serializers, so structurally valid messages
and malformed bytes take the same path. The fuzzer keeps pools of what the server handed out
(ids of every resource, page tokens, tool names) and feeds them back, so calls get past
NOT_FOUND into the code behind it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import strategies as st

from baton.v1 import service_pb2

# Codes a request must never produce: a server fault, or the server gone.
SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
# Codes Baton's error interceptor produces; each must carry a baton.v1 ErrorInfo.
APPLICATION_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
UNARY_TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 0.5
STREAM_MAX_MESSAGES = 5


@dataclass(frozen=True)
class Rpc:
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def request_type(self) -> Descriptor:
        return self.method.input_type

    @property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)

    @property
    def streams_responses(self) -> bool:
        return bool(self.method.server_streaming)

    def __repr__(self) -> str:
        return self.path


def all_rpcs() -> list[Rpc]:
    """Every method of every service in baton.v1, present and future."""
    return [
        Rpc(method)
        for service in service_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def resource_of(field_name: str) -> str | None:
    """ "session_id" -> "session"; "id" and other names -> None (any resource)."""
    return field_name[: -len("_id")] if field_name.endswith("_id") else None


@dataclass
class Pools:
    """What the server handed out so far: fed back into requests."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    page_tokens: list[str] = field(default_factory=list)
    # The same tokens by the RPC that issued them: only those get past the filter digest.
    page_tokens_of: dict[str, list[str]] = field(default_factory=dict)
    tool_names: list[str] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=lambda: ["k1", "k2", "k3"])
    # Requests (serialized) that the server accepted, per RPC path: mutated into new requests.
    accepted: dict[str, list[bytes]] = field(default_factory=dict)

    def accept(self, path: str, payload: bytes) -> None:
        corpus = self.accepted.setdefault(path, [])
        if payload not in corpus:
            corpus.append(payload)
            del corpus[:-50]

    def add_id(self, resource: str, value: str) -> None:
        known = self.ids.setdefault(resource, [])
        if value and value not in known:
            known.append(value)

    def harvest(self, message: Message, path: str = "") -> None:
        """Collects resource ids, page tokens and tool names from a response of `path`."""
        resource = snake(message.DESCRIPTOR.name)
        for fd, value in message.ListFields():
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                if fd.message_type.GetOptions().map_entry:
                    continue
                for item in value if _repeated(fd) else [value]:
                    self.harvest(item, path)
            elif fd.type == FieldDescriptor.TYPE_STRING and not _repeated(fd):
                if fd.name == "id":
                    self.add_id(resource, value)
                elif (owner := resource_of(fd.name)) is not None:
                    self.add_id(owner, value)
                elif fd.name == "next_page_token" and value not in self.page_tokens:
                    self.page_tokens.append(value)
                    self.page_tokens_of.setdefault(path, []).append(value)
                elif resource == "tool" and fd.name == "name" and value not in self.tool_names:
                    self.tool_names.append(value)


def _repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


# ---------------------------------------------------------------- value strategies

SPECIAL_TEXT = [
    "",
    " ",
    "\t\n ",
    "\x00",
    "a\x00b",
    "hello",
    "ñandú 😀 ᚠ",
    "baton.session_created",
    "baton.",
    "*",
    "'; DROP TABLE events; --",
    "%s%n{}",
    "\u202e\ufeff",
    "x" * 64,
    "x" * 65,
    "x" * 128,
    "x" * 129,
    "x" * 257,
]


# Values a forged page token may carry (JSON can encode NUL and lone surrogates).
NASTY_JSON: list[Any] = [True, False, None, -1, 2**63, 1.5, "", "a\x00b", "\ud800", [], {}]


def text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPECIAL_TEXT),
        st.text(max_size=30),
        st.builds(
            lambda c, n: c * n, st.sampled_from(["x", "é", "😀", " "]), st.integers(0, 50_000)
        ),
    )


def ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    edges = [
        v for v in (low, high, low + 1, high - 1, -1, 0, 1, 50, 1000, 1001) if low <= v <= high
    ]
    small = st.integers(0, 5)
    return st.one_of(small, small, st.sampled_from(edges), st.integers(low, high))


INT_TYPES = {
    FieldDescriptor.TYPE_INT32: (32, True),
    FieldDescriptor.TYPE_SINT32: (32, True),
    FieldDescriptor.TYPE_SFIXED32: (32, True),
    FieldDescriptor.TYPE_INT64: (64, True),
    FieldDescriptor.TYPE_SINT64: (64, True),
    FieldDescriptor.TYPE_SFIXED64: (64, True),
    FieldDescriptor.TYPE_UINT32: (32, False),
    FieldDescriptor.TYPE_FIXED32: (32, False),
    FieldDescriptor.TYPE_UINT64: (64, False),
    FieldDescriptor.TYPE_FIXED64: (64, False),
}


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),  # includes NaN and the infinities
        st.sampled_from([0.0, -0.0, 1e308, -1e308, 2.0**63, 2.0**64, 5e-324]),
        text(),
    )
    keys = st.one_of(st.sampled_from(["type", "text", "", "\x00", "a.b"]), st.text(max_size=8))

    def nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        )

    deep = st.integers(1, 30).map(_deep_dict)
    return st.one_of(st.recursive(scalars, nest, max_leaves=12), deep)


def _deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1.0}
    for _ in range(depth):
        value = {"n": value}
    return value


def struct_dicts() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.one_of(st.just("type"), st.text(max_size=8))
    types = st.one_of(st.sampled_from(["baton.session_created", "baton.x", "order"]), text())
    return st.one_of(
        st.dictionaries(keys, json_values(), max_size=5),
        st.builds(lambda t, rest: {**rest, "type": t}, types, st.dictionaries(keys, json_values())),
        st.integers(1, 30).map(_deep_dict),
    )


# ---------------------------------------------------------------- request strategies


class RequestDrawer:
    """Draws random messages for a descriptor, steering string fields by their names."""

    MAX_DEPTH = 5

    def __init__(self, data: st.DataObject, pools: Pools) -> None:
        self.data = data
        self.pools = pools
        self.rpc_path = ""

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def chance(self, percent: int) -> bool:
        return bool(self.draw(st.integers(0, 99)) < percent)

    def request(self, rpc: Rpc) -> Message:
        """A fresh random request, or (more often) an accepted one with a field or two redrawn,
        which gets deeper than fresh requests that rarely pass every validation."""
        descriptor = rpc.request_type
        self.rpc_path = rpc.path
        fresh = self.message(descriptor)
        base_bytes = self.pick(self.pools.accepted.get(rpc.path, []))  # type: ignore[arg-type]
        mutations = self.draw(st.integers(1, 2))
        # Drawn whether or not they are used: the draws must not depend on the pools.
        fresh_only = self.chance(30)
        fields = list(descriptor.fields)
        redrawn = [self.draw(st.sampled_from(fields)) for _ in range(mutations)] if fields else []
        if base_bytes is None or not fields or fresh_only:
            return fresh
        base = rpc.request_class.FromString(base_bytes)
        for fd in redrawn:
            _replace_field(base, fresh, fd)
        return base

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        cls = message_factory.GetMessageClass(descriptor)
        special = self._well_known(descriptor)
        if special is not None:
            return special
        message = cls()
        if depth >= self.MAX_DEPTH:
            return message
        chosen_in_oneof: set[str] = set()
        for oneof in descriptor.oneofs:
            members = list(oneof.fields)
            if len(members) == 1:  # proto3 `optional`: a synthetic oneof, decided below
                chosen_in_oneof.add(members[0].name)
                continue
            choice = self.draw(st.sampled_from([None, *members]))
            if choice is not None:
                chosen_in_oneof.add(choice.name)
        mask_names = sorted(
            {
                name
                for fd in descriptor.fields
                if fd.type == FieldDescriptor.TYPE_MESSAGE
                for name in fd.message_type.fields_by_name
            }
        )
        for fd in descriptor.fields:
            in_oneof = fd.containing_oneof is not None
            if in_oneof and fd.name not in chosen_in_oneof:
                continue
            if not (in_oneof and len(fd.containing_oneof.fields) > 1) and not self.chance(70):
                continue
            self._set_field(message, fd, depth, mask_names)
        return message

    def _set_field(self, message: Message, fd: FieldDescriptor, depth: int, names: list) -> None:
        if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            key_fd = fd.message_type.fields_by_name["key"]
            value_fd = fd.message_type.fields_by_name["value"]
            target = getattr(message, fd.name)
            for _ in range(self.draw(st.integers(0, 3))):
                key = self.scalar(key_fd)
                if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                    target[key].CopyFrom(self.message(value_fd.message_type, depth + 1))
                else:
                    target[key] = self.scalar(value_fd)
            return
        count = self.draw(st.integers(0, 4)) if _repeated(fd) else 1
        if _repeated(fd) and self.chance(40):
            count = 0
        values = [self.value(fd, depth, names) for _ in range(count)]
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            try:
                if _repeated(fd):
                    getattr(message, fd.name).extend(values)
                else:
                    getattr(message, fd.name).CopyFrom(values[0])
            except DecodeError:
                pass  # nested deeper than protobuf allows (malformed() sends such bytes)
        elif _repeated(fd):
            getattr(message, fd.name).extend(values)
        else:
            setattr(message, fd.name, values[0])

    def value(self, fd: FieldDescriptor, depth: int, names: list) -> Any:
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.message_type.full_name == "google.protobuf.FieldMask":
                return self._field_mask(fd.message_type, names)
            return self.message(fd.message_type, depth + 1)
        return self.scalar(fd)

    def scalar(self, fd: FieldDescriptor) -> Any:
        kind = fd.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.string(fd.name)
        if kind == FieldDescriptor.TYPE_BOOL:
            return self.draw(st.booleans())
        if kind == FieldDescriptor.TYPE_ENUM:
            known = [v.number for v in fd.enum_type.values]
            unknown = [-1, max(known) + 1, 99, 2**31 - 1, -(2**31)]
            if self.chance(80):
                return self.draw(st.sampled_from(known))
            return self.draw(st.sampled_from(unknown))
        if kind in INT_TYPES:
            return self.draw(ints(*INT_TYPES[kind]))
        if kind == FieldDescriptor.TYPE_DOUBLE:
            return self.draw(st.floats())
        if kind == FieldDescriptor.TYPE_FLOAT:
            return self.draw(st.floats(width=32))
        if kind == FieldDescriptor.TYPE_BYTES:
            return self.draw(st.binary(max_size=64))
        raise AssertionError(f"unhandled field type {kind} of {fd.full_name}")

    def pick(self, pool: list[str]) -> str | None:
        """An element of a pool that changes over time, drawn the same way whatever its size:
        Hypothesis requires every example to draw the same kinds of choices."""
        index = self.draw(st.integers(0, 1023))
        if not pool:
            return None
        if index % 2:  # half the time one of the newest, which are more likely still there
            return pool[-1 - (index // 2) % min(len(pool), 4)]
        return pool[index // 2 % len(pool)]

    def string(self, name: str) -> str:
        pools = self.pools
        if name == "id" or name.endswith("_id"):
            return self.identifier(resource_of(name))
        if name == "page_token":
            return self.page_token()
        if name == "idempotency_key" and self.chance(60):
            return str(self.draw(st.sampled_from(pools.idempotency_keys)))
        if name in ("tool_names", "name"):
            tool = self.pick(pools.tool_names)
            if self.chance(50) and tool is not None:
                return tool
        if self.chance(40):
            return str(self.draw(st.sampled_from(["hello", "Where is my parcel?", "ok"])))
        return str(self.draw(text()))

    def identifier(self, resource: str | None) -> str:
        pools = self.pools
        own = self.pick(pools.ids.get(resource or "", []))
        other = self.pick([value for values in pools.ids.values() for value in values])
        prefix = (resource or "res")[:3]
        made_up = str(
            self.draw(
                st.one_of(
                    text(),
                    st.text("0123456789abcdef", max_size=26).map(lambda s: f"{prefix}_{s}"),
                    st.integers(60, 140).map(lambda n: f"{prefix}_" + "z" * n),
                )
            )
        )
        choice = self.draw(st.integers(0, 9))
        if choice < 6 and own is not None:
            return own
        if choice < 8 and other is not None:
            return other
        return made_up

    def page_token(self) -> str:
        # Every choice is drawn whatever the pools hold (see `pick`).
        own = self.pick(self.pools.page_tokens_of.get(self.rpc_path, []))
        any_rpcs = self.pick(self.pools.page_tokens)
        prefer_own = self.chance(70)
        real = own if prefer_own and own is not None else any_rpcs
        keep = self.chance(30)
        mutated = self._mutate_token(real or "")
        made_up = str(
            self.draw(
                st.one_of(
                    text(),
                    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
                    json_values().map(_token_of),
                )
            )
        )
        use_real = self.chance(60)
        if real is not None and use_real:
            return real if keep else mutated
        return made_up

    def _mutate_token(self, token: str) -> str:
        """A real token with one field changed (the filter digest kept, so it gets decoded)."""
        position = self.draw(st.integers(0, 1023))
        key = self.draw(st.sampled_from(["i", "t", "i", "t", "f", "x"]))
        replacement = self.draw(
            st.one_of(
                st.sampled_from(NASTY_JSON),
                json_values(),
                ints(64, True),
                st.integers(2**63 - 10, 2**64),
                text(),
            )
        )
        try:
            body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, binascii.Error):
            return token[: position % (len(token) + 1)]
        if not isinstance(body, dict) or not body:
            return token[:-1]
        body[key] = replacement
        return _token_of(body)

    def _field_mask(self, descriptor: Descriptor, names: list) -> Message:
        mask = message_factory.GetMessageClass(descriptor)()
        fields = [name for name in names if name != "paths"] or ["name"]
        known = st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)
        candidates = st.one_of(st.sampled_from([*fields, "", "*", "id", "a.b"]), text())
        anything = st.lists(candidates, max_size=4)
        mask.paths.extend(self.draw(known) if self.chance(60) else self.draw(anything))
        return mask

    def _well_known(self, descriptor: Descriptor) -> Message | None:
        name = descriptor.full_name
        if name == "google.protobuf.Struct":
            struct = struct_pb2.Struct()
            struct.update(self.draw(struct_dicts()))
            return struct
        if name == "google.protobuf.Value":
            holder = struct_pb2.Struct()
            holder.update({"v": self.draw(json_values())})
            return holder.fields["v"] if self.chance(90) else struct_pb2.Value()
        if name == "google.protobuf.ListValue":
            holder = struct_pb2.Struct()
            holder.update({"v": self.draw(st.lists(json_values(), max_size=4))})
            return holder.fields["v"].list_value
        return None


def _replace_field(target: Message, source: Message, fd: FieldDescriptor) -> None:
    """Gives `target` the value `source` has for `fd` (unset in source: cleared in target)."""
    target.ClearField(fd.name)
    if _repeated(fd):
        if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            for key, value in getattr(source, fd.name).items():
                if isinstance(value, Message):
                    getattr(target, fd.name)[key].CopyFrom(value)
                else:
                    getattr(target, fd.name)[key] = value
        else:
            getattr(target, fd.name).extend(getattr(source, fd.name))
    elif fd.type == FieldDescriptor.TYPE_MESSAGE:
        if source.HasField(fd.name):
            getattr(target, fd.name).CopyFrom(getattr(source, fd.name))
    elif fd.has_presence:
        if source.HasField(fd.name):
            setattr(target, fd.name, getattr(source, fd.name))
    else:
        setattr(target, fd.name, getattr(source, fd.name))


def _token_of(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), allow_nan=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------- malformed bytes


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def malformed(data: st.DataObject, descriptor: Descriptor, valid: bytes) -> bytes:
    """Bytes that are mostly not a valid `descriptor` message: random, or `valid` broken."""
    fields = list(descriptor.fields)
    fd = data.draw(st.sampled_from(fields)) if fields else None
    number = fd.number if fd is not None else 1
    tag = number << 3
    choices: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=300),
        st.integers(0, 4095).map(lambda n: valid[: n % (len(valid) + 1)]),  # truncated
        st.tuples(st.integers(0, 4095), st.integers(0, 255)).map(
            lambda p: _replace_byte(valid, p[0], p[1])
        ),
        st.binary(max_size=40).map(lambda junk: valid + junk),
        # Field of the right number with every wire type, including the deprecated groups.
        st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]).map(lambda w: valid + _varint(tag | w)),
        st.just(valid + _varint(tag | 0) + b"\xff" * 11),  # varint longer than 10 bytes
        st.just(valid + _varint(tag | 2) + _varint(2**62) + b"x"),  # length past the end
        st.just(valid + _varint(tag | 2) + b"\x04\xc3\x28\xff\xfe"),  # invalid UTF-8
        st.just(_varint((2**29 - 1) << 3 | 0) + b"\x01"),  # the highest field number
        st.just(_varint(0) + b"\x01"),  # field number 0
        st.integers(50, 200).map(lambda depth: _nested(tag, depth)),  # past the recursion limit
    ]
    return bytes(data.draw(st.one_of(choices)))


def _replace_byte(valid: bytes, position: int, value: int) -> bytes:
    if not valid:
        return bytes([value])
    position %= len(valid)
    return valid[:position] + bytes([value]) + valid[position + 1 :]


def _nested(tag: int, depth: int) -> bytes:
    body = b""
    for _ in range(depth):
        body = _varint(tag | 2) + _varint(len(body)) + body
    return body


# ---------------------------------------------------------------- calling


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    responses: list[bytes]
    error: grpc.RpcError | None = None
    # The client ended a server stream (message cap or deadline) before the server did.
    stopped_by_client: bool = False


def call_raw(channel: grpc.Channel, rpc: Rpc, payload: bytes) -> Outcome:
    """Sends `payload` as the request bytes; unary calls must answer, streams are sampled."""
    method = rpc.method
    if not method.server_streaming:
        try:
            if method.client_streaming:
                response = channel.stream_unary(rpc.path)(iter([payload]), timeout=UNARY_TIMEOUT_S)
            else:
                response = channel.unary_unary(rpc.path)(payload, timeout=UNARY_TIMEOUT_S)
        except grpc.RpcError as error:
            return Outcome(error.code(), error.details() or "", [], error)
        return Outcome(grpc.StatusCode.OK, "", [response])
    if method.client_streaming:
        stream = channel.stream_stream(rpc.path)(iter([payload]), timeout=STREAM_TIMEOUT_S)
    else:
        stream = channel.unary_stream(rpc.path)(payload, timeout=STREAM_TIMEOUT_S)
    responses: list[bytes] = []
    try:
        for response in stream:
            responses.append(response)
            if len(responses) >= STREAM_MAX_MESSAGES:
                stream.cancel()
                return Outcome(grpc.StatusCode.CANCELLED, "", responses, None, True)
    except grpc.RpcError as error:
        code = error.code()
        stopped = code == grpc.StatusCode.DEADLINE_EXCEEDED
        return Outcome(code, error.details() or "", responses, error, stopped)
    return Outcome(grpc.StatusCode.OK, "", responses)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def outcome_problem(rpc: Rpc, outcome: Outcome) -> str | None:
    """What is wrong with how the server answered, if anything."""
    code = outcome.code
    if code in SERVER_FAULTS:
        return f"server fault {code.name}: {outcome.details}"
    if not rpc.streams_responses and code in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return f"unary call did not answer within {UNARY_TIMEOUT_S}s ({code.name})"
    if code in APPLICATION_CODES and not outcome.stopped_by_client:
        assert outcome.error is not None
        info = error_info(outcome.error)
        if info is None or info.domain != "baton.v1" or not info.reason:
            return f"{code.name} without a baton.v1 ErrorInfo: {outcome.details}"
    return None


def iter_pages(
    channel: grpc.Channel, rpc_path: str, request_class: Any, response_class: Any, items: str
) -> Iterator[Any]:
    """Every item of a List RPC, following next_page_token."""
    token = ""
    while True:
        request = request_class(page_size=1000, page_token=token)
        raw = channel.unary_unary(rpc_path)(request.SerializeToString(), timeout=UNARY_TIMEOUT_S)
        response = response_class.FromString(raw)
        yield from getattr(response, items)
        token = response.next_page_token
        if not token:
            return
