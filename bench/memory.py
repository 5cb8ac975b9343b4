"""bench.run, figure 4: server memory per idle follow stream vs a bare grpc.aio streaming handler.

VmRSS of the server before and after a holder process opens `memory_streams` follow streams
(on `memory_sessions` sessions), each waited on until caught up, ÷ the streams opened.
Warm-up streams are opened first and stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.baseline import start_baseline
from bench.clients import create_sessions, fake_session_ids
from bench.plans import Plan
from bench.server import Proc, Procs, Server, start_baton
from bench.stats import Figure, fmt, log, ratio, rss_kib
from bench.streams import start_streams, stop_streams, wait_caught_up
from bench.worker import emit, stdin_reader


async def settled_rss_kib(pid: int, timeout_s: float = 10.0) -> int:
    """VmRSS once two readings 0.5 s apart differ by under 0.5 % (or at `timeout_s`)."""
    previous = rss_kib(pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = rss_kib(pid)
        if abs(current - previous) <= previous * 0.005:
            return current
        previous = current
    return previous


async def hold_streams(
    procs: Procs, server: Server, sessions: Sequence[str], count: int, plan: Plan
) -> tuple[Proc, dict[str, Any]]:
    streams = [sessions[i % len(sessions)] for i in range(count)]
    worker = await procs.worker(
        worker_hold,
        {
            "target": server.target,
            "sessions": streams,
            "per_channel": plan.streams_per_channel,
            "open_concurrency": 200,
            "open_timeout_s": 300,
            "hold_timeout_s": 900,
        },
    )
    ready = await worker.expect("READY", timeout_s=360)
    return worker, ready


async def measure_stream_memory(
    procs: Procs, server: Server, sessions: Sequence[str], plan: Plan
) -> dict[str, Any]:
    # Warm-up streams stay open, so one-time costs (connection pool, caches, code paths) are
    # paid before the "before" reading and freed memory is not recycled into the measurement.
    warm, warm_ready = await hold_streams(procs, server, sessions, plan.memory_warm_streams, plan)
    before = await settled_rss_kib(server.pid)
    hold, ready = await hold_streams(procs, server, sessions, plan.memory_streams, plan)
    after = await settled_rss_kib(server.pid)
    opened = ready["caught_up"]
    for worker in (hold, warm):
        await worker.send("STOP")
        await procs.stop(worker)
    return {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "streams": opened,
        "failed": ready["failed"],
        "open_s": round(ready["open_s"], 1),
        "warm_streams": warm_ready["caught_up"],
        "kib_per_stream": (after - before) / opened if opened else None,
    }


async def bench_memory(plan: Plan, workdir: Path) -> list[Figure]:
    async with Procs(workdir) as procs:
        log(f"memory: bare grpc.aio baseline, {plan.memory_streams:,} streams")
        server = await start_baseline(procs, "idle")
        base = await measure_stream_memory(
            procs, server, fake_session_ids(plan.memory_sessions), plan
        )
        await procs.stop(server.proc)
        log(f"  {fmt(base['kib_per_stream'])} KiB/stream")

        server = await start_baton(procs, workdir / "memory.db", "--dev")
        sessions = await create_sessions(server.target, plan.memory_sessions)
        log(f"memory: Baton, {plan.memory_streams:,} streams on {len(sessions):,} sessions")
        ours = await measure_stream_memory(procs, server, sessions, plan)
        log(f"  {fmt(ours['kib_per_stream'])} KiB/stream")
    value = ours["kib_per_stream"]
    return [
        Figure(
            "memory",
            f"Server memory per idle follow stream at {ours['streams']:,}",
            "KiB",
            value,
            base["kib_per_stream"],
            ratio(value, base["kib_per_stream"]),
            "<= 24 KiB",
            None if value is None else value <= 24,
            {"baton": ours, "baseline": base},
        )
    ]


async def worker_hold(config: dict[str, Any]) -> dict[str, Any]:
    """Opens idle follow streams, reports READY once all caught up, holds them until STOP."""
    stats, tasks, channels = start_streams(
        config["target"],
        config["sessions"],
        config["per_channel"],
        config["open_concurrency"],
        lambda _index, _events, _live: False,
    )
    try:
        open_s = await wait_caught_up(stats, config["open_timeout_s"])
        emit("READY", {"caught_up": stats.caught_up, "failed": stats.failed, "open_s": open_s})
        reader = await stdin_reader()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.readline(), config["hold_timeout_s"])
    finally:
        await stop_streams(tasks, channels)
    return {"errors": sorted(set(stats.errors))}
