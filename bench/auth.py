"""bench.handoffs, figure 3: CreateEvent throughput with API-key authentication (an integration
key on every call) vs the same server binary with `--dev`, each on its own SQLite file.

Closed-loop clients (bench.clients.worker_load), each on its own session; `--dev` and auth
alternate `auth_rounds` times and a figure is the mean of the rounds. The auth server runs with
`--rate-limit 0` (a per-key limit is a setting, not a cost); one extra round with the default
limits shows it, and one `--dev` round with human-agent messages of the handoff's holder shows
that path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from baton.v1 import message_pb2 as pb
from baton_server.config import Settings
from bench.clients import MESSAGE_TEXT, create_sessions, worker_load
from bench.plans import HandoffPlan
from bench.server import Procs, Server, create_key, start_baton
from bench.stats import CpuMeter, Figure, fmt, log, ratio


async def run_load(
    procs: Procs,
    server: Server,
    sessions: list[str],
    secret: str | None,
    plan: HandoffPlan,
    source: int = pb.EVENT_SOURCE_AI_AGENT,
) -> dict[str, Any]:
    load = await procs.worker(
        worker_load,
        {
            "target": server.target,
            "sessions": sessions,
            "secret": secret,
            "source": source,
            "text": MESSAGE_TEXT,
            "channels": plan.auth_channels,
            "warmup_s": plan.auth_warmup_s,
            "duration_s": plan.auth_duration_s,
        },
    )
    meter = CpuMeter(server.pid)
    result = await load.expect("RESULT", timeout_s=plan.auth_warmup_s + plan.auth_duration_s + 90)
    result["server_cpu_pct"] = round(meter.percent(), 1)  # includes the warm-up
    await procs.stop(load)
    return result


async def bench_auth(procs: Procs, workdir: Path, plan: HandoffPlan) -> list[Figure]:
    auth_db, dev_db = workdir / "auth.db", workdir / "dev.db"
    secret = await asyncio.to_thread(create_key, auth_db, "integration")
    # Default limits (a per-key rate limit) could cap the key; the figure is auth's cost.
    auth = await start_baton(procs, auth_db, "--rate-limit", "0", name="baton-auth")
    dev = await start_baton(procs, dev_db, "--dev", name="baton-dev")
    systems: dict[str, tuple[Server, list[str], str | None]] = {
        "dev": (dev, await create_sessions(dev.target, plan.auth_clients, concurrency=16), None),
        "auth": (
            auth,
            await create_sessions(auth.target, plan.auth_clients, secret, concurrency=16),
            secret,
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {"dev": [], "auth": []}
    for round_no in range(1, plan.auth_rounds + 1):
        for name, (server, sessions, key) in systems.items():
            result = await run_load(procs, server, sessions, key, plan)
            runs[name].append(result)
            latency = result["call_latency"]
            log(
                f"auth round {round_no}/{plan.auth_rounds}, {name}: "
                f"{result['calls_per_s']:,.0f} calls/s, p50/p99 {fmt(latency['p50_ms'])}/"
                f"{fmt(latency['p99_ms'])} ms, errors {result['errors']} "
                f"(server CPU {result['server_cpu_pct']}%, client {result['client_cpu_pct']}%)"
            )
    await procs.stop(auth.proc)
    # Context: the same key with the default per-key limits (one round, not in the ratio).
    limited = await start_baton(procs, auth_db, name="baton-auth")
    default_limits = await run_load(procs, limited, systems["auth"][1], secret, plan)
    await procs.stop(limited.proc)
    log(
        f"auth with default limits: {default_limits['calls_per_s']:,.0f} calls/s, "
        f"{default_limits['errors']} errors {default_limits['error_codes']}"
    )
    # Context: human agents' messages. The first on each session takes it over (the handoff
    # controls' own transaction, during the warm-up); the holder's next ones ride the group
    # commit with a holder check (server/baton_server/store/appender.py).
    human = await run_load(procs, dev, systems["dev"][1], None, plan, pb.EVENT_SOURCE_HUMAN_AGENT)
    log(
        f"--dev, human-agent messages: {human['calls_per_s']:,.0f} calls/s, p50/p99 "
        f"{fmt(human['call_latency']['p50_ms'])}/{fmt(human['call_latency']['p99_ms'])} ms"
    )

    def mean(name: str, pick: Any) -> float:
        return sum(pick(r) for r in runs[name]) / len(runs[name])

    rate = {n: mean(n, lambda r: r["calls_per_s"]) for n in runs}
    p50 = {n: mean(n, lambda r: r["call_latency"]["p50_ms"]) for n in runs}
    p99 = {n: mean(n, lambda r: r["call_latency"]["p99_ms"]) for n in runs}
    r = ratio(rate["auth"], rate["dev"])
    details = {
        "auth": runs["auth"],
        "dev": runs["dev"],
        "auth_default_limits": default_limits,
        "dev_human_agent_messages": human,
    }
    title = f"CreateEvent, {plan.auth_clients} clients, API key vs --dev"
    return [
        Figure(
            "auth_throughput",
            title,
            "calls/s",
            rate["auth"],
            rate["dev"],
            r,
            ">= 0.90x",
            None if r is None else r >= 0.90,
            details,
        ),
        Figure(
            "auth_p50",
            "  call latency p50",
            "ms",
            p50["auth"],
            p50["dev"],
            ratio(p50["auth"], p50["dev"]),
            "context",
            None,
            {},
        ),
        Figure(
            "auth_p99",
            "  call latency p99",
            "ms",
            p99["auth"],
            p99["dev"],
            ratio(p99["auth"], p99["dev"]),
            "context",
            None,
            {},
        ),
        Figure(
            "auth_default_limits",
            f"  same key, default rate limit ({Settings().rate_limit_per_s:,.0f}/s)",
            "calls/s",
            default_limits["calls_per_s"],
            rate["dev"],
            ratio(default_limits["calls_per_s"], rate["dev"]),
            "context",
            None,
            {},
        ),
        Figure(
            "dev_human_messages",
            "  --dev, human-agent messages (the holder's)",
            "calls/s",
            human["calls_per_s"],
            rate["dev"],
            ratio(human["calls_per_s"], rate["dev"]),
            "context",
            None,
            {},
        ),
    ]
