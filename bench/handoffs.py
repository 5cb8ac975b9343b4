"""Handoff and auth benchmarks: three figures, each against a baseline measured in the same run.

1. inbox   delivery latency of handoff changes on the operator inbox (`WatchHandoffs`) vs the
           same lifecycle event on the session's own `ListEvents(follow=True)` stream
2. race    20 operators racing `ClaimHandoff` for one handoff (wall time, exactly one winner)
           vs one uncontended `ClaimHandoff`
3. auth    CreateEvent throughput with API-key auth (integration key) vs the same server with
           `--dev`

Same set-up as bench.run: `baton serve` in its own process on a free port, client load in
separate processes, progress on stderr, a table on stdout, `--json`, bounded waits, every child
ended on exit. The figures live in bench.inbox, bench.race and bench.auth; this module is the
orchestrator:

    .venv/bin/python -m bench.handoffs [--quick] [--only inbox,race] [--json PATH]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.auth import bench_auth
from bench.cli import figures_parser, run_figures, selected
from bench.inbox import bench_inbox
from bench.plans import FULL_HANDOFF_PLAN, QUICK_HANDOFF_PLAN, HandoffPlan
from bench.race import bench_race
from bench.server import Procs, start_baton
from bench.stats import Figure, OtherCpuMeter, log

BENCHES = ("inbox", "race", "auth")


async def run_benches(names: Sequence[str], plan: HandoffPlan, workdir: Path) -> list[Figure]:
    figures: list[Figure] = []
    async with Procs(workdir) as procs:
        if "inbox" in names or "race" in names:
            meter = OtherCpuMeter()
            server = await start_baton(
                procs, workdir / "handoffs.db", "--dev", name="baton-handoffs"
            )
            for name, bench in (("inbox", bench_inbox), ("race", bench_race)):
                if name in names:
                    new = await bench(procs, server, plan)
                    new[-1].details["other_processes_cores"] = round(meter.cores(), 2)
                    figures.extend(new)
                    log(f"{name} done at {meter.elapsed():.0f}s")
            await procs.stop(server.proc)
        if "auth" in names:
            meter = OtherCpuMeter()
            new = await bench_auth(procs, workdir, plan)
            new[0].details["other_processes_cores"] = round(meter.cores(), 2)
            figures.extend(new)
            log(f"auth done in {meter.elapsed():.0f}s; other processes {meter.cores():.2f} cores")
    return figures


def main(argv: Sequence[str]) -> int:
    parser = figures_parser(
        __doc__.split("\n")[0],
        BENCHES,
        only_help="any of inbox,race,auth",
        quick_help="short smoke run (~40 s)",
    )
    parser.add_argument(
        "--inbox-interval", type=float, help="seconds between control RPCs in figure 1"
    )
    args = parser.parse_args(argv)
    names = selected(args.only, BENCHES)
    if names is None:
        return 2
    plan = QUICK_HANDOFF_PLAN if args.quick else FULL_HANDOFF_PLAN
    if args.inbox_interval is not None:
        plan = replace(plan, inbox_interval_s=args.inbox_interval)
    return run_figures(
        args, plan, lambda workdir: run_benches(names, plan, workdir), "baton-handoffs-"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
