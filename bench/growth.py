"""Cost as the store grows: two figures, each measured on a big store against an empty one in the
same run.

1. append    durable CreateEvent calls/s (64 closed-loop clients, each on its own new session)
2. catch_up  catch-up replay of a fresh session (events/s, median of reads)

Each store is a fresh SQLite file in the workdir. The big one is first filled in-process with
1,000,000 events round-robin over 10,000 sessions (not timed; the fill rate is logged); then
both get one fresh session of `replay_events` events, `baton serve --dev` starts on the file,
the load (bench.throughput's `run_load`) runs on 64 new sessions, the fresh session is read
(bench.replay's `run_replay`) and the server stops. A figure is big ÷ empty (goal >= 0.90x):

    .venv/bin/python -m bench.growth [--quick] [--only append] [--json PATH]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli import figures_parser, run_figures, selected
from bench.clients import MESSAGE_TEXT, create_sessions, message_request
from bench.plans import FULL_GROWTH_PLAN, QUICK_GROWTH_PLAN, GrowthPlan, Plan
from bench.replay import run_replay
from bench.server import HOST, Procs, database_url, start_baton
from bench.stats import Figure, OtherCpuMeter, log, ratio
from bench.throughput import run_load

if TYPE_CHECKING:
    from baton_server.domain import EventDraft
    from baton_server.store.repository import Repository

BENCHES = ("append", "catch_up")
GOAL = 0.90
# Appends gathered at once while filling (as bench.replay's worker_populate does).
FILL_WAVE = 2000
# Sessions created at once while filling (the writer runs them one transaction each).
SESSION_CONCURRENCY = 64


async def bench_growth(names: Sequence[str], plan: GrowthPlan, workdir: Path) -> list[Figure]:
    meter = OtherCpuMeter()
    async with Procs(workdir) as procs:
        empty = await measure_store(procs, workdir / "growth-empty.db", 0, 0, names, plan)
        big = await measure_store(
            procs,
            workdir / "growth-big.db",
            plan.stored_sessions,
            plan.stored_events,
            names,
            plan,
        )
    figures = growth_figures(names, plan, empty, big)
    for figure in figures:
        figure.details["other_processes_cores"] = round(meter.cores(), 2)
    log(f"growth done in {meter.elapsed():.0f}s; other processes used {meter.cores():.2f} cores")
    return figures


async def measure_store(
    procs: Procs,
    db_path: Path,
    sessions: int,
    events: int,
    names: Sequence[str],
    plan: GrowthPlan,
) -> dict[str, Any]:
    """Fills a fresh SQLite file, then measures the selected figures on `baton serve` over it."""
    store: dict[str, Any] = {"fill": await fill(procs, db_path, sessions, events, plan)}
    store["database_mib_filled"] = database_mib(db_path)
    server = await start_baton(procs, db_path, "--dev")
    if "append" in names:
        load_sessions = await create_sessions(
            server.target, plan.clients, concurrency=SESSION_CONCURRENCY
        )
        store["load"] = await run_load(procs, server, load_sessions, core_plan(plan))
        log(
            f"  {events:,} stored: {store['load']['calls_per_s']:,.0f} calls/s "
            f"(server CPU {store['load']['server_cpu_pct']}%)"
        )
    if "catch_up" in names:
        store["replay"] = await run_replay(
            procs, server, store["fill"]["fresh_session_id"], core_plan(plan)
        )
        log(f"  {events:,} stored: {store['replay']['median']['events_per_s']:,} events/s")
    await procs.stop(server.proc)
    store["database_mib_at_end"] = database_mib(db_path)
    return store


async def fill(
    procs: Procs, db_path: Path, sessions: int, events: int, plan: GrowthPlan
) -> dict[str, Any]:
    """Runs the fill worker on `db_path`; logs its rates (none of this is measured)."""
    log(
        f"growth: filling {db_path.name}: {events:,} events over {sessions:,} sessions, "
        f"then a fresh session of {plan.replay_events:,} (not timed)"
    )
    worker = await procs.worker(
        worker_fill,
        {
            "database_url": database_url(db_path),
            "sessions": sessions,
            "events": events,
            "replay_events": plan.replay_events,
            "text": MESSAGE_TEXT,
        },
    )
    filled = await worker.expect("RESULT", timeout_s=3600)
    await procs.stop(worker)
    if sessions:
        log(
            f"  {filled['sessions_per_s']:,} sessions/s, "
            f"{filled['appends_per_s']:,} appends/s round-robin"
        )
    log(f"  fresh session: {filled['fresh_appends_per_s']:,} appends/s")
    return filled


def core_plan(plan: GrowthPlan) -> Plan:
    """The growth plan as the `Plan` that `run_load` and `run_replay` read (clients, channels,
    windows, replay runs)."""
    return Plan(
        clients=plan.clients,
        client_channels=plan.client_channels,
        warmup_s=plan.warmup_s,
        duration_s=plan.duration_s,
        replay_events=plan.replay_events,
        replay_runs=plan.replay_runs,
    )


def database_mib(db_path: Path) -> float:
    """Size of a SQLite database file with its write-ahead log, MiB."""
    paths = (db_path, db_path.with_name(db_path.name + "-wal"))
    return round(sum(p.stat().st_size for p in paths if p.exists()) / (1 << 20), 1)


def stored_label(events: int) -> str:
    """1,000,000 → `1M`; other counts with thousands separators."""
    return f"{events // 1_000_000}M" if events % 1_000_000 == 0 else f"{events:,}"


def growth_figures(
    names: Sequence[str], plan: GrowthPlan, empty: dict[str, Any], big: dict[str, Any]
) -> list[Figure]:
    """Big store ÷ empty store for each selected figure; every store's details kept."""
    stored = stored_label(plan.stored_events)
    common = {"stored_events": plan.stored_events, "stored_sessions": plan.stored_sessions}
    figures = []
    if "append" in names:
        figures.append(
            growth_figure(
                "growth_append",
                f"Append rate, {stored} events stored vs empty",
                "calls/s",
                big["load"]["calls_per_s"],
                empty["load"]["calls_per_s"],
                {
                    **common,
                    "empty": store_details(empty, "load"),
                    "big": store_details(big, "load"),
                },
            )
        )
    if "catch_up" in names:
        read = big["replay"]["median"]["events"]
        figures.append(
            growth_figure(
                "growth_catch_up",
                f"Catch-up of a fresh session ({read:,} events), {stored} stored vs empty",
                "events/s",
                big["replay"]["median"]["events_per_s"],
                empty["replay"]["median"]["events_per_s"],
                {
                    **common,
                    "empty": store_details(empty, "replay"),
                    "big": store_details(big, "replay"),
                },
            )
        )
    return figures


def growth_figure(
    key: str, title: str, unit: str, big: float, empty: float, details: dict[str, Any]
) -> Figure:
    r = ratio(big, empty)
    met = None if r is None else r >= GOAL
    return Figure(key, title, unit, big, empty, r, f">= {GOAL:.2f}x", met, details)


def store_details(store: dict[str, Any], measured: str) -> dict[str, Any]:
    """What a figure keeps of one store: its fill, database sizes and its own measurement."""
    return {
        "fill": store["fill"],
        "database_mib_filled": store["database_mib_filled"],
        "database_mib_at_end": store["database_mib_at_end"],
        measured: store[measured],
    }


# =============================================================================================
# The fill worker
# =============================================================================================


async def worker_fill(config: dict[str, Any]) -> dict[str, Any]:
    """Fills a fresh database in-process through Baton's own durable paths (catalog writes and
    the group-commit writer, as bench.replay's worker_populate does), without gRPC: `sessions`
    sessions holding `events` events round-robin (none when 0), then one fresh session holding
    `replay_events`. The event is the one CreateEvent would append for `message_request(...)`.
    Each step is timed."""
    from baton_server.api.mapping import draft_from_request
    from baton_server.app import BatonApp
    from baton_server.config import Settings

    settings = Settings(host=HOST, port=0, database_url=config["database_url"], dev_mode=True)
    app = BatonApp(settings)
    await app.start()
    try:
        repo = app.repository
        draft = draft_from_request(message_request("", config["text"]))
        agent = await repo.create_agent("bench agent", "")
        customer = await repo.create_customer("bench customer", {})
        result: dict[str, Any] = {}
        if config["sessions"]:
            start = time.monotonic()
            ids = await new_sessions(repo, agent.id, customer.id, config["sessions"])
            result["sessions_per_s"] = round(len(ids) / (time.monotonic() - start))
            start = time.monotonic()
            await append_round_robin(repo, ids, config["events"], draft)
            result["appends_per_s"] = round(config["events"] / (time.monotonic() - start))
        (fresh,) = await new_sessions(repo, agent.id, customer.id, 1)
        start = time.monotonic()
        await append_round_robin(repo, [fresh], config["replay_events"], draft)
        result["fresh_appends_per_s"] = round(config["replay_events"] / (time.monotonic() - start))
        result["fresh_session_id"] = fresh
    finally:
        await app.stop(grace=5)
    return {**result, "sessions": config["sessions"], "events": config["events"]}


async def new_sessions(repo: Repository, agent_id: str, customer_id: str, count: int) -> list[str]:
    """`count` AUTO sessions, created concurrently (each its own write transaction)."""
    from baton_server.domain import SessionMode

    gate = asyncio.Semaphore(SESSION_CONCURRENCY)

    async def one() -> str:
        async with gate:
            session = await repo.create_session(agent_id, customer_id, "", SessionMode.AUTO, {})
            return session.id

    return list(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 1800))


async def append_round_robin(
    repo: Repository, session_ids: Sequence[str], events: int, draft: EventDraft
) -> None:
    """`events` appends of `draft`, event i on session i mod n, in gathered waves."""
    for first in range(0, events, FILL_WAVE):
        wave = range(first, min(events, first + FILL_WAVE))
        await asyncio.wait_for(
            asyncio.gather(
                *(repo.append_event(session_ids[i % len(session_ids)], draft) for i in wave)
            ),
            120,
        )


def main(argv: Sequence[str]) -> int:
    parser = figures_parser(
        "Baton's append rate and catch-up on a big store, against an empty store in the same run.",
        BENCHES,
        only_help=f"comma-separated figures to run (default: all of {','.join(BENCHES)})",
        quick_help="short smoke run (under a minute)",
    )
    args = parser.parse_args(argv)
    names = selected(args.only, BENCHES)
    if names is None:
        return 2
    plan = QUICK_GROWTH_PLAN if args.quick else FULL_GROWTH_PLAN
    return run_figures(
        args, plan, lambda workdir: bench_growth(names, plan, workdir), "baton-growth-"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
