"""A tool worker driven by hand over the raw ServeTools stream, for server tests: it records the
calls and cancels it receives, and answers only when the test says so (or through `auto`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format

from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc

Answer = Callable[[rr.ToolCallRequest], Awaitable[rr.ToolCallResult | None]]

OBJECT = {"type": "object", "properties": {}, "additionalProperties": True}


def declared(
    name: str, *, timeout_s: float | None = None, retry_safe: bool = False, **schema: Any
) -> rr.ToolDeclaration:
    tool = rr.ToolDeclaration(name=name, description=f"{name}, served by a test worker")
    json_format.ParseDict({**OBJECT, **schema}, tool.parameters)
    if timeout_s is not None:
        tool.timeout.FromMilliseconds(int(timeout_s * 1000))
    tool.retry_safe = retry_safe
    return tool


def result(call: rr.ToolCallRequest, data: Any = None, **fields: Any) -> rr.ToolCallResult:
    answer = rr.ToolCallResult(call_id=call.call_id, **fields)
    if data is not None:
        json_format.ParseDict(data, answer.data)
    return answer


class RawWorker:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        tools: list[rr.ToolDeclaration],
        *,
        limit: int = 1,
        name: str = "test-worker",
        auto: Answer | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._stub = svc.ToolWorkerServiceStub(channel)
        self._declaration = rr.WorkerDeclaration(
            worker_name=name, tools=tools, max_concurrent_calls=limit
        )
        self._auto = auto
        self._metadata = metadata
        self.calls: asyncio.Queue[rr.ToolCallRequest] = asyncio.Queue()
        self.received: list[rr.ToolCallRequest] = []
        self.cancels: list[rr.ToolCallCancel] = []
        self.accepted: rr.WorkerAccepted | None = None
        self.ended: grpc.StatusCode | None = None
        # Calls received and not yet answered or cancelled, and the most there ever were.
        self.outstanding: set[str] = set()
        self.most_outstanding = 0
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self) -> rr.WorkerAccepted:
        """Opens the stream and declares; returns the server's `accepted` (or raises its
        error)."""
        self._call = self._stub.ServeTools(metadata=self._metadata)
        await self._call.write(rr.ServeToolsRequest(declare=self._declaration))
        first = await self._call.read()
        if first is grpc.aio.EOF:
            await self._call  # raises the status that ended it
            raise AssertionError("stream ended without a status")
        self.accepted = first.accepted
        self._reader = asyncio.create_task(self._read())
        return self.accepted

    async def _read(self) -> None:
        try:
            while True:
                message = await self._call.read()
                if message is grpc.aio.EOF:
                    break
                kind = message.WhichOneof("kind")
                if kind == "call":
                    self.received.append(message.call)
                    self.outstanding.add(message.call.call_id)
                    self.most_outstanding = max(self.most_outstanding, len(self.outstanding))
                    if self._auto is not None:
                        task = asyncio.create_task(self._answer_with(message.call))
                        self._answering.add(task)
                        task.add_done_callback(self._answering.discard)
                    else:
                        self.calls.put_nowait(message.call)
                elif kind == "cancel":
                    self.cancels.append(message.cancel)
                    self.outstanding.discard(message.cancel.call_id)
            self.ended = await self._call.code()
        except grpc.aio.AioRpcError as error:
            self.ended = error.code()

    async def _answer_with(self, call: rr.ToolCallRequest) -> None:
        assert self._auto is not None
        answer = await self._auto(call)
        if answer is not None:
            await self.send(rr.ServeToolsRequest(result=answer))

    async def next_call(self, timeout: float = 10.0) -> rr.ToolCallRequest:
        async with asyncio.timeout(timeout):
            return await self.calls.get()

    async def send(self, request: rr.ServeToolsRequest) -> None:
        if request.WhichOneof("kind") == "result":
            self.outstanding.discard(request.result.call_id)
        await self._call.write(request)

    async def answer(self, call: rr.ToolCallRequest, data: Any = None, **fields: Any) -> None:
        await self.send(rr.ServeToolsRequest(result=result(call, data, **fields)))

    async def drain(self) -> None:
        await self.send(rr.ServeToolsRequest(drain=rr.WorkerDrain()))

    async def finish(self) -> grpc.StatusCode | None:
        """Half-closes (a graceful stop) and waits for the server to end the stream."""
        await self._call.done_writing()
        if self._reader is not None:
            async with asyncio.timeout(10):
                await self._reader
        return self.ended

    async def cut(self) -> None:
        """Drops the stream abruptly (a crashed worker)."""
        self._call.cancel()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def close(self) -> None:
        if self._call is not None and not self._call.done():
            await self.cut()
        for task in list(self._answering):
            task.cancel()
