"""bench.handoffs, figure 1: delivery latency of handoff changes on the operator inbox
(`WatchHandoffs`) vs the same lifecycle event on the session's own `ListEvents(follow=True)`.

A console process follows the inbox and a follow stream on each session; a driver process
requests and then claims a handoff on each session, one control RPC per interval (paced).
Latency = arrival of the change − the control RPC's return, both CLOCK_MONOTONIC.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.clients import create_sessions, gc_paused, new_channel
from bench.plans import HandoffPlan
from bench.server import Procs, Server
from bench.stats import CpuMeter, Figure, fmt, log, ratio, summarize_ms
from bench.streams import start_streams, stop_streams, wait_caught_up
from bench.worker import emit, stdin_reader

HANDOFF_PREFIX = "baton.handoff_"
CHANGE_NAMES = {
    pb.HANDOFF_CHANGE_TYPE_REQUESTED: "requested",
    pb.HANDOFF_CHANGE_TYPE_CLAIMED: "claimed",
}


def lifecycle(event: Any) -> tuple[str, str] | None:
    """(handoff id, change) of a handoff lifecycle event, e.g. ("hof_…", "claimed")."""
    if event.WhichOneof("data") != "custom":
        return None
    kind = event.custom.fields.get("type")
    if kind is None or not kind.string_value.startswith(HANDOFF_PREFIX):
        return None
    return event.custom["handoff_id"], kind.string_value[len(HANDOFF_PREFIX) :]


async def worker_console(config: dict[str, Any]) -> dict[str, Any]:
    """An operator console: the inbox stream plus a follow stream on every session. Records the
    arrival time (CLOCK_MONOTONIC) of each requested/claimed change on both paths; READY once
    all are caught up; after STOP, waits (bounded) for the rest, then reports."""
    inbox_at: dict[str, float] = {}  # "hof_…/claimed" -> arrival
    stream_at: dict[str, float] = {}
    expected = 2 * len(config["sessions"])
    done = asyncio.Event()

    def check_done() -> None:
        if len(inbox_at) >= expected and len(stream_at) >= expected:
            done.set()

    inbox_channel = new_channel(config["target"])
    inbox_caught_up = asyncio.Event()
    errors: list[str] = []
    positions: list[int] = []

    async def inbox() -> None:
        call = svc.HandoffServiceStub(inbox_channel).WatchHandoffs(
            rr.WatchHandoffsRequest(operator=pb.Participant(id="op-console", display_name="Con"))
        )
        try:
            async for response in call:
                now = time.monotonic()
                for change in response.changes:
                    name = CHANGE_NAMES.get(change.type)
                    positions.append(change.position)
                    if name:
                        inbox_at.setdefault(f"{change.handoff.id}/{name}", now)
                if response.caught_up:
                    inbox_caught_up.set()
                check_done()
        except grpc.aio.AioRpcError as error:
            errors.append(f"inbox {error.code().name}")

    def on_events(_index: int, events: Sequence[Any], live: bool) -> bool:
        now = time.monotonic()
        for event in events:
            found = lifecycle(event)
            if found and found[1] in ("requested", "claimed"):
                stream_at.setdefault(f"{found[0]}/{found[1]}", now)
        check_done()
        return False

    stats, tasks, channels = start_streams(
        config["target"], config["sessions"], 100, 100, on_events
    )
    inbox_task = asyncio.create_task(inbox())
    try:
        await wait_caught_up(stats, 120)
        await asyncio.wait_for(inbox_caught_up.wait(), 60)
        emit("READY", {"caught_up": stats.caught_up, "failed": stats.failed})
        reader = await stdin_reader()
        with gc_paused():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.readline(), 900)  # STOP
            stopped = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), config["drain_s"])
        drained_s = time.monotonic() - stopped
    finally:
        inbox_task.cancel()
        await asyncio.gather(inbox_task, return_exceptions=True)
        await inbox_channel.close()
        await stop_streams(tasks, channels)
    return {
        "inbox_at": inbox_at,
        "stream_at": stream_at,
        "drain_wait_s": round(drained_s, 2),
        "positions_in_order": positions == sorted(positions),
        "errors": errors + sorted(set(stats.errors)),
    }


async def worker_driver(config: dict[str, Any]) -> dict[str, Any]:
    """Requests, then claims, a handoff on each session, one control RPC per interval (paced,
    not a burst); records each RPC's send and return time."""
    calls: list[dict[str, Any]] = []
    async with new_channel(config["target"]) as channel:
        stub = svc.HandoffServiceStub(channel)
        interval = config["interval_s"]
        next_at = time.monotonic()
        with gc_paused():
            for index, session_id in enumerate(config["sessions"]):
                steps = ("requested", "claimed")
                handoff_id = ""
                for step in steps:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    sent = time.monotonic()
                    if step == "requested":
                        response = await stub.RequestHandoff(
                            rr.RequestHandoffRequest(session_id=session_id, reason="bench"),
                            timeout=30,
                        )
                    else:
                        response = await stub.ClaimHandoff(
                            rr.ClaimHandoffRequest(
                                handoff_id=handoff_id,
                                operator=pb.Participant(id=f"op-{index % 7}", display_name="Op"),
                            ),
                            timeout=30,
                        )
                    returned = time.monotonic()
                    handoff_id = response.handoff.id
                    calls.append(
                        {"key": f"{handoff_id}/{step}", "sent": sent, "returned": returned}
                    )
    return {"calls": calls}


def join_latencies(
    calls: list[dict[str, Any]], arrivals: dict[str, float]
) -> tuple[list[float], list[float], int]:
    """(ms from RPC return to arrival, ms from RPC send to arrival, missing) per call."""
    from_return, from_send, missing = [], [], 0
    for call in calls:
        at = arrivals.get(call["key"])
        if at is None:
            missing += 1
            continue
        from_return.append((at - call["returned"]) * 1000)
        from_send.append((at - call["sent"]) * 1000)
    return from_return, from_send, missing


async def bench_inbox(procs: Procs, server: Server, plan: HandoffPlan) -> list[Figure]:
    sessions = await create_sessions(server.target, plan.inbox_sessions, concurrency=16)
    console = await procs.worker(
        worker_console,
        {"target": server.target, "sessions": sessions, "drain_s": plan.inbox_drain_s},
    )
    ready = await console.expect("READY", timeout_s=180)
    log(f"inbox: console watching the inbox and {ready['caught_up']} session streams")
    meter = CpuMeter(server.pid)
    driver = await procs.worker(
        worker_driver,
        {"target": server.target, "sessions": sessions, "interval_s": plan.inbox_interval_s},
    )
    expected_s = 2 * len(sessions) * plan.inbox_interval_s
    driven = await driver.expect("RESULT", timeout_s=expected_s + 120)
    server_cpu = round(meter.percent(), 1)
    await console.send("STOP")
    seen = await console.expect("RESULT", timeout_s=plan.inbox_drain_s + 60)
    calls = driven["calls"]
    inbox_ret, inbox_sent, inbox_missing = join_latencies(calls, seen["inbox_at"])
    stream_ret, stream_sent, stream_missing = join_latencies(calls, seen["stream_at"])
    per_change = {}
    for change in ("requested", "claimed"):
        subset = [c for c in calls if c["key"].endswith("/" + change)]
        per_change[change] = {
            "inbox": summarize_ms(join_latencies(subset, seen["inbox_at"])[0]),
            "session_stream": summarize_ms(join_latencies(subset, seen["stream_at"])[0]),
        }
    inbox, stream = summarize_ms(inbox_ret), summarize_ms(stream_ret)
    log(
        f"  inbox p50/p99 {fmt(inbox['p50_ms'])}/{fmt(inbox['p99_ms'])} ms, session stream "
        f"{fmt(stream['p50_ms'])}/{fmt(stream['p99_ms'])} ms; missing {inbox_missing}/"
        f"{stream_missing}; drain wait {seen['drain_wait_s']} s; server CPU {server_cpu}%"
    )
    slow = sorted(inbox_ret)[-5:]
    details = {
        "control_rpcs": len(calls),
        "inbox": inbox,
        "session_stream": stream,
        "inbox_from_send": summarize_ms(inbox_sent),
        "session_stream_from_send": summarize_ms(stream_sent),
        "per_change": per_change,
        "inbox_missing": inbox_missing,
        "session_stream_missing": stream_missing,
        "inbox_slowest_ms": [round(v, 1) for v in slow],
        "inbox_over_1s": sum(1 for v in inbox_ret if v > 1000),
        "drain_wait_s": seen["drain_wait_s"],
        "positions_in_order": seen["positions_in_order"],
        "console_errors": seen["errors"],
        "server_cpu_pct": server_cpu,
        "rpc_latency": summarize_ms([(c["returned"] - c["sent"]) * 1000 for c in calls]),
    }
    figures = []
    for q in ("p50", "p99"):
        value, base = inbox[f"{q}_ms"], stream[f"{q}_ms"]
        r = ratio(value, base)
        figures.append(
            Figure(
                f"inbox_{q}",
                f"Inbox delivery {q}, {len(sessions)} sessions x (request + claim)",
                "ms",
                value,
                base,
                r if q == "p99" else None,  # p50s are ~0 ms, their ratio means nothing
                "context",
                None,
                details if q == "p99" else {},
            )
        )
    return figures
