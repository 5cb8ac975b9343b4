"""Tool calls through tool workers (ToolWorkerService) against an in-process Python tool.

The server runs in this process (BatonApp, SQLite, no engine) so the bench can time exactly what
a turn's tool step costs: `ToolRegistry.call`, from the turn's side. The same tool, looking up an
order (the example's `check_order_status`), is:
- a Python function loaded into the server (`order_status_here`, this module): the baseline;
- served by worker processes (`python -m bench.tool_workers --serve TARGET ...`), each a separate
  process speaking ServeTools over loopback gRPC, answering at once.

Figures, same run: round trip of one call at a time (p50/p99, 2,000 calls each); then calls/s
with 64 callers at once for a few seconds: the Python tool, one worker (limit 64), four workers
(limit 16 each). Worker processes share the machine's 2 cores with the server.

    .venv/bin/python -m bench.tool_workers [--calls 2000] [--seconds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from baton_server.app import BatonApp
from baton_server.config import Settings
from baton_server.tools import ToolContext, ToolResult, tool
from bench.stats import percentile, write_json

WORKER_TOOL = "check_order_status"
PYTHON_TOOL = "order_status_here"
ARGS = {"order_id": "12345"}
CALLERS = 64


def order_status(order_id: str) -> dict[str, Any]:
    digits = "".join(ch for ch in order_id if ch.isdigit())
    return {"found": True, "order": digits[-8:], "status": "in transit"}


@tool(description="Look up the delivery status of an order by its number (in the server).")
async def order_status_here(context: ToolContext, order_id: str) -> ToolResult:
    return ToolResult(data=order_status(order_id))


# ---------------------------------------------------------------- the worker process


async def serve(target: str, limit: int) -> None:
    """A minimal worker: declares the tool, answers every call at once, until stdin closes."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = svc.ToolWorkerServiceStub(channel).ServeTools()
        declaration = rr.WorkerDeclaration(worker_name="bench", max_concurrent_calls=limit)
        declared = declaration.tools.add(name=WORKER_TOOL, description="Order status")
        json_format.ParseDict(
            {"type": "object", "properties": {"order_id": {"type": "string"}}}, declared.parameters
        )
        await call.write(rr.ServeToolsRequest(declare=declaration))
        first = await call.read()
        print("READY", first.accepted.worker_id, flush=True)
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            if message.WhichOneof("kind") != "call":
                continue
            answer = rr.ToolCallResult(call_id=message.call.call_id)
            data = order_status(message.call.arguments["order_id"])
            json_format.ParseDict(data, answer.data)
            await call.write(rr.ServeToolsRequest(result=answer))


# ---------------------------------------------------------------- the orchestrator


async def start_workers(target: str, count: int, limit: int) -> list[asyncio.subprocess.Process]:
    workers = []
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.tool_workers",
            "--serve",
            target,
            "--limit",
            str(limit),
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"READY"):
            raise RuntimeError(f"worker did not start: {line!r}")
        workers.append(proc)
    return workers


async def stop_workers(workers: list[asyncio.subprocess.Process]) -> None:
    for proc in workers:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()


async def round_trips(app: BatonApp, name: str, calls: int) -> list[float]:
    context = ToolContext("ses_bench", "agt_bench", "cus_bench", "evt_bench", _no_events)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        outcome = await app.tools.call(name, dict(ARGS), context)
        times.append((time.perf_counter() - started) * 1000)
        if outcome.error:
            raise RuntimeError(f"{name}: {outcome.error}")
    return times


async def throughput(app: BatonApp, name: str, seconds: float) -> float:
    context = ToolContext("ses_bench", "agt_bench", "cus_bench", "evt_bench", _no_events)
    done = 0
    stop_at = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            outcome = await app.tools.call(name, dict(ARGS), context)
            if outcome.error:
                raise RuntimeError(f"{name}: {outcome.error}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return done / (time.perf_counter() - started)


async def _no_events(offset: int, kinds: Any) -> list[Any]:
    return []


def ms(values: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}


async def measure(calls: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            port=0,
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}",
            engine_enabled=False,
            dev_mode=True,
            tool_modules=("bench.tool_workers",),
        )
        app = BatonApp(settings)
        port = await app.start()
        target = f"127.0.0.1:{port}"
        try:
            python_trips = await round_trips(app, PYTHON_TOOL, calls)
            workers = await start_workers(target, 1, CALLERS)
            worker_trips = await round_trips(app, WORKER_TOOL, calls)
            python_rate = await throughput(app, PYTHON_TOOL, seconds)
            one_rate = await throughput(app, WORKER_TOOL, seconds)
            await stop_workers(workers)
            workers = await start_workers(target, 4, CALLERS // 4)
            four_rate = await throughput(app, WORKER_TOOL, seconds)
            await stop_workers(workers)
        finally:
            await app.stop(grace=1.0)
    python_ms, worker_ms = ms(python_trips), ms(worker_trips)
    return {
        "round_trip_ms": {"python_tool": python_ms, "one_worker": worker_ms},
        "round_trip_added_ms_p50": (worker_ms["p50"] or 0) - (python_ms["p50"] or 0),
        "calls_per_s": {
            "python_tool": python_rate,
            "one_worker": one_rate,
            "four_workers": four_rate,
        },
        "four_over_one_workers": four_rate / one_rate if one_rate else None,
        "one_worker_over_python_tool": one_rate / python_rate if python_rate else None,
        "calls": calls,
        "seconds": seconds,
        "callers": CALLERS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=CALLERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.serve, args.limit))
        return 0
    result = asyncio.run(measure(args.calls, args.seconds))
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
