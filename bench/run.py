#!/usr/bin/env python3
"""Baton benchmark suite: four figures, each measured against a baseline in the same run.

1. throughput  durable CreateEvent calls/s (64 concurrent clients) vs a no-op grpc.aio handler
2. latency     append→delivery p50/p99 on follow streams vs an in-memory grpc.aio fan-out
3. replay      catch-up replay of stored events (events/s) vs pre-built in-memory responses
4. memory      server RSS per idle follow stream vs a bare grpc.aio streaming handler

Every server (Baton via `baton serve`, and the baselines) runs in its own process, and every
client (load generator, subscribers, stream holders) in another, so a server and its client
each get a core. This file is both the orchestrator (`python bench/run.py [--quick]`) and the
code of those processes (`python bench/run.py _worker ROLE CONFIG.json`, internal).

See bench/README.md for what each figure means and the latest results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc

HOST = "127.0.0.1"
THIS_FILE = Path(__file__).resolve()
# Client channels: a local subchannel pool gives every channel its own TCP connection (by
# default grpc shares one connection between channels with the same target and options).
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
# Every appended event is a realistic chat message (~120 bytes of text) from a human agent.
# Not from the customer: a customer message starts an AI agent turn (server/baton_server/engine), which
# appends more events of its own; these benchmarks measure the event log, not the agent. Not
# from a human agent either: the first one on a session takes it over (handoff controls, their
# own transaction; measured by bench/handoffs.py). An AI-agent message is a plain append.
MESSAGE_TEXT = (
    "Thanks for waiting! I checked order 48213: the parcel left our warehouse this morning "
    "and should reach you by Thursday."
)
MESSAGE_SOURCE = pb.EVENT_SOURCE_AI_AGENT
PARTICIPANT = pb.Participant(id="agent-0042", display_name="Sam")


# =============================================================================================
# Plans: what a full and a quick run measure
# =============================================================================================


@dataclass(frozen=True, slots=True)
class LatencyScenario:
    key: str
    label: str
    sessions: int  # distinct sessions appended to
    streams_per_session: int  # follow streams on each of them
    rate: float  # appends per second, spread round-robin over the sessions


@dataclass(frozen=True, slots=True)
class Plan:
    # 1. throughput
    clients: int = 64
    client_channels: int = 2
    warmup_s: float = 2.0
    duration_s: float = 10.0
    # Baseline and Baton runs alternate this many times; a figure is the mean of the rounds.
    throughput_rounds: int = 3
    # 2. latency
    scenarios: tuple[LatencyScenario, ...] = (
        # Rates keep the baseline well below saturation on 2 cores: about 5,000 deliveries/s
        # for (a) and (b) (10,000/s already saturates a grpc.aio server here).
        LatencyScenario("a", "100 subscribers, 1 session", 1, 100, 50.0),
        LatencyScenario("b", "1,000 subscribers, 1 session", 1, 1000, 5.0),
        LatencyScenario("c", "1,000 sessions x 1 subscriber", 1000, 1, 200.0),
    )
    latency_warmup_s: float = 2.0
    latency_measure_s: float = 10.0
    # Baseline and Baton runs alternate this many times; a figure is each system's round with
    # the lowest p99.
    latency_rounds: int = 2
    streams_per_channel: int = 100
    # 3. replay
    replay_events: int = 100_000
    replay_runs: int = 3
    # 4. memory
    memory_streams: int = 10_000
    memory_warm_streams: int = 200
    memory_sessions: int = 1000


FULL_PLAN = Plan()
QUICK_PLAN = Plan(
    warmup_s=1.0,
    duration_s=3.0,
    throughput_rounds=1,
    latency_rounds=1,
    scenarios=(
        LatencyScenario("a", "50 subscribers, 1 session", 1, 50, 50.0),
        LatencyScenario("b", "200 subscribers, 1 session", 1, 200, 10.0),
        LatencyScenario("c", "100 sessions x 1 subscriber", 100, 1, 50.0),
    ),
    latency_warmup_s=1.0,
    latency_measure_s=3.0,
    replay_events=10_000,
    replay_runs=1,
    memory_streams=1000,
    memory_warm_streams=50,
    memory_sessions=100,
)


# =============================================================================================
# Small helpers
# =============================================================================================


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summarize_ms(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else None,
    }


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic-GC pauses inside a measuring client (its garbage is freed by refcounting), so
    client-side stalls do not pollute the latencies of either system."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def new_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)


def message_request(session_id: str, text: str) -> Any:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=MESSAGE_SOURCE,
        message=pb.MessageData(text=text, participant=PARTICIPANT),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU use of a process between construction and `percent()` (100 = one core)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._cpu = cpu_seconds(pid)
        self._wall = time.monotonic()

    def percent(self) -> float:
        return 100 * (cpu_seconds(self._pid) - self._cpu) / (time.monotonic() - self._wall)


# =============================================================================================
# Child processes
# =============================================================================================


class WorkerFailed(RuntimeError):
    pass


# Every child starts through this trampoline: it asks Linux to SIGKILL it when the orchestrator
# dies (even by SIGKILL; PR_SET_PDEATHSIG survives exec), then execs the real command. Not a
# preexec_fn: that forces fork(), whose grpc fork handlers can abort the child (epoll EBADF).
_TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit('orchestrator gone')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def with_trampoline(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-c", _TRAMPOLINE, str(os.getpid()), *argv]


@dataclass(slots=True)
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def expect(self, prefix: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        """Reads stdout until a line `PREFIX {json}`; returns the JSON. Fails on EOF/timeout."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerFailed(f"{self.name}: no {prefix} within {timeout:.0f}s")
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), 5)
                raise WorkerFailed(
                    f"{self.name} exited (code {self.process.returncode}) before {prefix}:\n"
                    f"{self.log_tail()}"
                )
            text = line.decode().strip()
            if text.startswith(prefix + " "):
                return dict(json.loads(text[len(prefix) + 1 :]))

    async def send(self, line: str) -> None:
        if self.process.stdin is not None and self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(line.encode() + b"\n")
                await self.process.stdin.drain()


class Procs:
    """Owns child processes; leaving the `async with` ends every one (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._procs: list[Proc] = []

    async def __aenter__(self) -> Procs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in reversed(self._procs):
            await self.stop(proc)
        self._procs.clear()

    async def spawn(self, name: str, argv: Sequence[str], *, pipes: bool = True) -> Proc:
        log_path = self._workdir / f"{name}-{len(self._procs)}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                *with_trampoline(argv),
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else log_file,
                stderr=log_file,
                limit=1 << 20,
            )
        proc = Proc(name, process, log_path)
        self._procs.append(proc)
        return proc

    async def worker(self, role: str, config: dict[str, Any]) -> Proc:
        config_path = self._workdir / f"{role}-{len(self._procs)}.json"
        config_path.write_text(json.dumps(config))
        return await self.spawn(
            role, [sys.executable, str(THIS_FILE), "_worker", role, str(config_path)]
        )

    async def stop(self, proc: Proc, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        process = proc.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout)
        if proc in self._procs:
            self._procs.remove(proc)


@dataclass(frozen=True, slots=True)
class Server:
    proc: Proc
    target: str

    @property
    def pid(self) -> int:
        return self.proc.pid


async def wait_serving(proc: Proc, target: str, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.returncode is not None:
            raise WorkerFailed(f"{proc.name} exited at start-up:\n{proc.log_tail()}")
        async with new_channel(target) as channel:
            with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
                await asyncio.wait_for(channel.channel_ready(), 1.0)
                return
        await asyncio.sleep(0.2)
    raise WorkerFailed(f"{proc.name} not serving after {timeout:.0f}s:\n{proc.log_tail()}")


def baton_command() -> list[str]:
    script = Path(sys.executable).with_name("baton")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from baton_server.cli import main; main()"]


async def start_baton(procs: Procs, db_path: Path) -> Server:
    port = free_port()
    argv = [
        *baton_command(),
        "serve",
        "--host", HOST,
        "--port", str(port),
        "--database", f"sqlite+aiosqlite:///{db_path}",
        "--log-level", "WARNING",
        "--dev",  # the benchmarks send no credentials
    ]  # fmt: skip
    proc = await procs.spawn("baton", argv, pipes=False)
    target = f"{HOST}:{port}"
    await wait_serving(proc, target, timeout=60)
    return Server(proc, target)


async def start_baseline(procs: Procs, mode: str, **config: Any) -> Server:
    proc = await procs.worker("baseline-server", {"mode": mode, **config})
    ready = await proc.expect("READY", timeout=120)
    target = f"{HOST}:{ready['port']}"
    await wait_serving(proc, target, timeout=30)
    return Server(proc, target)


# =============================================================================================
# Baton set-up through the public API
# =============================================================================================


async def create_sessions(target: str, count: int, concurrency: int = 32) -> list[str]:
    """Creates one agent, one customer and `count` sessions; returns the session ids."""
    async with new_channel(target) as channel:
        agent = await svc.AgentServiceStub(channel).CreateAgent(
            rr.CreateAgentRequest(agent=pb.Agent(name="bench agent")), timeout=30
        )
        customer = await svc.CustomerServiceStub(channel).CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name="bench customer")), timeout=30
        )
        sessions = svc.SessionServiceStub(channel)
        request = rr.CreateSessionRequest(
            session=pb.Session(agent_id=agent.agent.id, customer_id=customer.customer.id)
        )
        gate = asyncio.Semaphore(concurrency)

        async def one() -> str:
            async with gate:
                response = await sessions.CreateSession(request, timeout=60)
                return str(response.session.id)

        return list(await asyncio.gather(*(one() for _ in range(count))))


def fake_session_ids(count: int) -> list[str]:
    """Ids shaped like Baton's, for baselines that keep no sessions."""
    return [f"ses_{uuid.uuid4().hex}" for _ in range(count)]


# =============================================================================================
# Results
# =============================================================================================


@dataclass(slots=True)
class Figure:
    key: str
    title: str
    unit: str
    baton: float | None
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def render_table(figures: Sequence[Figure]) -> str:
    header = ("Figure", "Baton", "Baseline", "Ratio", "Goal", "Met?")
    rows = [header]
    for f in figures:
        met = "n/a" if f.met is None else ("yes" if f.met else "NO")
        rows.append(
            (
                f"{f.title} [{f.unit}]",
                fmt(f.baton),
                fmt(f.baseline),
                fmt(f.ratio, 2),
                f.goal,
                met,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# =============================================================================================
# Figure 1: durable CreateEvent throughput vs a no-op unary handler
# =============================================================================================


async def run_load(
    procs: Procs, server: Server, sessions: Sequence[str], plan: Plan
) -> dict[str, Any]:
    """Runs the load-generator process against `server`; adds the server's CPU use."""
    worker = await procs.worker(
        "load",
        {
            "target": server.target,
            "sessions": list(sessions),
            "channels": plan.client_channels,
            "warmup_s": plan.warmup_s,
            "duration_s": plan.duration_s,
            "text": MESSAGE_TEXT,
        },
    )
    await worker.expect("MEASURING", timeout=60)
    meter = CpuMeter(server.pid)
    result = await worker.expect("RESULT", timeout=plan.duration_s + 60)
    result["server_cpu_pct"] = round(meter.percent(), 1)
    await procs.stop(worker)
    return result


async def bench_throughput(plan: Plan, workdir: Path) -> list[Figure]:
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "own": [], "shared": []}
    async with Procs(workdir) as procs:
        noop = await start_baseline(procs, "noop")
        baton = await start_baton(procs, workdir / "throughput.db")
        sessions = await create_sessions(baton.target, plan.clients + 1)
        loads = {
            "baseline": (noop, fake_session_ids(plan.clients)),
            "own": (baton, sessions[: plan.clients]),
            "shared": (baton, [sessions[-1]] * plan.clients),
        }
        for round_no in range(1, plan.throughput_rounds + 1):
            for name, (server, session_ids) in loads.items():
                result = await run_load(procs, server, session_ids, plan)
                runs[name].append(result)
                log(
                    f"throughput round {round_no}/{plan.throughput_rounds}, {name}: "
                    f"{result['calls_per_s']:,.0f} calls/s "
                    f"(server CPU {result['server_cpu_pct']}%, "
                    f"client CPU {result['client_cpu_pct']}%)"
                )

    def mean_rate(name: str) -> float:
        return sum(r["calls_per_s"] for r in runs[name]) / len(runs[name])

    base = mean_rate("baseline")
    figures = []
    for name, title in (
        ("own", f"CreateEvent, {plan.clients} clients, own sessions"),
        ("shared", f"CreateEvent, {plan.clients} clients, shared session"),
    ):
        value = mean_rate(name)
        r = ratio(value, base)
        figures.append(
            Figure(
                f"throughput_{name}",
                title,
                "calls/s",
                value,
                base,
                r,
                ">= 0.70x",
                None if r is None else r >= 0.70,
                {"baton": runs[name], "baseline": runs["baseline"]},
            )
        )
    return figures


async def worker_load(config: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop load: one task per session id, each awaiting CreateEvent in a loop."""
    channels = [new_channel(config["target"]) for _ in range(config["channels"])]
    stubs = [svc.EventServiceStub(channel) for channel in channels]
    requests = [message_request(sid, config["text"]) for sid in config["sessions"]]
    start = time.monotonic()
    window_start = start + config["warmup_s"]
    window_end = window_start + config["duration_s"]
    latencies: list[float] = []
    errors: list[str] = []

    async def client(index: int) -> None:
        stub, request = stubs[index % len(stubs)], requests[index]
        while (sent := time.monotonic()) < window_end:
            try:
                await stub.CreateEvent(request, timeout=30)
            except grpc.aio.AioRpcError as error:
                errors.append(error.code().name)
                await asyncio.sleep(0.05)
                continue
            done = time.monotonic()
            if window_start <= done <= window_end:
                latencies.append((done - sent) * 1000)

    async def announce() -> None:
        await asyncio.sleep(max(0.0, window_start - time.monotonic()))
        emit("MEASURING", {})

    cpu0 = time.process_time()
    announcer = asyncio.create_task(announce())
    with gc_paused():
        await asyncio.wait_for(
            asyncio.gather(*(client(i) for i in range(len(requests)))),
            timeout=config["warmup_s"] + config["duration_s"] + 60,
        )
    await announcer
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


# =============================================================================================
# Follow streams (shared by the latency subscribers and the memory stream holders)
# =============================================================================================


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


async def wait_caught_up(stats: StreamStats, timeout: float) -> float:  # noqa: ASYNC109
    start = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.all_caught_up.wait(), timeout)
    return time.monotonic() - start


# =============================================================================================
# Figure 2: append→delivery latency vs an in-memory grpc.aio fan-out
# =============================================================================================

# Appended message texts: "bench <phase> <monotonic_ns at send>", phase in warm|measure|end.


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
        "subscribe",
        {
            "target": server.target,
            "sessions": streams,
            "per_channel": plan.streams_per_channel,
            "open_concurrency": 200,
            "open_timeout_s": 180,
            "end_timeout_s": plan.latency_warmup_s + plan.latency_measure_s + 120,
        },
    )
    ready = await subscriber.expect("READY", timeout=240)
    if ready["caught_up"] < len(streams):
        raise WorkerFailed(f"only {ready['caught_up']}/{len(streams)} streams opened: {ready}")
    await asyncio.sleep(0.5)
    meter = CpuMeter(server.pid)
    appends = await drive_appends(
        server.target, sessions, scenario.rate, plan.latency_warmup_s, plan.latency_measure_s
    )
    server_cpu = meter.percent()
    result = await subscriber.expect("RESULT", timeout=240)
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
            "baton": await start_baton(procs, workdir / "latency.db"),
        }
        for scenario in plan.scenarios:
            sessions = {
                "baseline": fake_session_ids(scenario.sessions),
                "baton": await create_sessions(servers["baton"].target, scenario.sessions),
            }
            for round_no in range(1, plan.latency_rounds + 1):
                for system, server in servers.items():
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
                    f"Delivery {q} ({scenario.key}) {scenario.label}, {scenario.rate:g} appends/s",
                    "ms",
                    ours["latency"][f"{q}_ms"],
                    base["latency"][f"{q}_ms"],
                    r,
                    "<= 1.25x" if is_p99 else "(context)",
                    (None if r is None else r <= 1.25) if is_p99 else None,
                    details if is_p99 else {},
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


# =============================================================================================
# Figure 3: catch-up replay vs pre-built in-memory responses
# =============================================================================================


async def worker_populate(config: dict[str, Any]) -> dict[str, Any]:
    """Fills a fresh database with one session of `events` events, in-process and concurrently
    through Baton's own durable append path (its group-commit writer), without gRPC overhead.
    The event is the one CreateEvent would append for `message_request(...)`."""
    from baton_server.api.mapping import draft_from_request
    from baton_server.app import BatonApp
    from baton_server.config import Settings

    settings = Settings(host=HOST, port=0, database_url=config["database_url"], dev_mode=True)
    app = BatonApp(settings)
    port = await app.start()
    try:
        (session_id,) = await create_sessions(f"{HOST}:{port}", 1)
        draft = draft_from_request(message_request(session_id, config["text"]))
        start = time.monotonic()
        remaining, wave = config["events"], 2000
        while remaining > 0:
            count = min(wave, remaining)
            await asyncio.wait_for(
                asyncio.gather(
                    *(app.repository.append_event(session_id, draft) for _ in range(count))
                ),
                120,
            )
            remaining -= count
        seconds = time.monotonic() - start
    finally:
        await app.stop(grace=5)
    return {
        "session_id": session_id,
        "events": config["events"],
        "seconds": round(seconds, 2),
        "appends_per_s": round(config["events"] / seconds),
    }


async def worker_replay(config: dict[str, Any]) -> dict[str, Any]:
    """Reads a whole session (follow=false) and times it from request to end of stream."""
    async with new_channel(config["target"]) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = svc.EventServiceStub(channel)
        emit("MEASURING", {})
        runs = []
        for _ in range(config["runs"]):
            events = messages = size = 0
            start = time.monotonic()
            call = stub.ListEvents(
                rr.ListEventsRequest(session_id=config["session_id"], min_offset=0),
                timeout=300,
            )
            with gc_paused():
                async for response in call:
                    messages += 1
                    events += len(response.events)
                    if messages == 2:  # one typical message's size, to compare the payloads
                        size = response.ByteSize() / max(1, len(response.events))
            seconds = time.monotonic() - start
            runs.append(
                {
                    "events": events,
                    "messages": messages,
                    "seconds": round(seconds, 3),
                    "events_per_s": round(events / seconds),
                    "bytes_per_event": round(size, 1),
                }
            )
    best = sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2]
    return {"median": best, "runs": runs}


async def bench_replay(plan: Plan, workdir: Path) -> list[Figure]:
    db_path = workdir / "replay.db"
    async with Procs(workdir) as procs:
        log(f"replay: populating {plan.replay_events:,} events (not timed)")
        populate = await procs.worker(
            "populate",
            {
                "database_url": f"sqlite+aiosqlite:///{db_path}",
                "events": plan.replay_events,
                "text": MESSAGE_TEXT,
            },
        )
        filled = await populate.expect("RESULT", timeout=600)
        await procs.stop(populate)
        log(f"  {filled['appends_per_s']:,} appends/s in-process")

        server = await start_baseline(
            procs, "replay", events=plan.replay_events + 1, text=MESSAGE_TEXT
        )
        base = await run_replay(procs, server, fake_session_ids(1)[0], plan)
        await procs.stop(server.proc)
        log(f"  baseline {base['median']['events_per_s']:,} events/s")

        server = await start_baton(procs, db_path)
        ours = await run_replay(procs, server, filled["session_id"], plan)
        log(f"  Baton {ours['median']['events_per_s']:,} events/s")
    value = ours["median"]["events_per_s"]
    return [
        Figure(
            "replay",
            f"Catch-up replay of {ours['median']['events']:,} events",
            "events/s",
            value,
            base["median"]["events_per_s"],
            ratio(value, base["median"]["events_per_s"]),
            ">= 100,000 events/s",
            value >= 100_000,
            {"baton": ours, "baseline": base, "populate": filled},
        )
    ]


async def run_replay(procs: Procs, server: Server, session_id: str, plan: Plan) -> dict[str, Any]:
    worker = await procs.worker(
        "replay", {"target": server.target, "session_id": session_id, "runs": plan.replay_runs}
    )
    await worker.expect("MEASURING", timeout=60)
    meter = CpuMeter(server.pid)
    result = await worker.expect("RESULT", timeout=600)
    result["server_cpu_pct"] = round(meter.percent(), 1)
    await procs.stop(worker)
    return result


# =============================================================================================
# Figure 4: server memory per idle follow stream vs a bare grpc.aio streaming handler
# =============================================================================================


async def settled_rss_kib(pid: int, timeout: float = 10.0) -> int:  # noqa: ASYNC109
    """VmRSS once two readings 0.5 s apart differ by under 0.5 % (or at `timeout`)."""
    previous = rss_kib(pid)
    deadline = time.monotonic() + timeout
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
        "hold",
        {
            "target": server.target,
            "sessions": streams,
            "per_channel": plan.streams_per_channel,
            "open_concurrency": 200,
            "open_timeout_s": 300,
            "hold_timeout_s": 900,
        },
    )
    ready = await worker.expect("READY", timeout=360)
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

        server = await start_baton(procs, workdir / "memory.db")
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


# =============================================================================================
# Baseline server: the same EventService, minimal and in memory
# =============================================================================================

_CAUGHT_UP = rr.ListEventsResponse(caught_up=True)
_EMPTY_CREATE = rr.CreateEventResponse()


def now_timestamp() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def prebuilt_replay(events: int, text: str, batch: int = 100) -> list[Any]:
    """ListEventsResponses of `batch` events each, shaped like Baton's (ids, times, text)."""
    session_id = f"ses_{uuid.uuid4().hex}"
    created = now_timestamp()

    def event(offset: int) -> Any:
        event_id = f"evt_{uuid.uuid4().hex}"
        return pb.Event(
            id=event_id,
            session_id=session_id,
            offset=offset,
            kind=pb.EVENT_KIND_MESSAGE,
            source=MESSAGE_SOURCE,
            created_at=created,
            correlation_id=event_id,
            message=pb.MessageData(text=text, participant=PARTICIPANT),
        )

    return [
        rr.ListEventsResponse(events=[event(o) for o in range(start, min(events, start + batch))])
        for start in range(0, events, batch)
    ]


class BaselineEventService(svc.EventServiceServicer):
    """modes: noop (CreateEvent returns an empty response), fanout (CreateEvent fans the event
    out to follow streams through asyncio queues), replay (ListEvents streams pre-built
    responses), idle (ListEvents sends caught_up, then awaits forever)."""

    def __init__(self, mode: str, replay: list[Any]) -> None:
        self._mode = mode
        self._replay = replay
        self._next_offset: dict[str, int] = {}
        self._queues: dict[str, set[asyncio.Queue[Any]]] = {}

    async def CreateEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self._mode != "fanout":
            return _EMPTY_CREATE
        session_id = request.session_id
        offset = self._next_offset.get(session_id, 1)
        self._next_offset[session_id] = offset + 1
        event_id = f"evt_{uuid.uuid4().hex}"
        event = pb.Event(
            id=event_id,
            session_id=session_id,
            offset=offset,
            kind=request.kind,
            source=request.source,
            created_at=now_timestamp(),
            correlation_id=request.correlation_id or event_id,  # as Baton does
            message=request.message,
        )
        for queue in self._queues.get(session_id, ()):
            queue.put_nowait(event)
        return rr.CreateEventResponse(event=event)

    async def ListEvents(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        if not request.follow:
            for response in self._replay:
                yield response
            return
        if self._mode == "idle":
            yield _CAUGHT_UP
            await asyncio.get_running_loop().create_future()
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queues = self._queues.setdefault(request.session_id, set())
        queues.add(queue)
        try:
            yield _CAUGHT_UP
            while True:
                events = [await queue.get()]
                while not queue.empty():
                    events.append(queue.get_nowait())
                yield rr.ListEventsResponse(events=events)
        finally:
            queues.discard(queue)


async def worker_baseline_server(config: dict[str, Any]) -> dict[str, Any]:
    mode = config["mode"]
    replay = prebuilt_replay(config["events"], config["text"]) if mode == "replay" else []
    # The same stream limits as Baton's server, nothing else.
    server = grpc.aio.server(
        options=[
            ("grpc.max_concurrent_streams", 100_000),
            ("grpc.server.max_pending_requests", 1_000_000),
            ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
        ]
    )
    svc.add_EventServiceServicer_to_server(BaselineEventService(mode, replay), server)
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emit("READY", {"port": port})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), 3600)
    await server.stop(1)
    return {}


# =============================================================================================
# Worker entry point
# =============================================================================================


def emit(kind: str, payload: dict[str, Any]) -> None:
    print(f"{kind} {json.dumps(payload)}", flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


WORKERS = {
    "baseline-server": worker_baseline_server,
    "load": worker_load,
    "subscribe": worker_subscribe,
    "hold": worker_hold,
    "populate": worker_populate,
    "replay": worker_replay,
}


def worker_main(role: str, config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    try:
        result = asyncio.run(WORKERS[role](config))
    except Exception:
        traceback.print_exc()
        return 1
    emit("RESULT", result)
    return 0


# =============================================================================================
# Orchestrator
# =============================================================================================

BENCHES = {
    "throughput": bench_throughput,
    "latency": bench_latency,
    "replay": bench_replay,
    "memory": bench_memory,
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Baton benchmarks, each figure against a baseline measured in the same run."
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1.5 min)")
    parser.add_argument(
        "--only",
        default=",".join(BENCHES),
        help=f"comma-separated figures to run (default: all of {','.join(BENCHES)})",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="folder for databases and logs")
    parser.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    parser.add_argument(
        "--duration", type=float, help="override the throughput measuring window (seconds)"
    )
    return parser.parse_args(argv)


async def run_benches(names: Sequence[str], plan: Plan, workdir: Path) -> list[Figure]:
    # SIGTERM/SIGHUP cancel the run like Ctrl-C does, so every child process is still ended.
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    figures: list[Figure] = []
    for name in names:
        meter = OtherCpuMeter()
        new = await BENCHES[name](plan, workdir)
        other = meter.cores()
        for figure in new:
            figure.details["other_processes_cores"] = round(other, 2)
        figures.extend(new)
        log(f"{name} done in {meter.elapsed():.0f}s; other processes used {other:.2f} cores")
    return figures


class OtherCpuMeter:
    """CPU used by processes outside this run (machine total minus this process and its reaped
    children), in cores: anything well above 0 makes the figures noisier."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), self._machine_busy(), self._ours())

    @staticmethod
    def _machine_busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def elapsed(self) -> float:
        return time.monotonic() - self._start[0]

    def cores(self) -> float:
        wall, busy, ours = self._start
        other = (self._machine_busy() - busy) - (self._ours() - ours)
        return max(0.0, other) / (time.monotonic() - wall)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["_worker"]:
        return worker_main(argv[1], argv[2])
    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown figure(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.duration:
        plan = replace(plan, duration_s=args.duration)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="baton-bench-"))
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
    print(render_table(figures))
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
