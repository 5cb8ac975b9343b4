"""bench.run, figure 3: catch-up replay vs pre-built in-memory responses.

One session holding `replay_events` events (+ the session-created event) is read with
`ListEvents follow=false` from offset 0 by one client process; events/s from request to end of
stream, median of `replay_runs` reads, on a freshly started server. Populating is not timed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.baseline import start_baseline
from bench.clients import (
    MESSAGE_TEXT,
    create_sessions,
    fake_session_ids,
    gc_paused,
    message_request,
    new_channel,
)
from bench.plans import Plan
from bench.server import HOST, Procs, Server, database_url, start_baton
from bench.stats import CpuMeter, Figure, log, ratio
from bench.worker import emit


async def bench_replay(plan: Plan, workdir: Path) -> list[Figure]:
    db_path = workdir / "replay.db"
    async with Procs(workdir) as procs:
        log(f"replay: populating {plan.replay_events:,} events (not timed)")
        populate = await procs.worker(
            worker_populate,
            {
                "database_url": database_url(db_path),
                "events": plan.replay_events,
                "text": MESSAGE_TEXT,
            },
        )
        filled = await populate.expect("RESULT", timeout_s=600)
        await procs.stop(populate)
        log(f"  {filled['appends_per_s']:,} appends/s in-process")

        server = await start_baseline(
            procs, "replay", events=plan.replay_events + 1, text=MESSAGE_TEXT
        )
        base = await run_replay(procs, server, fake_session_ids(1)[0], plan)
        await procs.stop(server.proc)
        log(f"  baseline {base['median']['events_per_s']:,} events/s")

        server = await start_baton(procs, db_path, "--dev")
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
            ">= 300,000 events/s",
            value >= 300_000,
            {"baton": ours, "baseline": base, "populate": filled},
        )
    ]


async def run_replay(procs: Procs, server: Server, session_id: str, plan: Plan) -> dict[str, Any]:
    worker = await procs.worker(
        worker_replay,
        {"target": server.target, "session_id": session_id, "runs": plan.replay_runs},
    )
    await worker.expect("MEASURING", timeout_s=60)
    meter = CpuMeter(server.pid)
    result = await worker.expect("RESULT", timeout_s=600)
    result["server_cpu_pct"] = round(meter.percent(), 1)
    await procs.stop(worker)
    return result


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
