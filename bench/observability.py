"""What operating Baton costs (issue 16): CreateEvent throughput with observability off, with
metrics on, with tracing on, and from the commit before any of it existed, in the same run.

    .venv/bin/python -m bench.observability [--quick] [--before REV] [--json PATH]

Five `baton serve` processes on SQLite files take the same load in turn (64 closed-loop
clients, own sessions, as figure 1 of bench.run), ROUNDS times (8; 5 s windows), each round in
a rotated order. Rounds on these 2 shared cores differ by up to ±10%, so each figure is the
median over rounds of the ratio within a round (paired, so drift between rounds cancels):
- before: REV (default: the commit before issue 16) checked out in a git worktree;
- off: this checkout with nothing turned on (the default);
- metrics: `--metrics-port`, /metrics scraped every second;
- tracing: OTLP over gRPC to a sink in this process that accepts and drops every span;
- tracing_sampled: the same with OTEL_TRACES_SAMPLER=parentbased_traceidratio at 0.1.
Figures: off vs before (disabled costs nothing measurable: within the noise of the rounds),
metrics vs off (goal >= 0.95), tracing vs off, all and sampled (for the record). Server CPU
per call is given too: on these noisy 2 cores it varies less than the rate.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
from collections.abc import Sequence
from concurrent import futures
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc

from bench.cli import figures_parser, run_figures
from bench.clients import create_sessions
from bench.plans import FULL_PLAN, QUICK_PLAN, Plan
from bench.server import ROOT, Procs, Server, free_port, start_baton
from bench.stats import Figure, log, ratio
from bench.throughput import run_load, scrape_every_second

# The last commit before issue 16's observability work.
BEFORE = "7c4f295"


def worktree(rev: str, workdir: Path) -> Path:
    path = workdir / f"before-{rev}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev], check=True
    )
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
    )


def span_sink() -> tuple[grpc.Server, int]:
    """An OTLP/gRPC trace endpoint that accepts every export and keeps nothing."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Sink(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self, request: Any, context: Any
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


async def bench_observability(
    plan: Plan, workdir: Path, before_rev: str, rounds: int
) -> list[Figure]:
    before_tree = worktree(before_rev, workdir)
    sink, sink_port = span_sink()
    metrics_port = free_port()
    try:
        async with Procs(workdir) as procs:
            servers: dict[str, Server] = {
                "before": await start_baton(
                    procs,
                    workdir / "before.db",
                    "--dev",
                    name="baton-before",
                    command=[sys.executable, "-m", "baton_server"],
                    pythonpath=str(before_tree / "server"),
                ),
                "off": await start_baton(procs, workdir / "off.db", "--dev", name="baton-off"),
                "metrics": await start_baton(
                    procs,
                    workdir / "metrics.db",
                    "--dev",
                    "--metrics-port",
                    str(metrics_port),
                    name="baton-metrics",
                ),
                "tracing": await start_baton(
                    procs,
                    workdir / "tracing.db",
                    "--dev",
                    name="baton-tracing",
                    env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"},
                ),
                "tracing_sampled": await start_baton(
                    procs,
                    workdir / "tracing-sampled.db",
                    "--dev",
                    name="baton-tracing-sampled",
                    env={
                        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
                        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                        "OTEL_TRACES_SAMPLER_ARG": "0.1",
                    },
                ),
            }
            sessions = {
                name: await create_sessions(server.target, plan.clients)
                for name, server in servers.items()
            }
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            names = list(servers)
            for round_no in range(1, rounds + 1):
                shift = (round_no - 1) % len(names)
                for name in names[shift:] + names[:shift]:
                    server = servers[name]
                    scraper = (
                        asyncio.create_task(scrape_every_second(metrics_port))
                        if name == "metrics"
                        else None
                    )
                    result = await run_load(procs, server, sessions[name], plan)
                    if scraper is not None:
                        scraper.cancel()
                        result["scrapes"] = await scraper
                    result["server_cpu_ms_per_call"] = round(
                        10 * result["server_cpu_pct"] / result["calls_per_s"], 4
                    )
                    runs[name].append(result)
                    log(
                        f"round {round_no}/{rounds}, {name}: "
                        f"{result['calls_per_s']:,.0f} calls/s, "
                        f"{result['server_cpu_ms_per_call']:.3f} ms server CPU per call"
                    )
    finally:
        sink.stop(0)
        remove_worktree(before_tree)
    return figures(runs, before_rev)


def figures(runs: dict[str, list[dict[str, Any]]], before_rev: str) -> list[Figure]:
    def mean(name: str, key: str) -> float:
        return sum(r[key] for r in runs[name]) / len(runs[name])

    out = []
    cases: list[tuple[str, str, str, str, float | None]] = [
        (
            "off",
            "before",
            f"all off vs {before_rev}, before it existed",
            ">= 0.97x",
            0.97,
        ),
        ("metrics", "off", "metrics on (scraped every second) vs off", ">= 0.95x", 0.95),
        ("tracing", "off", "tracing on, every span exported, vs off", "none", None),
        ("tracing_sampled", "off", "tracing on, 10% of traces sampled, vs off", "none", None),
    ]
    for name, base, title, goal, threshold in cases:
        value, baseline = mean(name, "calls_per_s"), mean(base, "calls_per_s")
        paired = [
            a["calls_per_s"] / b["calls_per_s"] for a, b in zip(runs[name], runs[base], strict=True)
        ]
        r = round(statistics.median(paired), 3)
        cpu, base_cpu = mean(name, "server_cpu_ms_per_call"), mean(base, "server_cpu_ms_per_call")
        out.append(
            Figure(
                f"observability_{name}",
                f"CreateEvent calls/s: {title} (median of round ratios)",
                "calls/s",
                value,
                baseline,
                r,
                goal,
                None if threshold is None or r is None else r >= threshold,
                {
                    "ratio_of_means": ratio(value, baseline),
                    "ratios_by_round": [round(x, 3) for x in paired],
                    "server_cpu_ms_per_call": {name: round(cpu, 4), base: round(base_cpu, 4)},
                    "server_cpu_ratio": ratio(cpu, base_cpu),
                    name: runs[name],
                    base: runs[base],
                },
            )
        )
    return out


def main(argv: Sequence[str]) -> int:
    parser = figures_parser(
        "What metrics and tracing cost, and what they cost when off.",
        ["observability"],
        only_help="(one figure set)",
        quick_help="one short round (~1 min)",
    )
    parser.add_argument("--before", default=BEFORE, help="the revision to compare against")
    parser.add_argument("--rounds", type=int, help="rounds (default: 8; quick: 1)")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else replace(FULL_PLAN, duration_s=5.0, warmup_s=1.5)
    rounds = args.rounds or (1 if args.quick else 8)

    async def run(workdir: Path) -> list[Figure]:
        return await bench_observability(plan, workdir, args.before, rounds)

    return run_figures(args, plan, run, "bench-observability-")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
