"""Follow streams (`ListEvents follow=true`) held by a client process: opened a bounded number
at a time, retried until caught up, each batch of events handed to a callback. Used by the
latency subscribers, the memory stream holders and the handoff console."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.clients import new_channel


@dataclass(slots=True)
class StreamStats:
    wanted: int
    caught_up: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    all_caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        if self.caught_up + self.failed >= self.wanted:
            self.all_caught_up.set()


# (stream index, events, live) -> is the stream done? `live`: received after caught_up.
OnEvents = Callable[[int, Sequence[Any], bool], bool]


async def follow_stream(
    index: int,
    stub: svc.EventServiceStub,
    session_id: str,
    gate: asyncio.Semaphore,
    stats: StreamStats,
    on_events: OnEvents,
    attempts: int = 4,
) -> None:
    """Opens a follow stream (at most `gate` opening at once, retried until caught up), then
    hands every batch of events to `on_events` until it says the stream is done."""
    min_offset = 0
    for attempt in range(attempts):
        opened = False
        await gate.acquire()
        call = stub.ListEvents(
            rr.ListEventsRequest(session_id=session_id, min_offset=min_offset, follow=True)
        )
        try:
            async for response in call:
                if response.events:
                    min_offset = response.events[-1].offset + 1
                    if on_events(index, response.events, opened):
                        return
                if response.caught_up and not opened:
                    opened = True
                    gate.release()
                    stats.caught_up += 1
                    stats.settle()
            if opened:
                return
            stats.errors.append("ENDED_BEFORE_CAUGHT_UP")
        except grpc.aio.AioRpcError as error:
            stats.errors.append(error.code().name)
            if opened:
                return
        finally:
            if not opened:
                gate.release()
            call.cancel()
        await asyncio.sleep(0.2 * (attempt + 1))
    stats.failed += 1
    stats.settle()


def start_streams(
    target: str,
    sessions: Sequence[str],
    per_channel: int,
    open_concurrency: int,
    on_events: OnEvents,
) -> tuple[StreamStats, list[asyncio.Task[None]], list[grpc.aio.Channel]]:
    """One follow stream per entry of `sessions`, `per_channel` streams on each connection."""
    channels = [new_channel(target) for _ in range(math.ceil(len(sessions) / per_channel))]
    stubs = [svc.EventServiceStub(channel) for channel in channels]
    stats = StreamStats(wanted=len(sessions))
    gate = asyncio.Semaphore(open_concurrency)
    tasks = [
        asyncio.create_task(follow_stream(i, stubs[i // per_channel], sid, gate, stats, on_events))
        for i, sid in enumerate(sessions)
    ]
    return stats, tasks, channels


async def stop_streams(tasks: list[asyncio.Task[None]], channels: list[grpc.aio.Channel]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()


async def wait_caught_up(stats: StreamStats, timeout_s: float) -> float:
    """Waits (bounded) until every stream caught up or failed; returns the seconds waited."""
    start = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.all_caught_up.wait(), timeout_s)
    return time.monotonic() - start
