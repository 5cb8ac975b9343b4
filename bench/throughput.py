"""bench.run, figure 1: durable CreateEvent throughput vs a no-op unary handler.

64 closed-loop clients (asyncio tasks on 2 channels in one load process), each looping
CreateEvent on its own session, and the variant where all use one shared session; calls
completed in the measuring window after a warm-up. Baseline and Baton alternate
`throughput_rounds` times; each figure is the mean of the rounds.

For context the same load also runs against the floor (bench.baseline, mode floor): Baton's own
request decoding, validation and event encoding without a store, the most any Baton could reach;
and the durable floor (the same with a group-committed SQLite commit at FULL before answering).

The cost of metrics (issue 16): a second Baton with `--metrics-port` takes the own-sessions load
in the same rounds while /metrics is scraped every second (a busy Prometheus scrapes every 15 s);
its rate over the plain Baton's is the figure (goal: at most 5% lower).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.baseline import start_baseline
from bench.clients import MESSAGE_TEXT, create_sessions, fake_session_ids, worker_load
from bench.plans import Plan
from bench.server import Procs, Server, figure_database, free_port, start_baton
from bench.stats import CpuMeter, Figure, log, ratio


async def run_load(
    procs: Procs, server: Server, sessions: Sequence[str], plan: Plan
) -> dict[str, Any]:
    """Runs the load-generator process against `server`; adds the server's CPU use."""
    worker = await procs.worker(
        worker_load,
        {
            "target": server.target,
            "sessions": list(sessions),
            "channels": plan.client_channels,
            "warmup_s": plan.warmup_s,
            "duration_s": plan.duration_s,
            "text": MESSAGE_TEXT,
        },
    )
    await worker.expect("MEASURING", timeout_s=60)
    meter = CpuMeter(server.pid)
    result = await worker.expect("RESULT", timeout_s=plan.duration_s + 60)
    result["server_cpu_pct"] = round(meter.percent(), 1)
    await procs.stop(worker)
    return result


async def bench_throughput(plan: Plan, workdir: Path) -> list[Figure]:
    runs: dict[str, list[dict[str, Any]]] = {
        "baseline": [],
        "floor": [],
        "durable_floor": [],
        "own": [],
        "shared": [],
        "own_metrics": [],
    }
    async with Procs(workdir) as procs:
        noop = await start_baseline(procs, "noop")
        floor = await start_baseline(procs, "floor")
        durable_floor = await start_baseline(
            procs, "durable_floor", database=str(workdir / "durable-floor-throughput.db")
        )
        baton = await start_baton(
            procs, await figure_database(plan.postgres_admin_url, workdir, "throughput"), "--dev"
        )
        sessions = await create_sessions(baton.target, plan.clients + 1)
        metrics_port = free_port()
        metered = await start_baton(
            procs,
            await figure_database(plan.postgres_admin_url, workdir, "throughput-metrics"),
            "--dev",
            "--metrics-port",
            str(metrics_port),
            name="baton-metrics",
        )
        metered_sessions = await create_sessions(metered.target, plan.clients)
        loads = {
            "baseline": (noop, fake_session_ids(plan.clients)),
            "floor": (floor, fake_session_ids(plan.clients)),
            "durable_floor": (durable_floor, fake_session_ids(plan.clients)),
            "own": (baton, sessions[: plan.clients]),
            "shared": (baton, [sessions[-1]] * plan.clients),
            "own_metrics": (metered, metered_sessions),
        }
        for round_no in range(1, plan.throughput_rounds + 1):
            for name, (server, session_ids) in loads.items():
                scraper = (
                    asyncio.create_task(scrape_every_second(metrics_port))
                    if server is metered
                    else None
                )
                result = await run_load(procs, server, session_ids, plan)
                if scraper is not None:
                    scraper.cancel()
                    result["scrapes"] = await scraper
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
                title + (f" [{plan.backend}]" if plan.postgres_admin_url else ""),
                "calls/s",
                value,
                base,
                r,
                ">= 0.70x",
                None if r is None else r >= 0.70,
                {"baton": runs[name], "baseline": runs["baseline"]},
            )
        )
    own, metered_rate = mean_rate("own"), mean_rate("own_metrics")
    r = ratio(metered_rate, own)
    figures.append(
        Figure(
            "throughput_metrics_on",
            "CreateEvent, own sessions, with --metrics-port (scraped every second)",
            "calls/s",
            metered_rate,
            own,
            r,
            ">= 0.95x of Baton without metrics",
            None if r is None else r >= 0.95,
            {"metrics_on": runs["own_metrics"], "metrics_off": runs["own"]},
        )
    )
    for name, title in (
        ("floor", "Context: the floor (validate and encode, no store)"),
        ("durable_floor", "Context: the floor plus a group-committed SQLite commit"),
    ):
        rate = mean_rate(name)
        figures.append(
            Figure(
                f"throughput_{name}",
                title,
                "calls/s",
                rate,
                base,
                ratio(rate, base),
                "none",
                None,
                {name: runs[name], "baseline": runs["baseline"]},
            )
        )
    return figures


async def scrape_every_second(port: int) -> int:
    """Scrapes /metrics each second until cancelled; returns how many scrapes succeeded."""
    done = 0
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            url = f"http://127.0.0.1:{port}/metrics"
            page = await asyncio.to_thread(urllib.request.urlopen, url, None, 5)
            with page:
                if b"baton_rpc_duration_seconds_bucket" in page.read():
                    done += 1
            await asyncio.sleep(1)
    return done
