"""`python -m bench.pg_driver --postgres ADMIN_URL`: PostgreSQL's append path on asyncpg directly
(store/pg_log.py, the default) vs the same appends through SQLAlchemy core (the repository
with `plain_driver=False`), in one process, on fresh databases of the given cluster.

Per path: CPU and round trip of sequential single-event appends (each its own transaction),
then appends/s with 64 concurrent appenders (group commit). Paths alternate, two rounds; the
JSON keeps every round. In-process on purpose: it measures the store, not gRPC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from baton_server.api.events import EVENT_ENCODING
from baton_server.domain import EventDraft, EventKind, EventSource, SessionMode
from baton_server.store import Repository, open_database
from bench.clients import MESSAGE_TEXT
from bench.server import create_postgres_database
from bench.stats import log, percentile

SEQUENTIAL = 2000
CONCURRENT = 64
CONCURRENT_S = 5.0


def _draft() -> EventDraft:
    return EventDraft(
        kind=EventKind.MESSAGE, source=EventSource.AI_AGENT, data={"text": MESSAGE_TEXT}
    )


async def _measure(admin_url: str, plain: bool) -> dict[str, Any]:
    database = await open_database(await create_postgres_database(admin_url))
    repository = Repository(
        database,
        on_commit=lambda _: None,
        on_session_deleted=lambda _: None,
        encoding=EVENT_ENCODING,
        plain_driver=plain,
    )
    repository.start()
    try:
        agent = await repository.create_agent("bench", "")
        customer = await repository.create_customer("bench", {})
        sessions = [
            (await repository.create_session(agent.id, customer.id, "", SessionMode.AUTO, {})).id
            for _ in range(CONCURRENT)
        ]
        for i in range(200):  # warm-up: connections, statement caches
            await repository.append_event(sessions[i % CONCURRENT], _draft())
        round_trips = []
        cpu0 = time.process_time()
        for i in range(SEQUENTIAL):
            start = time.perf_counter()
            await repository.append_event(sessions[i % CONCURRENT], _draft())
            round_trips.append((time.perf_counter() - start) * 1000)
        cpu_ms = (time.process_time() - cpu0) / SEQUENTIAL * 1000
        done = 0
        deadline = time.monotonic() + CONCURRENT_S

        async def appender(session_id: str) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await repository.append_event(session_id, _draft())
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(appender(s) for s in sessions))
        rate = done / (time.monotonic() - started)
    finally:
        await repository.close()
        await database.dispose()
    round_trips.sort()
    return {
        "cpu_ms_per_append": round(cpu_ms, 3),
        "p50_ms": round(percentile(round_trips, 50) or 0.0, 3),
        "p99_ms": round(percentile(round_trips, 99) or 0.0, 3),
        "concurrent_appends_per_s": round(rate, 1),
    }


async def _run(admin_url: str) -> dict[str, list[dict[str, Any]]]:
    rounds: dict[str, list[dict[str, Any]]] = {"asyncpg": [], "sqlalchemy": []}
    for round_no in (1, 2):
        for name in rounds:
            result = await _measure(admin_url, plain=name == "asyncpg")
            rounds[name].append(result)
            log(f"round {round_no}, {name}: {result}")
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", required=True, help="admin URL (postgresql+asyncpg://...)")
    parser.add_argument("--json", type=Path, help="also write every round here")
    args = parser.parse_args()
    rounds = asyncio.run(_run(args.postgres))
    print("| path | CPU per append [ms] | p50 [ms] | p99 [ms] | 64 appenders [appends/s] |")
    print("|---|---:|---:|---:|---:|")
    for name, results in rounds.items():
        for r in results:
            print(
                f"| {name} | {r['cpu_ms_per_append']} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['concurrent_appends_per_s']:,.0f} |"
            )
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
