#!/usr/bin/env python3
"""Handoff and auth benchmarks: three figures, each against a baseline measured in the same run.

1. inbox   delivery latency of handoff changes on the operator inbox (`WatchHandoffs`) vs the
           same lifecycle event on the session's own `ListEvents(follow=True)` stream
2. race    20 operators racing `ClaimHandoff` for one handoff (wall time, exactly one winner)
           vs one uncontended `ClaimHandoff`
3. auth    CreateEvent throughput with API-key auth (integration key) vs the same server with
           `--dev`

Same house style as bench/run.py (whose process helpers it uses): `baton serve` in its own
process on a free port, client load in separate processes, progress on stderr, a table on
stdout, `--json`, bounded waits, every child ended on exit. This file is both the orchestrator
(`python bench/handoffs.py [--quick]`) and its workers (`... _worker ROLE CONFIG.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as core  # bench/run.py: process and measuring helpers

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_server.config import Settings

THIS_FILE = Path(__file__).resolve()
HOST = core.HOST
log, emit, fmt, ratio = core.log, core.emit, core.fmt, core.ratio
Figure, Procs, Server, WorkerFailed = core.Figure, core.Procs, core.Server, core.WorkerFailed
percentile, summarize_ms = core.percentile, core.summarize_ms
HANDOFF_PREFIX = "baton.handoff_"
CHANGE_NAMES = {
    pb.HANDOFF_CHANGE_TYPE_REQUESTED: "requested",
    pb.HANDOFF_CHANGE_TYPE_CLAIMED: "claimed",
}


@dataclass(frozen=True, slots=True)
class Plan:
    # 1. inbox: request, then claim, a handoff on each session, one control RPC per interval.
    inbox_sessions: int = 200
    inbox_interval_s: float = 0.025
    inbox_drain_s: float = 20.0  # longer than the server's 15 s heartbeat (the inbox re-reads)
    # 2. race: `race_handoffs` races of `race_operators`, alternating with as many single claims.
    race_handoffs: int = 50
    race_operators: int = 20
    # 3. auth: closed-loop CreateEvent clients, each on its own session.
    auth_clients: int = 32
    auth_channels: int = 2
    auth_warmup_s: float = 2.0
    auth_duration_s: float = 10.0
    auth_rounds: int = 3  # --dev and auth alternate; a figure is the mean of the rounds


FULL_PLAN = Plan()
QUICK_PLAN = Plan(
    inbox_sessions=40,
    race_handoffs=10,
    auth_clients=16,
    auth_warmup_s=1.0,
    auth_duration_s=3.0,
    auth_rounds=1,
)


# =============================================================================================
# Servers
# =============================================================================================


async def start_baton(procs: Procs, db_path: Path, *flags: str) -> Server:
    """`baton serve` on SQLite; `flags` e.g. `--dev` (bench/run.py's start_baton always sets it)."""
    port = core.free_port()
    argv = [
        *core.baton_command(),
        "serve",
        "--host", HOST,
        "--port", str(port),
        "--database", f"sqlite+aiosqlite:///{db_path}",
        "--log-level", "WARNING",
        *flags,
    ]  # fmt: skip
    proc = await procs.spawn(f"baton-{db_path.stem}", argv, pipes=False)
    target = f"{HOST}:{port}"
    await core.wait_serving(proc, target, timeout=60)
    return Server(proc, target)


def create_key(db_path: Path, role: str) -> str:
    """`baton keys create` on the database (before the server starts); returns the secret."""
    done = subprocess.run(
        [
            *core.baton_command(),
            "keys",
            "create",
            "--role",
            role,
            "--name",
            "bench",
            "--database",
            f"sqlite+aiosqlite:///{db_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    secret = done.stdout.strip().splitlines()[-1]
    if not secret.startswith("bk_"):
        raise WorkerFailed(f"baton keys create printed no secret:\n{done.stdout}{done.stderr}")
    return secret


def bearer(secret: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {secret}"),) if secret else None


async def create_sessions(target: str, count: int, secret: str | None = None) -> list[str]:
    """One agent, one customer and `count` sessions through the API; the session ids."""
    metadata = bearer(secret)
    async with core.new_channel(target) as channel:
        agent = await svc.AgentServiceStub(channel).CreateAgent(
            rr.CreateAgentRequest(agent=pb.Agent(name="bench agent")),
            timeout=30,
            metadata=metadata,
        )
        customer = await svc.CustomerServiceStub(channel).CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name="bench customer")),
            timeout=30,
            metadata=metadata,
        )
        sessions = svc.SessionServiceStub(channel)
        request = rr.CreateSessionRequest(
            session=pb.Session(agent_id=agent.agent.id, customer_id=customer.customer.id)
        )
        gate = asyncio.Semaphore(16)

        async def one() -> str:
            async with gate:
                response = await sessions.CreateSession(request, timeout=60, metadata=metadata)
                return str(response.session.id)

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def worker(procs: Procs, role: str, config: dict[str, Any]) -> core.Proc:
    path = procs._workdir / f"{role}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config))
    return await procs.spawn(role, [sys.executable, str(THIS_FILE), "_worker", role, str(path)])


# =============================================================================================
# Figure 1: inbox delivery latency vs the session's own follow stream
# =============================================================================================


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

    inbox_channel = core.new_channel(config["target"])
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

    stats, tasks, channels = core.start_streams(
        config["target"], config["sessions"], 100, 100, on_events
    )
    inbox_task = asyncio.create_task(inbox())
    try:
        await core.wait_caught_up(stats, 120)
        await asyncio.wait_for(inbox_caught_up.wait(), 60)
        emit("READY", {"caught_up": stats.caught_up, "failed": stats.failed})
        reader = await core.stdin_reader()
        with core.gc_paused():
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
        await core.stop_streams(tasks, channels)
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
    async with core.new_channel(config["target"]) as channel:
        stub = svc.HandoffServiceStub(channel)
        interval = config["interval_s"]
        next_at = time.monotonic()
        with core.gc_paused():
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


async def bench_inbox(procs: Procs, server: Server, plan: Plan) -> list[Figure]:
    sessions = await create_sessions(server.target, plan.inbox_sessions)
    console = await worker(
        procs,
        "console",
        {"target": server.target, "sessions": sessions, "drain_s": plan.inbox_drain_s},
    )
    ready = await console.expect("READY", timeout=180)
    log(f"inbox: console watching the inbox and {ready['caught_up']} session streams")
    meter = core.CpuMeter(server.pid)
    driver = await worker(
        procs,
        "driver",
        {"target": server.target, "sessions": sessions, "interval_s": plan.inbox_interval_s},
    )
    expected_s = 2 * len(sessions) * plan.inbox_interval_s
    driven = await driver.expect("RESULT", timeout=expected_s + 120)
    server_cpu = round(meter.percent(), 1)
    await console.send("STOP")
    seen = await console.expect("RESULT", timeout=plan.inbox_drain_s + 60)
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


# =============================================================================================
# Figure 2: claim race vs one uncontended claim
# =============================================================================================


def claimed_events(events: Sequence[Any], handoff_id: str) -> int:
    return sum(1 for e in events if lifecycle(e) == (handoff_id, "claimed"))


async def worker_race(config: dict[str, Any]) -> dict[str, Any]:
    """Alternates: one handoff claimed by one operator (baseline), one raced by N operators,
    each operator on its own connection. Then checks every race had exactly one winner, the
    handoff names it, and the session log holds exactly one claim."""
    operators = config["operators"]
    channels = [core.new_channel(config["target"]) for _ in range(operators)]
    stubs = [svc.HandoffServiceStub(c) for c in channels]
    events = svc.EventServiceStub(channels[0])
    single_ms: list[float] = []
    races: list[dict[str, Any]] = []

    async def request(session_id: str) -> str:
        response = await stubs[0].RequestHandoff(
            rr.RequestHandoffRequest(session_id=session_id, reason="race"), timeout=30
        )
        return str(response.handoff.id)

    async def claim(index: int, handoff_id: str) -> tuple[str, float, float]:
        started = time.monotonic()
        try:
            await stubs[index].ClaimHandoff(
                rr.ClaimHandoffRequest(
                    handoff_id=handoff_id,
                    operator=pb.Participant(id=f"op-{index}", display_name=f"Operator {index}"),
                ),
                timeout=60,
            )
            outcome = "OK"
        except grpc.aio.AioRpcError as error:
            outcome = error.code().name
        return outcome, started, time.monotonic()

    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        with core.gc_paused():
            for single_session, race_session in zip(
                config["single_sessions"], config["race_sessions"], strict=True
            ):
                handoff_id = await request(single_session)
                await asyncio.sleep(0.02)
                outcome, started, ended = await claim(0, handoff_id)
                if outcome != "OK":
                    raise RuntimeError(f"uncontended claim failed: {outcome}")
                single_ms.append((ended - started) * 1000)

                handoff_id = await request(race_session)
                await asyncio.sleep(0.02)
                results = await asyncio.gather(*(claim(i, handoff_id) for i in range(operators)))
                winners = [i for i, r in enumerate(results) if r[0] == "OK"]
                races.append(
                    {
                        "handoff_id": handoff_id,
                        "session_id": race_session,
                        "wall_ms": (max(r[2] for r in results) - min(r[1] for r in results)) * 1000,
                        "winner_ms": (results[winners[0]][2] - results[winners[0]][1]) * 1000
                        if winners
                        else None,
                        "winners": winners,
                        "losers": sorted({r[0] for r in results if r[0] != "OK"}),
                    }
                )
        for race in races:  # verification, not timed
            handoff = (
                await stubs[0].GetHandoff(rr.GetHandoffRequest(handoff_id=race["handoff_id"]))
            ).handoff
            log_events = []
            async for response in events.ListEvents(
                rr.ListEventsRequest(session_id=race["session_id"]), timeout=30
            ):
                log_events.extend(response.events)
            winner = race["winners"][0] if len(race["winners"]) == 1 else None
            race["ok"] = (
                winner is not None
                and race["losers"] == ["FAILED_PRECONDITION"]
                and handoff.state == pb.HANDOFF_STATE_CLAIMED
                and handoff.operator.id == f"op-{winner}"
                and claimed_events(log_events, race["handoff_id"]) == 1
            )
    finally:
        for channel in channels:
            await channel.close()
    return {"single_ms": single_ms, "races": races}


async def bench_race(procs: Procs, server: Server, plan: Plan) -> list[Figure]:
    sessions = await create_sessions(server.target, 2 * plan.race_handoffs)
    log(f"race: {plan.race_handoffs} races of {plan.race_operators} operators")
    meter = core.CpuMeter(server.pid)
    racer = await worker(
        procs,
        "race",
        {
            "target": server.target,
            "operators": plan.race_operators,
            "single_sessions": sessions[: plan.race_handoffs],
            "race_sessions": sessions[plan.race_handoffs :],
        },
    )
    result = await racer.expect("RESULT", timeout=300)
    server_cpu = round(meter.percent(), 1)
    races = result["races"]
    wall = summarize_ms([r["wall_ms"] for r in races])
    winner = summarize_ms([r["winner_ms"] for r in races if r["winner_ms"] is not None])
    single = summarize_ms(result["single_ms"])
    exact = sum(1 for r in races if r["ok"])
    log(
        f"  race wall p50/p99 {fmt(wall['p50_ms'])}/{fmt(wall['p99_ms'])} ms, single claim "
        f"{fmt(single['p50_ms'])}/{fmt(single['p99_ms'])} ms; exactly one winner in "
        f"{exact}/{len(races)}"
    )
    details = {
        "race_wall": wall,
        "race_winner_call": winner,
        "single_claim": single,
        "races": len(races),
        "races_with_exactly_one_winner": exact,
        "bad_races": [r for r in races if not r["ok"]],
        "server_cpu_pct": server_cpu,
    }
    figures = []
    for q in ("p50", "p99"):
        value, base = wall[f"{q}_ms"], single[f"{q}_ms"]
        figures.append(
            Figure(
                f"race_{q}",
                f"Claim race of {plan.race_operators}, wall {q}",
                "ms",
                value,
                base,
                ratio(value, base),
                "context",
                None,
                details if q == "p99" else {},
            )
        )
    figures.append(
        Figure(
            "race_winners",
            "Races with exactly one winner",
            "races",
            exact,
            len(races),
            ratio(exact, len(races)),
            "all",
            exact == len(races),
            {},
        )
    )
    return figures


# =============================================================================================
# Figure 3: CreateEvent throughput with API-key auth vs --dev
# =============================================================================================


async def worker_load(config: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop CreateEvent, one task per session (bench/run.py's load, plus credentials)."""
    metadata = bearer(config.get("secret"))
    channels = [core.new_channel(config["target"]) for _ in range(config["channels"])]
    stubs = [svc.EventServiceStub(channel) for channel in channels]
    requests = [core.message_request(sid, core.MESSAGE_TEXT) for sid in config["sessions"]]
    for request in requests:
        request.source = config.get("source", request.source)
    start = time.monotonic()
    window_start = start + config["warmup_s"]
    window_end = window_start + config["duration_s"]
    latencies: list[float] = []
    errors: list[str] = []

    async def client(index: int) -> None:
        stub, request = stubs[index % len(stubs)], requests[index]
        while (sent := time.monotonic()) < window_end:
            try:
                await stub.CreateEvent(request, timeout=30, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                errors.append(error.code().name)
                await asyncio.sleep(0.05)
                continue
            done = time.monotonic()
            if window_start <= done <= window_end:
                latencies.append((done - sent) * 1000)

    cpu0 = time.process_time()
    with core.gc_paused():
        await asyncio.wait_for(
            asyncio.gather(*(client(i) for i in range(len(requests)))),
            timeout=config["warmup_s"] + config["duration_s"] + 60,
        )
    cpu = time.process_time() - cpu0
    for channel in channels:
        await channel.close()
    return {
        "calls_per_s": len(latencies) / config["duration_s"],
        "calls": len(latencies),
        "errors": len(errors),
        "error_codes": sorted(set(errors)),
        "call_latency": summarize_ms(latencies),
        "client_cpu_pct": round(100 * cpu / (time.monotonic() - start), 1),
    }


async def run_load(
    procs: Procs,
    server: Server,
    sessions: list[str],
    secret: str | None,
    plan: Plan,
    source: int = pb.EVENT_SOURCE_AI_AGENT,
) -> dict[str, Any]:
    load = await worker(
        procs,
        "load",
        {
            "target": server.target,
            "sessions": sessions,
            "secret": secret,
            "source": source,
            "channels": plan.auth_channels,
            "warmup_s": plan.auth_warmup_s,
            "duration_s": plan.auth_duration_s,
        },
    )
    meter = core.CpuMeter(server.pid)
    result = await load.expect("RESULT", timeout=plan.auth_warmup_s + plan.auth_duration_s + 90)
    result["server_cpu_pct"] = round(meter.percent(), 1)  # includes the warm-up
    await procs.stop(load)
    return result


async def bench_auth(procs: Procs, workdir: Path, plan: Plan) -> list[Figure]:
    auth_db, dev_db = workdir / "auth.db", workdir / "dev.db"
    secret = await asyncio.to_thread(create_key, auth_db, "integration")
    # Default limits (a per-key rate limit) could cap the key; the figure is auth's cost.
    auth = await start_baton(procs, auth_db, "--rate-limit", "0")
    dev = await start_baton(procs, dev_db, "--dev")
    systems: dict[str, tuple[Server, list[str], str | None]] = {
        "dev": (dev, await create_sessions(dev.target, plan.auth_clients), None),
        "auth": (auth, await create_sessions(auth.target, plan.auth_clients, secret), secret),
    }
    runs: dict[str, list[dict[str, Any]]] = {"dev": [], "auth": []}
    for round_no in range(1, plan.auth_rounds + 1):
        for name, (server, sessions, key) in systems.items():
            result = await run_load(procs, server, sessions, key, plan)
            runs[name].append(result)
            latency = result["call_latency"]
            log(
                f"auth round {round_no}/{plan.auth_rounds}, {name}: "
                f"{result['calls_per_s']:,.0f} calls/s, p50/p99 {fmt(latency['p50_ms'])}/"
                f"{fmt(latency['p99_ms'])} ms, errors {result['errors']} "
                f"(server CPU {result['server_cpu_pct']}%, client {result['client_cpu_pct']}%)"
            )
    await procs.stop(auth.proc)
    # Context: the same key with the default per-key limits (one round, not in the ratio).
    limited = await start_baton(procs, auth_db)
    default_limits = await run_load(procs, limited, systems["auth"][1], secret, plan)
    await procs.stop(limited.proc)
    log(
        f"auth with default limits: {default_limits['calls_per_s']:,.0f} calls/s, "
        f"{default_limits['errors']} errors {default_limits['error_codes']}"
    )
    # Context: human agents' messages. The first on each session takes it over (the handoff
    # controls' own transaction, during the warm-up); the holder's next ones ride the group
    # commit with a holder check (server/baton_server/store/appender.py).
    human = await run_load(procs, dev, systems["dev"][1], None, plan, pb.EVENT_SOURCE_HUMAN_AGENT)
    log(
        f"--dev, human-agent messages: {human['calls_per_s']:,.0f} calls/s, p50/p99 "
        f"{fmt(human['call_latency']['p50_ms'])}/{fmt(human['call_latency']['p99_ms'])} ms"
    )

    def mean(name: str, pick: Any) -> float:
        return sum(pick(r) for r in runs[name]) / len(runs[name])

    rate = {n: mean(n, lambda r: r["calls_per_s"]) for n in runs}
    p50 = {n: mean(n, lambda r: r["call_latency"]["p50_ms"]) for n in runs}
    p99 = {n: mean(n, lambda r: r["call_latency"]["p99_ms"]) for n in runs}
    r = ratio(rate["auth"], rate["dev"])
    details = {
        "auth": runs["auth"],
        "dev": runs["dev"],
        "auth_default_limits": default_limits,
        "dev_human_agent_messages": human,
    }
    title = f"CreateEvent, {plan.auth_clients} clients, API key vs --dev"
    return [
        Figure(
            "auth_throughput",
            title,
            "calls/s",
            rate["auth"],
            rate["dev"],
            r,
            ">= 0.90x",
            None if r is None else r >= 0.90,
            details,
        ),
        Figure(
            "auth_p50",
            "  call latency p50",
            "ms",
            p50["auth"],
            p50["dev"],
            ratio(p50["auth"], p50["dev"]),
            "context",
            None,
            {},
        ),
        Figure(
            "auth_p99",
            "  call latency p99",
            "ms",
            p99["auth"],
            p99["dev"],
            ratio(p99["auth"], p99["dev"]),
            "context",
            None,
            {},
        ),
        Figure(
            "auth_default_limits",
            f"  same key, default rate limit ({Settings().rate_limit_per_s:,.0f}/s)",
            "calls/s",
            default_limits["calls_per_s"],
            rate["dev"],
            ratio(default_limits["calls_per_s"], rate["dev"]),
            "context",
            None,
            {},
        ),
        Figure(
            "dev_human_messages",
            "  --dev, human-agent messages (the holder's)",
            "calls/s",
            human["calls_per_s"],
            rate["dev"],
            ratio(human["calls_per_s"], rate["dev"]),
            "context",
            None,
            {},
        ),
    ]


# =============================================================================================
# Orchestrator
# =============================================================================================

WORKERS = {
    "console": worker_console,
    "driver": worker_driver,
    "race": worker_race,
    "load": worker_load,
}
BENCHES = ("inbox", "race", "auth")


async def run_benches(names: Sequence[str], plan: Plan, workdir: Path) -> list[Figure]:
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    figures: list[Figure] = []
    async with Procs(workdir) as procs:
        if "inbox" in names or "race" in names:
            meter = core.OtherCpuMeter()
            server = await start_baton(procs, workdir / "handoffs.db", "--dev")
            for name, bench in (("inbox", bench_inbox), ("race", bench_race)):
                if name in names:
                    new = await bench(procs, server, plan)
                    new[-1].details["other_processes_cores"] = round(meter.cores(), 2)
                    figures.extend(new)
                    log(f"{name} done at {meter.elapsed():.0f}s")
            await procs.stop(server.proc)
        if "auth" in names:
            meter = core.OtherCpuMeter()
            new = await bench_auth(procs, workdir, plan)
            new[0].details["other_processes_cores"] = round(meter.cores(), 2)
            figures.extend(new)
            log(f"auth done in {meter.elapsed():.0f}s; other processes {meter.cores():.2f} cores")
    return figures


def worker_main(role: str, config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    try:
        result = asyncio.run(WORKERS[role](config))
    except Exception:
        traceback.print_exc()
        return 1
    emit("RESULT", result)
    return 0


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["_worker"]:
        return worker_main(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 min)")
    parser.add_argument("--only", default=",".join(BENCHES), help="any of inbox,race,auth")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="folder for databases and logs")
    parser.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    parser.add_argument(
        "--inbox-interval", type=float, help="seconds between control RPCs in figure 1"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := [n for n in names if n not in BENCHES]:
        print(f"unknown figure(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.inbox_interval is not None:
        plan = replace(plan, inbox_interval_s=args.inbox_interval)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="baton-handoffs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"workdir {workdir} ({'quick' if args.quick else 'full'} run, {os.cpu_count()} CPUs)")
    started = time.monotonic()
    try:
        figures = asyncio.run(run_benches(names, plan, workdir))
    except WorkerFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; child processes ended", file=sys.stderr)
        return 130
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(core.render_table(figures))
    print(f"\n({'quick' if args.quick else 'full'} run, {elapsed:.0f}s)")
    if args.json:
        report = {
            "quick": args.quick,
            "seconds": round(elapsed, 1),
            "plan": asdict(plan),
            "figures": [asdict(f) for f in figures],
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
