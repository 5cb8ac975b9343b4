#!/usr/bin/env python3
"""Unauthenticated requests (issue 12, finding 6): what anonymous ~4 MB requests cost the server.

Before the fix (77c1379) the server decoded each request, and walked every string field of it
for NUL characters, BEFORE authenticating it: anonymous callers could make it do ~0.6 s of
work per 4 MB request, on the event loop, and every other call waited behind that. Now the auth
interceptor runs first and refuses an anonymous call from its metadata, before decoding; failed
authentications are also counted per peer address, and once a peer's burst is spent, credentials
that need a database lookup get RESOURCE_EXHAUSTED.

One run of this script starts a real `baton serve` (WITHOUT `--dev`, temp SQLite file,
`--port 0`, the port read from its log) and measures, against that one server:

1. bad-key probe  `--probe-calls` sequential tiny CreateEvent calls, each with another made-up
                  API key (the status codes in order: the failure limiter shows here);
2. idle           `--health-calls` sequential `grpc.health.v1.Health/Check` calls (open
                  service, no credentials), p50/p99;
3. loaded         the same while `--clients` concurrent clients (one process, own connection
                  each) loop anonymous `baton.v1.EventService/CreateEvent` calls of `--size`
                  bytes (default 3.9 MB, under the server's 4 MiB limit), for each `--payloads`:
                  `text`   one CreateEventRequest with a 3.9 MB message.text;
                  `struct` a CUSTOM event whose Struct holds ~250,000 small string fields
                           (what makes decoding and the NUL walk expensive);
                  plus the anonymous calls' own latency, rate and status codes, and the server's
                  CPU during the measurement.

Idle and loaded phases alternate `--rounds` times; figures pool the rounds' samples and the
ratio is loaded/idle of the health p50 and p99.

    .venv/bin/python bench/unauthenticated.py --label after           # the working tree
    .venv/bin/python bench/unauthenticated.py --label before \\
        --baton "/work/main/.venv/bin/python -m baton_server" --pythonpath /tmp/oldpath

Progress on stderr, a table on stdout; each run is appended to `--json` (default
bench/results-unauthenticated.json; `--fresh` starts the file over). Every child is ended on
exit (and gets PR_SET_PDEATHSIG); every wait is bounded. The script is also its own load
worker (`... _load CONFIG.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr

THIS_FILE = Path(__file__).resolve()
REPO = THIS_FILE.parent.parent
HOST = "127.0.0.1"
CREATE_EVENT = "/baton.v1.EventService/CreateEvent"
DEFAULT_JSON = REPO / "bench" / "results-unauthenticated.json"
DEFAULT_BATON = REPO / ".venv" / "bin" / "baton"
PAYLOADS = ("text", "struct")
LOAD_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 8 << 20),
    ("grpc.max_receive_message_length", 8 << 20),
    ("grpc.use_local_subchannel_pool", 1),  # each client its own TCP connection
]
_STARTED = time.monotonic()


class BenchFailed(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# =============================================================================================
# Measuring helpers
# =============================================================================================


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
        "mean_ms": sum(values) / len(values) if values else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runs_of(codes: Sequence[str]) -> list[list[Any]]:
    """["A", "A", "B"] -> [["A", 2], ["B", 1]]: status codes in the order they came."""
    runs: list[list[Any]] = []
    for code in codes:
        if runs and runs[-1][0] == code:
            runs[-1][1] += 1
        else:
            runs.append([code, 1])
    return runs


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic-GC pauses in the measuring client while it measures."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "loadavg_at_start": list(os.getloadavg()),
        "note": "2-core VM, noisy (shared host): single figures move run to run",
    }


# =============================================================================================
# Payloads
# =============================================================================================


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


# =============================================================================================
# Child processes
# =============================================================================================

# Every child starts through this trampoline: it asks Linux to SIGKILL it when this process
# dies (PR_SET_PDEATHSIG survives exec), then execs the real command (same pid).
_TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit('orchestrator gone')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@dataclass(slots=True)
class Child:
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

    async def line_starting(self, prefix: str, timeout_s: float) -> str:
        """The rest of the first stdout line starting with `prefix`; fails on EOF or timeout."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchFailed(f"{self.name}: no {prefix!r} within {timeout_s:.0f} s")
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                raise BenchFailed(f"{self.name} exited before {prefix!r}:\n{self.log_tail()}")
            text = line.decode().rstrip("\n")
            if text.startswith(prefix):
                return text[len(prefix) :]

    async def send(self, line: str) -> None:
        if self.process.stdin is not None and self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(line.encode() + b"\n")
                await self.process.stdin.drain()


@dataclass(slots=True)
class Children:
    """Owns the child processes; `close()` ends each one it started (SIGTERM, then SIGKILL)."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        pipes: bool = False,
    ) -> Child:
        executable = shutil.which(argv[0])
        if executable is None:
            raise BenchFailed(f"{argv[0]!r} not found")
        log_path = self.workdir / f"{name}-{len(self.children)}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(os.getpid()),
                executable,
                *argv[1:],
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else log_file,
                stderr=log_file,
                env=env,
                cwd=self.workdir,
                limit=1 << 22,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    async def stop(self, child: Child, timeout_s: float = 20.0) -> None:
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout_s)
        if child in self.children:
            self.children.remove(child)

    async def close(self) -> None:
        for child in reversed(list(self.children)):
            await self.stop(child)


# =============================================================================================
# The server
# =============================================================================================

LISTENING = re.compile(rb"baton listening on \S+?:(\d+) ")


@dataclass(frozen=True, slots=True)
class Server:
    child: Child
    target: str
    argv: list[str]

    @property
    def pid(self) -> int:
        return self.child.pid


async def start_server(children: Children, args: argparse.Namespace) -> Server:
    """`baton serve` without --dev on a fresh SQLite file, `--port 0`; the port from its log."""
    db_path = children.workdir / "baton.db"
    argv = [
        *shlex.split(args.baton),
        "serve",
        "--host", HOST,
        "--port", "0",
        "--database", f"sqlite+aiosqlite:///{db_path}",
        "--nlp", "offline",
        "--log-level", "INFO",  # the "listening on HOST:PORT" line is INFO
    ]  # fmt: skip
    # Nothing from this shell's environment may change the server (BATON_DEV=1 would turn
    # authentication off).
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.pop("OPENAI_API_KEY", None)
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.pythonpath, os.environ.get("PYTHONPATH", "")) if p
        )
    else:
        env.pop("PYTHONPATH", None)
    child = await children.spawn("baton", argv, env=env)
    deadline = time.monotonic() + 90
    port = 0
    while not port:
        if child.process.returncode is not None:
            raise BenchFailed(f"baton exited at start-up:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchFailed(f"baton did not report its port within 90 s:\n{child.log_tail()}")
        match = LISTENING.search(child.log_path.read_bytes())
        if match:
            port = int(match.group(1))
        else:
            await asyncio.sleep(0.1)
    target = f"{HOST}:{port}"
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise BenchFailed(f"baton at {target} is not SERVING: {response}")
    return Server(child, target, argv)


async def quiesce(server: Server, timeout_s: float = 30.0) -> float:
    """Waits (bounded) until the server uses < 10 % of a core over 0.5 s; returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_seconds(server.pid)
        await asyncio.sleep(0.5)
        if (cpu_seconds(server.pid) - before) / 0.5 < 0.10:
            break
    return time.monotonic() - started


# =============================================================================================
# Measurements (orchestrator side)
# =============================================================================================


async def health_latencies(
    stub: health_pb2_grpc.HealthStub, calls: int, max_s: float
) -> tuple[list[float], Counter[str]]:
    """Latencies [ms] of `calls` sequential health checks (fewer if `max_s` runs out)."""
    request = health_pb2.HealthCheckRequest(service="")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + max_s
    with gc_paused():
        for _ in range(calls):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                await stub.Check(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies, errors


async def bad_key_probe(target: str, calls: int) -> dict[str, Any]:
    """Sequential tiny CreateEvent calls, each with another made-up API key (key guessing: no
    id is in the server's key cache, so each needs a lookup): status codes in order."""
    payload = build_payload("text", 64)
    codes: list[str] = []
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(CREATE_EVENT)
        started = time.monotonic()
        for i in range(calls):
            metadata = (("authorization", f"Bearer bk_guess{i}_{'0' * 64}"),)
            begun = time.perf_counter()
            try:
                await call(payload, metadata=metadata, timeout=30)
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
            latencies.append((time.perf_counter() - begun) * 1000)
        elapsed = time.monotonic() - started
    return {
        "calls": calls,
        "elapsed_s": elapsed,
        "codes_in_order": runs_of(codes),
        "latency": summarize_ms(latencies),
    }


async def check_refused(target: str) -> None:
    """Without --dev an anonymous call must be refused: otherwise this measures nothing."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await channel.unary_unary(CREATE_EVENT)(build_payload("text", 64), timeout=30)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNAUTHENTICATED:
                return
            raise BenchFailed(
                f"anonymous CreateEvent: {error.code().name}, expected UNAUTHENTICATED: "
                f"{error.details()}"
            ) from None
    raise BenchFailed("an anonymous CreateEvent was accepted: is the server in --dev?")


async def loaded_phase(
    children: Children,
    server: Server,
    stub: health_pb2_grpc.HealthStub,
    args: argparse.Namespace,
    payload: str,
) -> dict[str, Any]:
    """Health latencies while `args.clients` clients loop anonymous CreateEvents of `payload`."""
    config = {
        "target": server.target,
        "payload": payload,
        "size": args.size,
        "clients": args.clients,
        "timeout_s": 120.0,
    }
    config_path = children.workdir / f"load-{payload}-{time.monotonic_ns()}.json"
    config_path.write_text(json.dumps(config))
    worker = await children.spawn(
        f"load-{payload}", [sys.executable, str(THIS_FILE), "_load", str(config_path)], pipes=True
    )
    try:
        ready = json.loads(await worker.line_starting("READY ", 300))
        await asyncio.sleep(args.settle)
        server_cpu0, worker_cpu0 = cpu_seconds(server.pid), cpu_seconds(worker.pid)
        window_start = time.monotonic()
        latencies, errors = await health_latencies(stub, args.health_calls, args.max_phase_s)
        window_end = time.monotonic()
        server_cpu = cpu_seconds(server.pid) - server_cpu0
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu0
        await worker.send("STOP")
        result = json.loads(await worker.line_starting("RESULT ", 180))
    finally:
        await children.stop(worker)
    window = window_end - window_start
    inside = [c for c in result["calls"] if window_start <= c[1] <= window_end]
    anon_ms = [(end - start) * 1000 for start, end, _ in inside]
    return {
        "payload": payload,
        "payload_bytes": ready["payload_bytes"],
        "clients": args.clients,
        "health": summarize_ms(latencies),
        "health_errors": dict(errors),
        "window_s": window,
        "server_cpu_percent": 100 * server_cpu / window,
        "load_client_cpu_percent": 100 * worker_cpu / window,
        "anonymous": {
            **summarize_ms(anon_ms),
            "calls_per_s": len(inside) / window if window > 0 else None,
            "codes_in_window": dict(Counter(c[2] for c in inside)),
            "codes_all": dict(Counter(c[2] for c in result["calls"])),
            "calls_all": len(result["calls"]),
            "server_cpu_ms_per_call": 1000 * server_cpu / len(inside) if inside else None,
            "first_details": result["first_details"],
        },
        "_health_ms": latencies,
        "_anonymous_ms": anon_ms,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-unauth-", dir=args.workdir))
    children = Children(workdir)
    started_at = datetime.datetime.now(datetime.UTC)
    try:
        log(f"starting `{args.baton} serve` (PYTHONPATH={args.pythonpath or '-'}) in {workdir}")
        server = await start_server(children, args)
        log(f"baton serving on {server.target}, pid {server.pid}")
        probe = await bad_key_probe(server.target, args.probe_calls)
        log(f"bad-key probe: {probe['codes_in_order']}")
        await check_refused(server.target)
        rounds: list[dict[str, Any]] = []
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await health_latencies(stub, 50, 30)  # warm-up
            for index in range(args.rounds):
                await quiesce(server)
                idle, errors = await health_latencies(stub, args.health_calls, args.max_phase_s)
                summary = summarize_ms(idle)
                log(
                    f"round {index + 1}: idle health p50 {summary['p50_ms']:.2f} ms, "
                    f"p99 {summary['p99_ms']:.2f} ms"
                )
                loaded: dict[str, Any] = {}
                for payload in args.payloads:
                    phase = await loaded_phase(children, server, stub, args, payload)
                    loaded[payload] = phase
                    anon = phase["anonymous"]
                    log(
                        f"round {index + 1}: {payload} load: health p50 "
                        f"{phase['health']['p50_ms']:.2f} ms, p99 {phase['health']['p99_ms']:.2f}"
                        f" ms; anonymous {anon['calls_per_s']:.1f}/s, p50 "
                        f"{anon['p50_ms'] or 0:.1f} ms, codes {anon['codes_in_window']}; "
                        f"server CPU {phase['server_cpu_percent']:.0f} %"
                    )
                    waited = await quiesce(server)
                    if waited > 1:
                        log(f"server busy for {waited:.1f} s after the load stopped")
                rounds.append(
                    {
                        "idle": {**summary, "errors": dict(errors)},
                        "loaded": loaded,
                        "_idle_ms": idle,
                    }
                )
        await children.stop(server.child)
        return figures(args, started_at, server.argv, probe, rounds)
    finally:
        await children.close()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def figures(
    args: argparse.Namespace,
    started_at: datetime.datetime,
    argv: list[str],
    probe: dict[str, Any],
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    """Pools the rounds' samples into the run's figures; drops the raw samples."""
    idle = summarize_ms([x for r in rounds for x in r.pop("_idle_ms")])
    per_payload: dict[str, Any] = {}
    for payload in args.payloads:
        phases = [r["loaded"][payload] for r in rounds]
        health = summarize_ms([x for p in phases for x in p.pop("_health_ms")])
        anon = summarize_ms([x for p in phases for x in p.pop("_anonymous_ms")])
        codes: Counter[str] = Counter()
        for p in phases:
            codes.update(p["anonymous"]["codes_in_window"])
        window = sum(p["window_s"] for p in phases)
        calls = sum(codes.values())
        server_cpu_s = sum(p["server_cpu_percent"] * p["window_s"] / 100 for p in phases)
        per_payload[payload] = {
            "payload_bytes": phases[0]["payload_bytes"],
            "health_loaded": health,
            "health_p50_ratio": ratio(health["p50_ms"], idle["p50_ms"]),
            "health_p99_ratio": ratio(health["p99_ms"], idle["p99_ms"]),
            "anonymous": {
                **anon,
                "calls_per_s": calls / window if window else None,
                "codes": dict(codes),
                "server_cpu_ms_per_call": 1000 * server_cpu_s / calls if calls else None,
            },
            "server_cpu_percent": 100 * server_cpu_s / window if window else None,
        }
    return {
        "label": args.label,
        "code": args.code,
        "date": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - _STARTED, 1),
        "machine": machine_info(),
        "server_command": argv,
        "pythonpath": args.pythonpath,
        "config": {
            "rounds": args.rounds,
            "health_calls_per_phase": args.health_calls,
            "clients": args.clients,
            "size_bytes": args.size,
            "payloads": list(args.payloads),
            "settle_s": args.settle,
            "probe_calls": args.probe_calls,
        },
        "bad_key_probe": probe,
        "health_idle": idle,
        "loaded": per_payload,
        "rounds": rounds,
    }


# =============================================================================================
# Load worker (a separate process)
# =============================================================================================


async def load_worker(config: dict[str, Any]) -> None:
    """`clients` connections, each looping an anonymous CreateEvent of the payload until STOP
    arrives on stdin. Prints `READY {...}` once every client has had an answer, then
    `RESULT {...}` with every call as (start, end, code) on CLOCK_MONOTONIC."""
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
        print("READY " + json.dumps({"payload_bytes": len(payload)}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # STOP, or EOF if orphaned
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=timeout_s + 10)
        for task in pending:
            task.cancel()
        print("RESULT " + json.dumps({"calls": calls, "first_details": first_details}), flush=True)
    finally:
        for channel in channels:
            await channel.close()


# =============================================================================================
# Output
# =============================================================================================


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(run: dict[str, Any]) -> str:
    idle = run["health_idle"]
    lines = [
        f"Unauthenticated CreateEvent vs health checks: {run['label']} ({run['code']}), "
        f"{run['config']['rounds']} rounds, {run['config']['clients']} anonymous clients, "
        f"{run['date']}",
        "",
        f"{'':44} {'p50 ms':>9} {'p99 ms':>9} {'x idle p50':>11} {'x idle p99':>11}",
        f"{'health check, idle':44} {fmt(idle['p50_ms'], 2):>9} {fmt(idle['p99_ms'], 2):>9}",
    ]
    for payload, fig in run["loaded"].items():
        health = fig["health_loaded"]
        mb = fig["payload_bytes"] / 1e6
        lines.append(
            f"{f'health check, load: {payload} {mb:.2f} MB':44} {fmt(health['p50_ms'], 2):>9} "
            f"{fmt(health['p99_ms'], 2):>9} {fmt(fig['health_p50_ratio'], 1):>11} "
            f"{fmt(fig['health_p99_ratio'], 1):>11}"
        )
    lines.append("")
    lines.append(
        f"{'anonymous CreateEvent':28} {'p50 ms':>9} {'p99 ms':>9} {'calls/s':>9} "
        f"{'srv CPU %':>10} {'srv CPU ms/call':>16}  codes"
    )
    for payload, fig in run["loaded"].items():
        anon = fig["anonymous"]
        lines.append(
            f"{payload:28} {fmt(anon['p50_ms']):>9} {fmt(anon['p99_ms']):>9} "
            f"{fmt(anon['calls_per_s']):>9} {fmt(fig['server_cpu_percent'], 0):>10} "
            f"{fmt(anon['server_cpu_ms_per_call'], 2):>16}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(anon["codes"].items()))
        )
    probe = run["bad_key_probe"]
    lines.append("")
    lines.append(
        f"made-up API keys, {probe['calls']} sequential tiny calls: "
        + ", then ".join(f"{n}x {code}" for code, n in probe["codes_in_order"])
    )
    return "\n".join(lines)


def summary_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    index: Counter[str] = Counter()
    for run in runs:
        index[run["label"]] += 1
        for payload, fig in run["loaded"].items():
            rows.append(
                {
                    "label": run["label"],
                    "code": run["code"],
                    "run": index[run["label"]],
                    "date": run["date"],
                    "payload": payload,
                    "health_idle_p50_ms": run["health_idle"]["p50_ms"],
                    "health_idle_p99_ms": run["health_idle"]["p99_ms"],
                    "health_loaded_p50_ms": fig["health_loaded"]["p50_ms"],
                    "health_loaded_p99_ms": fig["health_loaded"]["p99_ms"],
                    "health_p50_ratio": fig["health_p50_ratio"],
                    "health_p99_ratio": fig["health_p99_ratio"],
                    "anonymous_p50_ms": fig["anonymous"]["p50_ms"],
                    "anonymous_p99_ms": fig["anonymous"]["p99_ms"],
                    "anonymous_calls_per_s": fig["anonymous"]["calls_per_s"],
                    "anonymous_codes": fig["anonymous"]["codes"],
                    "server_cpu_ms_per_anonymous_call": fig["anonymous"]["server_cpu_ms_per_call"],
                    "server_cpu_percent": fig["server_cpu_percent"],
                    "bad_key_probe": run["bad_key_probe"]["codes_in_order"],
                }
            )
    return rows


def write_json(path: Path, run: dict[str, Any], fresh: bool) -> None:
    document: dict[str, Any] = {}
    if path.exists() and not fresh:
        document = json.loads(path.read_text())
    runs = [*document.get("runs", []), run]
    document = {
        "benchmark": "bench/unauthenticated.py",
        "title": "Unauthenticated requests (issue 12, finding 6)",
        "what": (
            "Health-check latency (grpc.health.v1.Health/Check, sequential) idle vs while "
            "concurrent clients loop anonymous ~3.9 MB CreateEvent calls against `baton serve` "
            "without --dev on SQLite; the anonymous calls' own latency, rate and codes; a probe "
            "of sequential calls each with another made-up API key. 'before' = 77c1379 (decode "
            "and NUL walk before authentication), 'after' = the working tree (authentication "
            "first, failed authentications rate limited per peer)."
        ),
        "machine": run["machine"],
        "updated": run["date"],
        "summary": summary_rows(runs),
        "runs": runs,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# =============================================================================================
# Entry points
# =============================================================================================


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--baton",
        default=str(DEFAULT_BATON),
        help="server command, split like a shell does (default: %(default)s); e.g. "
        "'.venv/bin/python -m baton_server' with --pythonpath for another checkout",
    )
    parser.add_argument(
        "--pythonpath",
        default="",
        help="PYTHONPATH for the server, e.g. /tmp/oldpath (holding a baton_server package)",
    )
    parser.add_argument("--label", default="after", help="e.g. before / after")
    parser.add_argument(
        "--code", default="", help="what code runs, e.g. '77c1379' (default: the label)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="idle/loaded alternations")
    parser.add_argument(
        "--health-calls", type=int, default=100, help="sequential health checks per phase"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent anonymous clients")
    parser.add_argument(
        "--size", type=int, default=3_900_000, help="request size in bytes (server limit 4 MiB)"
    )
    parser.add_argument(
        "--payloads",
        type=lambda s: tuple(p for p in s.split(",") if p),
        default=PAYLOADS,
        help="comma-separated, of: text (one big message.text), struct (many small fields)",
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds of load before measuring"
    )
    parser.add_argument(
        "--max-phase-s", type=float, default=180.0, help="cap on one phase's health checks"
    )
    parser.add_argument(
        "--probe-calls", type=int, default=150, help="unknown-API-key calls (0: no probe)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="results file the run is appended to (default: %(default)s)",
    )
    parser.add_argument("--no-json", action="store_true", help="write no results file")
    parser.add_argument("--fresh", action="store_true", help="start the results file over")
    parser.add_argument("--workdir", default=None, help="parent of the temp directory")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    args = parser.parse_args(argv)
    unknown = set(args.payloads) - set(PAYLOADS)
    if unknown or not args.payloads:
        parser.error(f"--payloads: choose from {', '.join(PAYLOADS)}")
    if args.size >= 4 << 20:
        parser.error("--size must stay under the server's 4 MiB message limit")
    if min(args.rounds, args.health_calls, args.clients) < 1:
        parser.error("--rounds, --health-calls and --clients must be at least 1")
    args.code = args.code or args.label
    return args


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await measure(args)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["_load"]:
        config = json.loads(Path(argv[1]).read_text())
        asyncio.run(load_worker(config))
        return 0
    args = parse_args(argv)
    try:
        run = asyncio.run(orchestrate(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130
    except BenchFailed as error:
        log(f"FAILED: {error}")
        return 1
    print(table(run))
    if not args.no_json:
        write_json(args.json, run, args.fresh)
        log(f"appended to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
