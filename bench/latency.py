"""bench.run, figure 2: append→delivery latency vs an in-memory grpc.aio fan-out.

Follow streams (opened and caught up before measuring, in one subscriber process) receive
appends sent open-loop at a steady rate by the orchestrator. Latency = arrival time at the
subscriber − send time stamped in the message text (CLOCK_MONOTONIC, same machine).
Appended message texts: "bench <phase> <monotonic_ns at send>", phase in warm|measure|end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from baton.v1 import service_pb2_grpc as svc
from bench.baseline import start_baseline
from bench.clients import create_sessions, fake_session_ids, gc_paused, message_request, new_channel
from bench.plans import LatencyScenario, Plan
from bench.server import Procs, Server, WorkerFailed, figure_database, start_baton
from bench.stats import CpuMeter, Figure, fmt, log, ratio, summarize_ms
from bench.streams import start_streams, stop_streams, wait_caught_up
from bench.worker import emit


async def drive_appends(
    target: str, sessions: Sequence[str], rate: float, warm_s: float, measure_s: float
) -> dict[str, Any]:
    """Open-loop appends at `rate`/s, round-robin over `sessions`, then one `end` per session."""
    n_warm, n_measure = int(rate * warm_s), int(rate * measure_s)
    latencies: list[float] = []
    errors: list[str] = []
    in_flight = asyncio.Semaphore(2000)
    async with new_channel(target) as channel:
        stub = svc.EventServiceStub(channel)

        async def append(session_id: str, phase: str) -> None:
            async with in_flight:
                sent = time.monotonic_ns()
                try:
                    await stub.CreateEvent(
                        message_request(session_id, f"bench {phase} {sent}"), timeout=60
                    )
                except grpc.aio.AioRpcError as error:
                    errors.append(error.code().name)
                    return
                if phase == "measure":
                    latencies.append((time.monotonic_ns() - sent) / 1e6)

        tasks = []
        with gc_paused():
            start = time.monotonic()
            for i in range(n_warm + n_measure):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                phase = "warm" if i < n_warm else "measure"
                tasks.append(asyncio.create_task(append(sessions[i % len(sessions)], phase)))
            lag = time.monotonic() - (start + (n_warm + n_measure - 1) / rate)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
        await asyncio.wait_for(asyncio.gather(*(append(s, "end") for s in set(sessions))), 120)
    per_session = [0] * len(sessions)
    for i in range(n_warm, n_warm + n_measure):
        per_session[i % len(sessions)] += 1
    return {
        "appends": n_measure,
        "per_session": dict(zip(sessions, per_session, strict=True)),
        "errors": len(errors),
        "append_rtt": summarize_ms(latencies),
        "schedule_lag_ms": round(lag * 1000, 1),
    }


async def run_latency_scenario(
    procs: Procs,
    server: Server,
    sessions: Sequence[str],
    scenario: LatencyScenario,
    plan: Plan,
) -> dict[str, Any]:
    streams = [sid for sid in sessions for _ in range(scenario.streams_per_session)]
    subscriber = await procs.worker(
        worker_subscribe,
        {
            "target": server.target,
            "sessions": streams,
            "per_channel": plan.streams_per_channel,
            "open_concurrency": 200,
            "open_timeout_s": 180,
            "end_timeout_s": plan.latency_warmup_s + plan.latency_measure_s + 120,
        },
    )
    ready = await subscriber.expect("READY", timeout_s=240)
    if ready["caught_up"] < len(streams):
        raise WorkerFailed(f"only {ready['caught_up']}/{len(streams)} streams opened: {ready}")
    await asyncio.sleep(0.5)
    meter = CpuMeter(server.pid)
    appends = await drive_appends(
        server.target, sessions, scenario.rate, plan.latency_warmup_s, plan.latency_measure_s
    )
    server_cpu = meter.percent()
    result = await subscriber.expect("RESULT", timeout_s=240)
    await procs.stop(subscriber)
    expected = sum(appends["per_session"][sid] for sid in streams)
    result.update(
        expected=expected,
        appends=appends["appends"],
        append_errors=appends["errors"],
        append_rtt=appends["append_rtt"],
        schedule_lag_ms=appends["schedule_lag_ms"],
        server_cpu_pct=round(server_cpu, 1),
        open_s=ready["open_s"],
    )
    return result


async def bench_latency(plan: Plan, workdir: Path) -> list[Figure]:
    """Both servers stay up; for each scenario the baseline and Baton runs alternate
    (plan.latency_rounds times, on the same sessions). Each system's figure is its round with
    the lowest p99: one scheduling stall of a noisy 2-core machine moves a p99 by 100s of ms."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    async with Procs(workdir) as procs:
        servers = {
            "baseline": await start_baseline(procs, "fanout"),
            "baton": await start_baton(
                procs, await figure_database(plan.postgres_admin_url, workdir, "latency"), "--dev"
            ),
        }
        if any(s.durable_floor for s in plan.scenarios):
            servers["durable"] = await start_baseline(
                procs, "durable_fanout", database=str(workdir / "durable-floor.db")
            )
        for scenario in plan.scenarios:
            sessions = {
                "baseline": fake_session_ids(scenario.sessions),
                "durable": fake_session_ids(scenario.sessions),
                "baton": await create_sessions(servers["baton"].target, scenario.sessions),
            }
            systems = [
                (system, server)
                for system, server in servers.items()
                if system != "durable" or scenario.durable_floor
            ]
            for round_no in range(1, plan.latency_rounds + 1):
                for system, server in systems:
                    result = await run_latency_scenario(
                        procs, server, sessions[system], scenario, plan
                    )
                    runs.setdefault((scenario.key, system), []).append(result)
                    log(
                        f"latency {scenario.key} ({scenario.label}), round {round_no}/"
                        f"{plan.latency_rounds}, {system}: {_p50_p99(result)}"
                    )

    figures = []
    for scenario in plan.scenarios:
        ours = min(runs[(scenario.key, "baton")], key=_p99)
        base = min(runs[(scenario.key, "baseline")], key=_p99)
        for q in ("p50", "p99"):
            r = ratio(ours["latency"][f"{q}_ms"], base["latency"][f"{q}_ms"])
            is_p99 = q == "p99"
            details = {
                "baton_rounds": runs[(scenario.key, "baton")],
                "baseline_rounds": runs[(scenario.key, "baseline")],
            }
            figures.append(
                Figure(
                    f"latency_{scenario.key}_{q}",
                    f"Delivery {q} ({scenario.key}) {scenario.label}, {scenario.rate:g} appends/s"
                    + (f" [{plan.backend}]" if plan.postgres_admin_url else ""),
                    "ms",
                    ours["latency"][f"{q}_ms"],
                    base["latency"][f"{q}_ms"],
                    r,
                    "<= 1.25x" if is_p99 else "(context)",
                    (None if r is None else r <= 1.25) if is_p99 else None,
                    details if is_p99 else {},
                )
            )
        if scenario.durable_floor:
            durable = min(runs[(scenario.key, "durable")], key=_p99)
            p99 = durable["latency"]["p99_ms"]
            figures.append(
                Figure(
                    f"latency_{scenario.key}_durable_floor_p99",
                    f"Context ({scenario.key}): the in-memory fan-out plus one durable SQLite "
                    "commit per append, p99",
                    "ms",
                    p99,
                    base["latency"]["p99_ms"],
                    ratio(p99, base["latency"]["p99_ms"]),
                    "none",
                    None,
                    {"durable_rounds": runs[(scenario.key, "durable")]},
                )
            )
    return figures


def _p99(result: dict[str, Any]) -> float:
    value = result["latency"]["p99_ms"]
    return math.inf if value is None else float(value)


def _p50_p99(result: dict[str, Any]) -> str:
    lat = result["latency"]
    return (
        f"{fmt(lat['p50_ms'], 2)} / {fmt(lat['p99_ms'], 2)} ms "
        f"({lat['count']}/{result['expected']} delivered, server CPU {result['server_cpu_pct']}%)"
    )


async def worker_subscribe(config: dict[str, Any]) -> dict[str, Any]:
    """Follow streams that time-stamp every `bench measure` event on arrival."""
    latencies: list[float] = []
    ended = asyncio.Event()
    streams_left = [len(config["sessions"])]

    def on_events(_index: int, events: Sequence[Any], live: bool) -> bool:
        if not live:  # history, e.g. an earlier round's events on the same session
            return False
        now = time.monotonic_ns()
        done = False
        for event in events:
            parts = event.message.text.split(" ")
            if len(parts) != 3 or parts[0] != "bench":
                continue
            if parts[1] == "measure":
                latencies.append((now - int(parts[2])) / 1e6)
            elif parts[1] == "end":
                done = True
        if done:
            streams_left[0] -= 1
            if streams_left[0] == 0:
                ended.set()
        return done

    stats, tasks, channels = start_streams(
        config["target"],
        config["sessions"],
        config["per_channel"],
        config["open_concurrency"],
        on_events,
    )
    try:
        open_s = await wait_caught_up(stats, config["open_timeout_s"])
        emit("READY", {"caught_up": stats.caught_up, "failed": stats.failed, "open_s": open_s})
        cpu0, wall0 = time.process_time(), time.monotonic()
        with gc_paused(), contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), config["end_timeout_s"])
        client_cpu = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
    finally:
        await stop_streams(tasks, channels)
    return {
        "latency": summarize_ms(latencies),
        "streams_ended": len(config["sessions"]) - streams_left[0],
        "stream_errors": sorted(set(stats.errors)),
        "client_cpu_pct": round(client_cpu, 1),
    }
