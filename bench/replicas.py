"""Scale-out on PostgreSQL: one replica vs two on the same database, in one run.

(1) Append throughput: 64 closed-loop writers (each on its own session) for a fixed time,
    all against one replica, then split across two replicas.
(2) Append→delivery latency: a subscriber on replica A follows one session while appends
    arrive at a steady rate; with one replica they are sent to A, with two they are sent to B,
    so every event crosses replicas (LISTEN/NOTIFY + a store read). p50/p99 in ms.
Ratios are two replicas / one replica. Needs PostgreSQL: `.ci/postgres start` prints a URL.

    .venv/bin/python -m bench.replicas --postgres "$(.ci/postgres start)" [--seconds 10]
    .venv/bin/python -m bench.replicas --postgres "$(.ci/postgres start)" --quick   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.server import Procs, WorkerFailed, create_postgres_database, start_baton
from bench.stats import percentile, write_json


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
        ms = [1000 * latency for latency in latencies]
        return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}
    finally:
        await sub_channel.close()
        await write_channel.close()


async def main_async(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url = await create_postgres_database(args.postgres)
    async with Procs(workdir) as procs:
        flags = ("--dev", "--no-engine")
        a = await start_baton(procs, url, *flags, name="replica-a", log_level="INFO")
        b = await start_baton(procs, url, *flags, name="replica-b", log_level="INFO")
        await throughput([a.target], 8, 2)  # warm-up
        one = await throughput([a.target], args.writers, args.seconds)
        two = await throughput([a.target, b.target], args.writers, args.seconds)
        local = await latency(a.target, a.target, args.rate, args.seconds)
        remote = await latency(a.target, b.target, args.rate, args.seconds)
    return {
        "appends_per_s": {"one_replica": one, "two_replicas": two, "ratio": two / one},
        "delivery": {
            "one_replica": local,
            "two_replicas_cross": remote,
            "p99_ratio": remote["p99_ms"] / local["p99_ms"],
        },
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", required=True, help="admin URL (postgresql+asyncpg://…)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 16 writers, 3 s, 50 appends/s"
    )
    parser.add_argument("--writers", type=int, help="closed-loop writers (default 64)")
    parser.add_argument("--seconds", type=float, help="each measurement's time (default 10)")
    parser.add_argument("--rate", type=float, help="appends/s for latency (default 100)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.writers = args.writers or (16 if args.quick else 64)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.rate = args.rate or (50.0 if args.quick else 100.0)
    with tempfile.TemporaryDirectory(prefix="baton-replicas-") as tmp:
        try:
            result = asyncio.run(main_async(args, Path(tmp)))
        except WorkerFailed as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; child processes ended", file=sys.stderr)
            return 130
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
