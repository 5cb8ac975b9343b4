"""Baton benchmark suite: four figures, each measured against a baseline in the same run.

1. throughput  durable CreateEvent calls/s (64 concurrent clients) vs a no-op grpc.aio handler
2. latency     append→delivery p50/p99 on follow streams vs an in-memory grpc.aio fan-out
3. replay      catch-up replay of stored events (events/s) vs pre-built in-memory responses
4. memory      server RSS per idle follow stream vs a bare grpc.aio streaming handler

Every server (Baton via `baton serve`, and the baselines of bench.baseline) runs in its own
process, and every client (load generator, subscribers, stream holders) in another, so a server
and its client each get a core. This module is the orchestrator:

    .venv/bin/python -m bench.run [--quick] [--only replay,memory] [--json PATH]

Each figure lives in its own module (bench.throughput, .latency, .replay, .memory); the plans in
bench.plans. See bench/README.md for what each figure means and the latest results.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.cli import figures_parser, run_figures, selected
from bench.latency import bench_latency
from bench.memory import bench_memory
from bench.plans import FULL_PLAN, QUICK_PLAN, Plan
from bench.replay import bench_replay
from bench.stats import Figure, OtherCpuMeter, log
from bench.throughput import bench_throughput

BENCHES = {
    "throughput": bench_throughput,
    "latency": bench_latency,
    "replay": bench_replay,
    "memory": bench_memory,
}


async def run_benches(names: Sequence[str], plan: Plan, workdir: Path) -> list[Figure]:
    figures: list[Figure] = []
    for name in names:
        meter = OtherCpuMeter()
        new = await BENCHES[name](plan, workdir)
        other = meter.cores()
        for figure in new:
            figure.details["other_processes_cores"] = round(other, 2)
        figures.extend(new)
        log(f"{name} done in {meter.elapsed():.0f}s; other processes used {other:.2f} cores")
    return figures


def main(argv: Sequence[str]) -> int:
    parser = figures_parser(
        "Baton benchmarks, each figure against a baseline measured in the same run.",
        list(BENCHES),
        only_help=f"comma-separated figures to run (default: all of {','.join(BENCHES)})",
        quick_help="short smoke run (~1 min)",
    )
    parser.add_argument(
        "--duration", type=float, help="override the throughput measuring window (seconds)"
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        default="",
        help="run throughput and latency on fresh databases of this PostgreSQL (e.g. the URL "
        "`.ci/postgres start` prints) instead of SQLite files",
    )
    args = parser.parse_args(argv)
    names = selected(args.only, list(BENCHES))
    if names is None:
        return 2
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.duration:
        plan = replace(plan, duration_s=args.duration)
    if args.postgres:
        plan = replace(plan, postgres_admin_url=args.postgres)
    return run_figures(
        args, plan, lambda workdir: run_benches(names, plan, workdir), "baton-bench-"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
