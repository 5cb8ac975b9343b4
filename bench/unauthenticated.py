"""Unauthenticated requests (issue 12, finding 6): what anonymous ~4 MB requests cost the server.

Before the fix (77c1379) the server decoded each request, and walked every string field of it
for NUL characters, BEFORE authenticating it: anonymous callers could make it do ~0.6 s of
work per 4 MB request, on the event loop, and every other call waited behind that. Now the auth
interceptor runs first and refuses an anonymous call from its metadata, before decoding; failed
authentications are also counted per peer address, and once a peer's burst is spent, credentials
that need a database lookup get RESOURCE_EXHAUSTED.

One run of this module starts a real `baton serve` (WITHOUT `--dev`, temp SQLite file, a free
port; bench.server's launcher) and measures, against that one server:

1. bad-key probe  `--probe-calls` sequential tiny CreateEvent calls, each with another made-up
                  API key (the status codes in order: the failure limiter shows here);
2. idle           `--health-calls` sequential `grpc.health.v1.Health/Check` calls (open
                  service, no credentials), p50/p99;
3. loaded         the same while `--clients` concurrent clients (one process, own connection
                  each) loop anonymous `baton.v1.EventService/CreateEvent` calls of `--size`
                  bytes (default 3.9 MB, under the server's 4 MiB limit), for each `--payloads`:
                  `text`   one CreateEventRequest with a 3.9 MB message.text;
                  `struct` a CUSTOM event whose Struct holds ~250,000 small string fields
                           (what makes decoding and the NUL walk expensive);
                  plus the anonymous calls' own latency, rate and status codes, and the server's
                  CPU during the measurement.

Idle and loaded phases alternate `--rounds` times; figures pool the rounds' samples and the
ratio is loaded/idle of the health p50 and p99.

    .venv/bin/python -m bench.unauthenticated --label after           # the working tree
    .venv/bin/python -m bench.unauthenticated --label before \\
        --baton "/work/main/.venv/bin/python -m baton_server" --pythonpath /tmp/oldpath
    .venv/bin/python -m bench.unauthenticated --quick                 # smoke run, no file

Progress on stderr, a table on stdout; each run is appended to `--json` (default
bench/results-unauthenticated.json; `--fresh` starts the file over; `--quick` writes no file
unless `--json` is given). Every child is ended on exit (and gets PR_SET_PDEATHSIG); every wait
is bounded. The anonymous load runs in a worker process (bench.anonymous).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.anonymous import CREATE_EVENT, PAYLOADS, build_payload, worker_anonymous_load
from bench.cli import cancel_on
from bench.clients import gc_paused
from bench.server import ROOT, Procs, Server, WorkerFailed, baton_command, start_baton
from bench.stats import cpu_seconds, log, machine_info, ratio, summarize_ms, write_json

DEFAULT_JSON = ROOT / "bench" / "results-unauthenticated.json"
MACHINE_NOTE = "2-core VM, noisy (shared host): single figures move run to run"


def summarize(values: Sequence[float]) -> dict[str, Any]:
    return summarize_ms(values, mean=True)


def runs_of(codes: Sequence[str]) -> list[list[Any]]:
    """["A", "A", "B"] -> [["A", 2], ["B", 1]]: status codes in the order they came."""
    runs: list[list[Any]] = []
    for code in codes:
        if runs and runs[-1][0] == code:
            runs[-1][1] += 1
        else:
            runs.append([code, 1])
    return runs


async def quiesce(server: Server, timeout_s: float = 30.0) -> float:
    """Waits (bounded) until the server uses < 10 % of a core over 0.5 s; returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_seconds(server.pid)
        await asyncio.sleep(0.5)
        if (cpu_seconds(server.pid) - before) / 0.5 < 0.10:
            break
    return time.monotonic() - started


# =============================================================================================
# Measurements (orchestrator side)
# =============================================================================================


async def health_latencies(
    stub: health_pb2_grpc.HealthStub, calls: int, max_s: float
) -> tuple[list[float], Counter[str]]:
    """Latencies [ms] of `calls` sequential health checks (fewer if `max_s` runs out)."""
    request = health_pb2.HealthCheckRequest(service="")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + max_s
    with gc_paused():
        for _ in range(calls):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                await stub.Check(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies, errors


async def bad_key_probe(target: str, calls: int) -> dict[str, Any]:
    """Sequential tiny CreateEvent calls, each with another made-up API key (key guessing: no
    id is in the server's key cache, so each needs a lookup): status codes in order."""
    payload = build_payload("text", 64)
    codes: list[str] = []
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(CREATE_EVENT)
        started = time.monotonic()
        for i in range(calls):
            metadata = (("authorization", f"Bearer bk_guess{i}_{'0' * 64}"),)
            begun = time.perf_counter()
            try:
                await call(payload, metadata=metadata, timeout=30)
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
            latencies.append((time.perf_counter() - begun) * 1000)
        elapsed = time.monotonic() - started
    return {
        "calls": calls,
        "elapsed_s": elapsed,
        "codes_in_order": runs_of(codes),
        "latency": summarize(latencies),
    }


async def check_refused(target: str) -> None:
    """Without --dev an anonymous call must be refused: otherwise this measures nothing."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await channel.unary_unary(CREATE_EVENT)(build_payload("text", 64), timeout=30)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNAUTHENTICATED:
                return
            raise WorkerFailed(
                f"anonymous CreateEvent: {error.code().name}, expected UNAUTHENTICATED: "
                f"{error.details()}"
            ) from None
    raise WorkerFailed("an anonymous CreateEvent was accepted: is the server in --dev?")


async def loaded_phase(
    procs: Procs,
    server: Server,
    stub: health_pb2_grpc.HealthStub,
    args: argparse.Namespace,
    payload: str,
) -> dict[str, Any]:
    """Health latencies while `args.clients` clients loop anonymous CreateEvents of `payload`."""
    config = {
        "target": server.target,
        "payload": payload,
        "size": args.size,
        "clients": args.clients,
        "timeout_s": 120.0,
    }
    worker = await procs.worker(worker_anonymous_load, config)
    try:
        ready = await worker.expect("READY", timeout_s=300)
        await asyncio.sleep(args.settle)
        server_cpu0, worker_cpu0 = cpu_seconds(server.pid), cpu_seconds(worker.pid)
        window_start = time.monotonic()
        latencies, errors = await health_latencies(stub, args.health_calls, args.max_phase_s)
        window_end = time.monotonic()
        server_cpu = cpu_seconds(server.pid) - server_cpu0
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu0
        await worker.send("STOP")
        result = await worker.expect("RESULT", timeout_s=180)
    finally:
        await procs.stop(worker)
    window = window_end - window_start
    inside = [c for c in result["calls"] if window_start <= c[1] <= window_end]
    anon_ms = [(end - start) * 1000 for start, end, _ in inside]
    return {
        "payload": payload,
        "payload_bytes": ready["payload_bytes"],
        "clients": args.clients,
        "health": summarize(latencies),
        "health_errors": dict(errors),
        "window_s": window,
        "server_cpu_percent": 100 * server_cpu / window,
        "load_client_cpu_percent": 100 * worker_cpu / window,
        "anonymous": {
            **summarize(anon_ms),
            "calls_per_s": len(inside) / window if window > 0 else None,
            "codes_in_window": dict(Counter(c[2] for c in inside)),
            "codes_all": dict(Counter(c[2] for c in result["calls"])),
            "calls_all": len(result["calls"]),
            "server_cpu_ms_per_call": 1000 * server_cpu / len(inside) if inside else None,
            "first_details": result["first_details"],
        },
        "_health_ms": latencies,
        "_anonymous_ms": anon_ms,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-unauth-", dir=args.workdir))
    started_at = datetime.datetime.now(datetime.UTC)
    try:
        async with Procs(workdir) as procs:
            log(f"starting `{args.baton} serve` (PYTHONPATH={args.pythonpath or '-'}) in {workdir}")
            server = await start_baton(
                procs,
                workdir / "baton.db",
                "--nlp", "offline",
                command=shlex.split(args.baton),
                log_level="INFO",
                pythonpath=args.pythonpath,
            )  # fmt: skip
            log(f"baton serving on {server.target}, pid {server.pid}")
            probe = await bad_key_probe(server.target, args.probe_calls)
            log(f"bad-key probe: {probe['codes_in_order']}")
            await check_refused(server.target)
            rounds = await measure_rounds(procs, server, args)
            await procs.stop(server.proc)
        return figures(args, started, started_at, list(server.argv), probe, rounds)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def measure_rounds(
    procs: Procs, server: Server, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Idle and loaded phases, alternating `args.rounds` times."""
    rounds: list[dict[str, Any]] = []
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await health_latencies(stub, 50, 30)  # warm-up
        for index in range(args.rounds):
            await quiesce(server)
            idle, errors = await health_latencies(stub, args.health_calls, args.max_phase_s)
            summary = summarize(idle)
            log(
                f"round {index + 1}: idle health p50 {summary['p50_ms']:.2f} ms, "
                f"p99 {summary['p99_ms']:.2f} ms"
            )
            loaded: dict[str, Any] = {}
            for payload in args.payloads:
                phase = await loaded_phase(procs, server, stub, args, payload)
                loaded[payload] = phase
                anon = phase["anonymous"]
                log(
                    f"round {index + 1}: {payload} load: health p50 "
                    f"{phase['health']['p50_ms']:.2f} ms, p99 {phase['health']['p99_ms']:.2f}"
                    f" ms; anonymous {anon['calls_per_s']:.1f}/s, p50 "
                    f"{anon['p50_ms'] or 0:.1f} ms, codes {anon['codes_in_window']}; "
                    f"server CPU {phase['server_cpu_percent']:.0f} %"
                )
                waited = await quiesce(server)
                if waited > 1:
                    log(f"server busy for {waited:.1f} s after the load stopped")
            rounds.append(
                {
                    "idle": {**summary, "errors": dict(errors)},
                    "loaded": loaded,
                    "_idle_ms": idle,
                }
            )
    return rounds


def figures(
    args: argparse.Namespace,
    started: float,
    started_at: datetime.datetime,
    argv: list[str],
    probe: dict[str, Any],
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    """Pools the rounds' samples into the run's figures; drops the raw samples."""
    idle = summarize([x for r in rounds for x in r.pop("_idle_ms")])
    per_payload: dict[str, Any] = {}
    for payload in args.payloads:
        phases = [r["loaded"][payload] for r in rounds]
        health = summarize([x for p in phases for x in p.pop("_health_ms")])
        anon = summarize([x for p in phases for x in p.pop("_anonymous_ms")])
        codes: Counter[str] = Counter()
        for p in phases:
            codes.update(p["anonymous"]["codes_in_window"])
        window = sum(p["window_s"] for p in phases)
        calls = sum(codes.values())
        server_cpu_s = sum(p["server_cpu_percent"] * p["window_s"] / 100 for p in phases)
        per_payload[payload] = {
            "payload_bytes": phases[0]["payload_bytes"],
            "health_loaded": health,
            "health_p50_ratio": ratio(health["p50_ms"], idle["p50_ms"]),
            "health_p99_ratio": ratio(health["p99_ms"], idle["p99_ms"]),
            "anonymous": {
                **anon,
                "calls_per_s": calls / window if window else None,
                "codes": dict(codes),
                "server_cpu_ms_per_call": 1000 * server_cpu_s / calls if calls else None,
            },
            "server_cpu_percent": 100 * server_cpu_s / window if window else None,
        }
    return {
        "label": args.label,
        "code": args.code,
        "date": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine_info(MACHINE_NOTE),
        "server_command": argv,
        "pythonpath": args.pythonpath,
        "config": {
            "rounds": args.rounds,
            "health_calls_per_phase": args.health_calls,
            "clients": args.clients,
            "size_bytes": args.size,
            "payloads": list(args.payloads),
            "settle_s": args.settle,
            "probe_calls": args.probe_calls,
        },
        "bad_key_probe": probe,
        "health_idle": idle,
        "loaded": per_payload,
        "rounds": rounds,
    }


# =============================================================================================
# Output
# =============================================================================================


def fmt(value: float | None, digits: int = 1) -> str:
    """A table cell: `-` for none, else with thousands separators and `digits` decimals."""
    return "-" if value is None else f"{value:,.{digits}f}"


def table(run: dict[str, Any]) -> str:
    idle = run["health_idle"]
    lines = [
        f"Unauthenticated CreateEvent vs health checks: {run['label']} ({run['code']}), "
        f"{run['config']['rounds']} rounds, {run['config']['clients']} anonymous clients, "
        f"{run['date']}",
        "",
        f"{'':44} {'p50 ms':>9} {'p99 ms':>9} {'x idle p50':>11} {'x idle p99':>11}",
        f"{'health check, idle':44} {fmt(idle['p50_ms'], 2):>9} {fmt(idle['p99_ms'], 2):>9}",
    ]
    for payload, fig in run["loaded"].items():
        health = fig["health_loaded"]
        mb = fig["payload_bytes"] / 1e6
        lines.append(
            f"{f'health check, load: {payload} {mb:.2f} MB':44} {fmt(health['p50_ms'], 2):>9} "
            f"{fmt(health['p99_ms'], 2):>9} {fmt(fig['health_p50_ratio'], 1):>11} "
            f"{fmt(fig['health_p99_ratio'], 1):>11}"
        )
    lines.append("")
    lines.append(
        f"{'anonymous CreateEvent':28} {'p50 ms':>9} {'p99 ms':>9} {'calls/s':>9} "
        f"{'srv CPU %':>10} {'srv CPU ms/call':>16}  codes"
    )
    for payload, fig in run["loaded"].items():
        anon = fig["anonymous"]
        lines.append(
            f"{payload:28} {fmt(anon['p50_ms']):>9} {fmt(anon['p99_ms']):>9} "
            f"{fmt(anon['calls_per_s']):>9} {fmt(fig['server_cpu_percent'], 0):>10} "
            f"{fmt(anon['server_cpu_ms_per_call'], 2):>16}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(anon["codes"].items()))
        )
    probe = run["bad_key_probe"]
    lines.append("")
    lines.append(
        f"made-up API keys, {probe['calls']} sequential tiny calls: "
        + ", then ".join(f"{n}x {code}" for code, n in probe["codes_in_order"])
    )
    return "\n".join(lines)


def summary_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    index: Counter[str] = Counter()
    for run in runs:
        index[run["label"]] += 1
        for payload, fig in run["loaded"].items():
            rows.append(
                {
                    "label": run["label"],
                    "code": run["code"],
                    "run": index[run["label"]],
                    "date": run["date"],
                    "payload": payload,
                    "health_idle_p50_ms": run["health_idle"]["p50_ms"],
                    "health_idle_p99_ms": run["health_idle"]["p99_ms"],
                    "health_loaded_p50_ms": fig["health_loaded"]["p50_ms"],
                    "health_loaded_p99_ms": fig["health_loaded"]["p99_ms"],
                    "health_p50_ratio": fig["health_p50_ratio"],
                    "health_p99_ratio": fig["health_p99_ratio"],
                    "anonymous_p50_ms": fig["anonymous"]["p50_ms"],
                    "anonymous_p99_ms": fig["anonymous"]["p99_ms"],
                    "anonymous_calls_per_s": fig["anonymous"]["calls_per_s"],
                    "anonymous_codes": fig["anonymous"]["codes"],
                    "server_cpu_ms_per_anonymous_call": fig["anonymous"]["server_cpu_ms_per_call"],
                    "server_cpu_percent": fig["server_cpu_percent"],
                    "bad_key_probe": run["bad_key_probe"]["codes_in_order"],
                }
            )
    return rows


def append_run(path: Path, run: dict[str, Any], fresh: bool) -> None:
    document: dict[str, Any] = {}
    if path.exists() and not fresh:
        document = json.loads(path.read_text())
    runs = [*document.get("runs", []), run]
    document = {
        "benchmark": "bench/unauthenticated.py",
        "title": "Unauthenticated requests (issue 12, finding 6)",
        "what": (
            "Health-check latency (grpc.health.v1.Health/Check, sequential) idle vs while "
            "concurrent clients loop anonymous ~3.9 MB CreateEvent calls against `baton serve` "
            "without --dev on SQLite; the anonymous calls' own latency, rate and codes; a probe "
            "of sequential calls each with another made-up API key. 'before' = 77c1379 (decode "
            "and NUL walk before authentication), 'after' = the working tree (authentication "
            "first, failed authentications rate limited per peer)."
        ),
        "machine": run["machine"],
        "updated": run["date"],
        "summary": summary_rows(runs),
        "runs": runs,
    }
    write_json(path, document)


# =============================================================================================
# Entry point
# =============================================================================================


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--baton",
        default=shlex.join(baton_command()),
        help="server command, split like a shell does (default: %(default)s); e.g. "
        "'.venv/bin/python -m baton_server' with --pythonpath for another checkout",
    )
    parser.add_argument(
        "--pythonpath",
        default="",
        help="PYTHONPATH for the server, e.g. /tmp/oldpath (holding a baton_server package)",
    )
    parser.add_argument("--label", default="after", help="e.g. before / after")
    parser.add_argument(
        "--code", default="", help="what code runs, e.g. '77c1379' (default: the label)"
    )
    parser.add_argument("--rounds", type=int, help="idle/loaded alternations (default 2)")
    parser.add_argument(
        "--health-calls", type=int, help="sequential health checks per phase (default 100)"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent anonymous clients")
    parser.add_argument(
        "--size", type=int, default=3_900_000, help="request size in bytes (server limit 4 MiB)"
    )
    parser.add_argument(
        "--payloads",
        type=lambda s: tuple(p for p in s.split(",") if p),
        default=PAYLOADS,
        help="comma-separated, of: text (one big message.text), struct (many small fields)",
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds of load before measuring"
    )
    parser.add_argument(
        "--max-phase-s", type=float, default=180.0, help="cap on one phase's health checks"
    )
    parser.add_argument(
        "--probe-calls", type=int, help="unknown-API-key calls (0: no probe; default 150)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round, 30 health checks per phase, 120 probe calls, no results file "
        "unless --json is given",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help=f"results file the run is appended to (default: {DEFAULT_JSON.relative_to(ROOT)})",
    )
    parser.add_argument("--no-json", action="store_true", help="write no results file")
    parser.add_argument("--fresh", action="store_true", help="start the results file over")
    parser.add_argument("--workdir", default=None, help="parent of the temp directory")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds if args.rounds is not None else (1 if quick else 2)
    args.health_calls = (
        args.health_calls if args.health_calls is not None else (30 if quick else 100)
    )
    args.probe_calls = args.probe_calls if args.probe_calls is not None else (120 if quick else 150)
    unknown = set(args.payloads) - set(PAYLOADS)
    if unknown or not args.payloads:
        parser.error(f"--payloads: choose from {', '.join(PAYLOADS)}")
    if args.size >= 4 << 20:
        parser.error("--size must stay under the server's 4 MiB message limit")
    if min(args.rounds, args.health_calls, args.clients) < 1:
        parser.error("--rounds, --health-calls and --clients must be at least 1")
    args.code = args.code or args.label
    if args.json is None and not args.quick:
        args.json = DEFAULT_JSON
    args.no_json = args.no_json or args.json is None
    return args


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on(signal.SIGTERM)
    return await measure(args)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        run = asyncio.run(orchestrate(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130
    except WorkerFailed as error:
        log(f"FAILED: {error}")
        return 1
    print(table(run))
    if not args.no_json:
        append_run(args.json, run, args.fresh)
        log(f"appended to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
