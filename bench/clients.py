"""Client side shared by the benches: channels, the appended message, sessions through the
public API, GC-free measuring, and the closed-loop CreateEvent load (a worker process)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.stats import summarize_ms
from bench.worker import emit

# Client channels: a local subchannel pool gives every channel its own TCP connection (by
# default grpc shares one connection between channels with the same target and options).
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
# Every appended event is a realistic chat message (~120 bytes of text) from an AI agent. Not
# from the customer: a customer message starts an AI agent turn (server/baton_server/engine),
# which appends more events of its own; these benchmarks measure the event log, not the agent.
# Not from a human agent either: the first one on a session takes it over (handoff controls,
# their own transaction; measured by bench.handoffs). An AI-agent message is a plain append.
MESSAGE_TEXT = (
    "Thanks for waiting! I checked order 48213: the parcel left our warehouse this morning "
    "and should reach you by Thursday."
)
MESSAGE_SOURCE = pb.EVENT_SOURCE_AI_AGENT
PARTICIPANT = pb.Participant(id="agent-0042", display_name="Sam")


def new_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)


def message_request(session_id: str, text: str, source: int = MESSAGE_SOURCE) -> Any:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=source,
        message=pb.MessageData(text=text, participant=PARTICIPANT),
    )


def bearer(secret: str | None) -> tuple[tuple[str, str], ...] | None:
    """Call metadata carrying an API key (None: no credentials, for `--dev` servers)."""
    return (("authorization", f"Bearer {secret}"),) if secret else None


async def create_sessions(
    target: str, count: int, secret: str | None = None, concurrency: int = 32
) -> list[str]:
    """Creates one agent, one customer and `count` sessions; returns the session ids."""
    metadata = bearer(secret)
    async with new_channel(target) as channel:
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
        gate = asyncio.Semaphore(concurrency)

        async def one() -> str:
            async with gate:
                response = await sessions.CreateSession(request, timeout=60, metadata=metadata)
                return str(response.session.id)

        return list(await asyncio.gather(*(one() for _ in range(count))))


def fake_session_ids(count: int) -> list[str]:
    """Ids shaped like Baton's, for baselines that keep no sessions."""
    return [f"ses_{uuid.uuid4().hex}" for _ in range(count)]


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


async def worker_load(config: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop load: one task per session id, each awaiting CreateEvent in a loop; the
    calls completed inside the window after the warm-up count. Prints MEASURING when the window
    opens. Config: target, sessions, channels, warmup_s, duration_s, and optionally text,
    source (an EventSource number) and secret (an API key)."""
    metadata = bearer(config.get("secret"))
    channels = [new_channel(config["target"]) for _ in range(config["channels"])]
    stubs = [svc.EventServiceStub(channel) for channel in channels]
    text, source = config.get("text", MESSAGE_TEXT), config.get("source", MESSAGE_SOURCE)
    requests = [message_request(sid, text, source) for sid in config["sessions"]]
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
