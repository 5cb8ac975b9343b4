"""bench.unauthenticated's load: anonymous ~4 MB CreateEvent requests, pre-serialized, looped by
concurrent clients in a worker process, and the payloads they send."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from bench.worker import emit

CREATE_EVENT = "/baton.v1.EventService/CreateEvent"
PAYLOADS = ("text", "struct")
LOAD_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 8 << 20),
    ("grpc.max_receive_message_length", 8 << 20),
    ("grpc.use_local_subchannel_pool", 1),  # each client its own TCP connection
]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def build_payload(kind: str, size: int) -> bytes:
    """A serialized CreateEventRequest of at most `size` bytes (a few bytes under, at most)."""
    if kind == "text":
        request = rr.CreateEventRequest(
            session_id="ses_bench",
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_CUSTOMER,
            message=pb.MessageData(text="x"),
        )
        for _ in range(8):  # the length varints settle within two steps
            deficit = size - request.ByteSize()
            if deficit == 0:
                break
            length = max(1, len(request.message.text) + deficit)
            request.message.text = "x" * length
        return request.SerializeToString()
    if kind == "struct":
        # Encoded by hand (building the Struct through the API takes seconds): the map entries
        # `k<i>: "v"` of google.protobuf.Struct field 1, concatenated, as CreateEventRequest
        # field 7 (`custom`), after the other fields.
        head = rr.CreateEventRequest(
            session_id="ses_bench", kind=pb.EVENT_KIND_CUSTOM, source=pb.EVENT_SOURCE_CUSTOMER
        ).SerializeToString()
        value = b"\x12\x03\x1a\x01v"  # Value{string_value: "v"} as the entry's field 2
        entries: list[bytes] = []
        body_size = 0
        for i in itertools.count():
            key = f"k{i}".encode()
            entry = b"\x0a" + _varint(len(key)) + key + value
            item = b"\x0a" + _varint(len(entry)) + entry
            total = len(head) + 1 + len(_varint(body_size + len(item))) + body_size + len(item)
            if total > size:
                break
            entries.append(item)
            body_size += len(item)
        body = b"".join(entries)
        data = head + b"\x3a" + _varint(len(body)) + body
        decoded = rr.CreateEventRequest.FromString(data)
        assert len(decoded.custom.fields) == len(entries), "struct payload mis-encoded"
        return data
    raise ValueError(f"unknown payload {kind!r}")


async def worker_anonymous_load(config: dict[str, Any]) -> dict[str, Any]:
    """`clients` connections, each looping an anonymous CreateEvent of the payload until STOP
    arrives on stdin. Prints `READY {...}` once every client has had an answer; returns every
    call as (start, end, code) on CLOCK_MONOTONIC."""
    payload = build_payload(config["payload"], config["size"])
    timeout_s = float(config["timeout_s"])
    channels = [
        grpc.aio.insecure_channel(config["target"], options=LOAD_CHANNEL_OPTIONS)
        for _ in range(config["clients"])
    ]
    calls: list[tuple[float, float, str]] = []
    first_details: dict[str, str] = {}
    stop = asyncio.Event()
    answered = [asyncio.Event() for _ in channels]

    async def client(index: int) -> None:
        call = channels[index].unary_unary(CREATE_EVENT)  # bytes in, bytes out
        while not stop.is_set():
            started = time.monotonic()
            try:
                await call(payload, timeout=timeout_s)
                code = "OK"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
                first_details.setdefault(code, (error.details() or "")[:200])
            calls.append((started, time.monotonic(), code))
            answered[index].set()

    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), timeout=60)
        tasks = [asyncio.create_task(client(i)) for i in range(len(channels))]
        await asyncio.wait_for(asyncio.gather(*(a.wait() for a in answered)), timeout=240)
        emit("READY", {"payload_bytes": len(payload)})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # STOP, or EOF if orphaned
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=timeout_s + 10)
        for task in pending:
            task.cancel()
    finally:
        for channel in channels:
            await channel.close()
    return {"calls": calls, "first_details": first_details}
