"""Engine overhead per agent turn, offline provider, 100 concurrent sessions.

Baton: a `baton serve --example-agent` process runs the turns; each of N sessions loops "send a
customer message, wait on its follow stream for the turn's `ready`". Baseline, same run: a
`baton serve --no-engine` process, and the client itself appends the same six turn events
(acknowledged, processing x2, typing, message, ready) one by one after each customer message,
waiting for `ready` the same way: the cost of a turn's log writes without the engine.
Figures: turns/s and p50/p99 turn latency; ratios Baton / baseline.

    .venv/bin/python bench/engine.py [--sessions 100] [--seconds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc

QUESTION = "How does a refund work?"
TURN_STEPS = [
    (pb.STATUS_ACKNOWLEDGED, None),
    (pb.STATUS_PROCESSING, "interpreting"),
    (pb.STATUS_PROCESSING, "articulating"),
    (pb.STATUS_TYPING, None),
    ("message", None),
    (pb.STATUS_READY, None),
]


def start_server(workdir: Path, name: str, *flags: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "baton_server",
            "serve",
            "--dev",  # the benchmarks send no credentials
            "--port",
            "0",
            "--log-level",
            "INFO",
            "--database",
            f"sqlite+aiosqlite:///{workdir / name}.db",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"listening on [^:]+:(\d+)", line)
        if match:
            return process, f"127.0.0.1:{match.group(1)}"
    process.kill()
    raise RuntimeError(f"{name} server did not start")


def step_request(session_id: str, correlation_id: str, step: tuple[Any, Any]) -> Any:
    status, detail = step
    if status == "message":
        return rr.CreateEventRequest(
            session_id=session_id,
            kind=pb.EVENT_KIND_MESSAGE,
            source=pb.EVENT_SOURCE_AI_AGENT,
            message=pb.MessageData(text="Refunds reach your account within 5 business days."),
            correlation_id=correlation_id,
        )
    data = pb.StatusData(status=status, detail=detail) if detail else pb.StatusData(status=status)
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_STATUS,
        source=pb.EVENT_SOURCE_AI_AGENT,
        status=data,
        correlation_id=correlation_id,
    )


async def run_load(target: str, sessions: int, seconds: float, client_writes: bool) -> list[float]:
    """Turn latencies (s) of `sessions` concurrent conversations for `seconds`."""
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    latencies: list[float] = []
    try:
        first = svc.AgentServiceStub(channels[0])
        agents = await first.ListAgents(rr.ListAgentsRequest())
        agent_id = (
            agents.agents[0].id
            if agents.agents
            else (
                await first.CreateAgent(rr.CreateAgentRequest(agent=pb.Agent(name="bench")))
            ).agent.id
        )
        customer = await svc.CustomerServiceStub(channels[0]).CreateCustomer(
            rr.CreateCustomerRequest(customer=pb.Customer(name="bench"))
        )
        stop_at = time.monotonic() + seconds

        async def conversation(i: int) -> None:
            channel = channels[i % len(channels)]
            events = svc.EventServiceStub(channel)
            session = (
                await svc.SessionServiceStub(channel).CreateSession(
                    rr.CreateSessionRequest(
                        session=pb.Session(agent_id=agent_id, customer_id=customer.customer.id)
                    )
                )
            ).session
            stream = events.ListEvents(
                rr.ListEventsRequest(
                    session_id=session.id, follow=True, kinds=[pb.EVENT_KIND_STATUS]
                )
            )
            iterator = stream.__aiter__()
            while not (await iterator.__anext__()).caught_up:
                pass
            try:
                while time.monotonic() < stop_at:
                    started = time.perf_counter()
                    sent = (
                        await events.CreateEvent(
                            rr.CreateEventRequest(
                                session_id=session.id,
                                kind=pb.EVENT_KIND_MESSAGE,
                                source=pb.EVENT_SOURCE_CUSTOMER,
                                message=pb.MessageData(text=QUESTION),
                            )
                        )
                    ).event
                    if client_writes:
                        for step in TURN_STEPS:
                            await events.CreateEvent(
                                step_request(session.id, sent.correlation_id, step)
                            )
                    async with asyncio.timeout(30):
                        done = False
                        while not done:
                            response = await iterator.__anext__()
                            done = any(
                                e.correlation_id == sent.correlation_id
                                and e.status.status == pb.STATUS_READY
                                for e in response.events
                            )
                    latencies.append(time.perf_counter() - started)
            finally:
                stream.cancel()

        await asyncio.gather(*(conversation(i) for i in range(sessions)))
    finally:
        for channel in channels:
            await channel.close()
    return latencies


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "turns": len(ordered),
        "turns_per_s": len(ordered) / seconds,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


async def measure(
    name: str, flags: tuple[str, ...], client_writes: bool, args: argparse.Namespace, workdir: Path
) -> dict[str, float]:
    process, target = start_server(workdir, name, *flags)
    try:
        await run_load(target, min(args.sessions, 10), 2.0, client_writes)  # warm-up
        started = time.monotonic()
        latencies = await run_load(target, args.sessions, args.seconds, client_writes)
        return summary(latencies, time.monotonic() - started)
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        baseline = asyncio.run(measure("baseline", ("--no-engine",), True, args, workdir))
        baton = asyncio.run(measure("engine", ("--example-agent",), False, args, workdir))
    result = {
        "sessions": args.sessions,
        "baton": baton,
        "baseline": baseline,
        "throughput_ratio": baton["turns_per_s"] / baseline["turns_per_s"],
        "p99_ratio": baton["p99_ms"] / baseline["p99_ms"],
    }
    print(f"{'':24}{'turns/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("baton", "baseline"):
        row = result[name]
        print(f"{name:24}{row['turns_per_s']:>10.1f}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}")
    print(f"turns/s ratio {result['throughput_ratio']:.2f}, p99 ratio {result['p99_ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
