"""The command line shared by the figure benches (bench.run, bench.handoffs): `--quick`,
`--only`, `--json`, `--workdir`, `--keep`; progress on stderr, the table on stdout, exit code 0
when the run completed (goals met or not), 1 when a bench process failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.server import WorkerFailed
from bench.stats import Figure, figures_report, log, render_table, write_json


def figures_parser(
    description: str, benches: Sequence[str], only_help: str, quick_help: str
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--only", default=",".join(benches), help=only_help)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="folder for databases and logs")
    parser.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    return parser


def selected(only: str, benches: Sequence[str]) -> list[str] | None:
    """The benches named in `--only`; None (after saying so) when one is unknown."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    if unknown := [n for n in names if n not in benches]:
        print(f"unknown figure(s): {', '.join(unknown)}", file=sys.stderr)
        return None
    return names


def cancel_on(*signals: signal.Signals) -> None:
    """These signals cancel the running task like Ctrl-C does, so every child is still ended."""
    task = asyncio.current_task()
    assert task is not None
    for sig in signals:
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)


def run_figures(
    args: argparse.Namespace,
    plan: Any,
    run: Callable[[Path], Awaitable[list[Figure]]],
    prefix: str,
) -> int:
    """Runs `run(workdir)`, prints the table, writes `--json`; returns the exit code."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    kind = "quick" if args.quick else "full"
    log(f"workdir {workdir} ({kind} run, {os.cpu_count()} CPUs)")
    started = time.monotonic()

    async def main() -> list[Figure]:
        cancel_on(signal.SIGTERM, signal.SIGHUP)
        return await run(workdir)

    try:
        figures = asyncio.run(main())
    except WorkerFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; child processes ended", file=sys.stderr)
        return 130
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(render_table(figures))
    print(f"\n({kind} run, {elapsed:.0f}s)")
    if args.json:
        write_json(args.json, figures_report(args.quick, elapsed, plan, figures))
    return 0
