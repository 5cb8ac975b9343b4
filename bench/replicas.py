"""Scale-out on PostgreSQL: one replica vs two on the same database, in one run.

(1) Append throughput: 64 closed-loop writers (each on its own session) for a fixed time,
    all against one replica, then split across two replicas.
(2) Append→delivery latency: a subscriber on replica A follows one session while appends
    arrive at a steady rate; with one replica they are sent to A, with two they are sent to B,
    so every event crosses replicas (LISTEN/NOTIFY + a store read). p50/p99 in ms.
Ratios are two replicas / one replica. Needs PostgreSQL: `.ci/postgres start` prints a URL.

    .venv/bin/python bench/replicas.py --postgres "$(.ci/postgres start)" [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import grpc
from sqlalchemy.engine import make_url

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc


def start_replica(url: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "baton_server",
            "serve",
            "--dev",  # the benchmarks send no credentials
            "--port",
            "0",
            "--no-engine",
            "--log-level",
            "INFO",
            "--database",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"listening on [^:]+:(\d+)", process.stdout.readline())
        if match:
            return process, f"127.0.0.1:{match.group(1)}"
    process.kill()
    raise RuntimeError("replica did not start")


def message(session_id: str, text: str) -> rr.CreateEventRequest:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=pb.EVENT_SOURCE_HUMAN_AGENT,
        message=pb.MessageData(text=text, participant=pb.Participant(id="op", display_name="Op")),
    )


async def new_session(channel: grpc.aio.Channel) -> str:
    agent = await svc.AgentServiceStub(channel).CreateAgent(
        rr.CreateAgentRequest(agent=pb.Agent(name="bench"))
    )
    customer = await svc.CustomerServiceStub(channel).CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="bench"))
    )
    session = await svc.SessionServiceStub(channel).CreateSession(
        rr.CreateSessionRequest(
            session=pb.Session(agent_id=agent.agent.id, customer_id=customer.customer.id)
        )
    )
    return session.session.id


async def throughput(targets: list[str], writers: int, seconds: float) -> float:
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    try:
        sessions = [await new_session(channels[0]) for _ in range(writers)]
        done = 0
        stop_at = time.monotonic() + seconds

        async def writer(i: int) -> None:
            nonlocal done
            events = svc.EventServiceStub(channels[i % len(channels)])
            while time.monotonic() < stop_at:
                await events.CreateEvent(message(sessions[i], "x" * 100))
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        return done / (time.monotonic() - started)
    finally:
        for channel in channels:
            await channel.close()


async def latency(
    subscriber_target: str, writer_target: str, rate: float, seconds: float
) -> dict[str, float]:
    sub_channel = grpc.aio.insecure_channel(subscriber_target)
    write_channel = grpc.aio.insecure_channel(writer_target)
    try:
        session_id = await new_session(write_channel)
        stream = svc.EventServiceStub(sub_channel).ListEvents(
            rr.ListEventsRequest(session_id=session_id, follow=True)
        )
        iterator = stream.__aiter__()
        while not (await iterator.__anext__()).caught_up:
            pass
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        count = int(rate * seconds)

        async def receive() -> None:
            while len(latencies) < count:
                response = await iterator.__anext__()
                now = time.perf_counter()
                for event in response.events:
                    if event.message.text in sent_at:
                        latencies.append(now - sent_at[event.message.text])

        receiver = asyncio.create_task(receive())
        events = svc.EventServiceStub(write_channel)
        pending: set[asyncio.Future[object]] = set()
        started = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            text = f"m{i}"
            sent_at[text] = time.perf_counter()
            call = asyncio.ensure_future(events.CreateEvent(message(session_id, text)))
            pending.add(call)
            call.add_done_callback(pending.discard)
        async with asyncio.timeout(60):
            await receiver
            await asyncio.gather(*pending)
        stream.cancel()
        ordered = sorted(latencies)
        return {
            "p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        }
    finally:
        await sub_channel.close()
        await write_channel.close()


async def fresh_database(admin_url: str) -> str:
    url = make_url(admin_url)
    name = f"baton_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    url = await fresh_database(args.postgres)
    processes = []
    try:
        a, target_a = start_replica(url)
        processes.append(a)
        b, target_b = start_replica(url)
        processes.append(b)
        await throughput([target_a], 8, 2)  # warm-up
        one = await throughput([target_a], args.writers, args.seconds)
        two = await throughput([target_a, target_b], args.writers, args.seconds)
        local = await latency(target_a, target_a, args.rate, args.seconds)
        remote = await latency(target_a, target_b, args.rate, args.seconds)
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
    return {
        "appends_per_s": {"one_replica": one, "two_replicas": two, "ratio": two / one},
        "delivery": {
            "one_replica": local,
            "two_replicas_cross": remote,
            "p99_ratio": remote["p99_ms"] / local["p99_ms"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", required=True, help="admin URL (postgresql+asyncpg://…)")
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="appends/s for latency")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
