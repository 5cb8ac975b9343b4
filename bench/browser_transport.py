"""Browser transport (issue 17): what a Connect or gRPC-Web subscriber sees against a gRPC one,
and which ASGI server carries the HTTP port.

One round, for each ASGI server (`--servers`, default hypercorn, uvicorn, granian):

1. A Baton server in a worker process (`--dev --no-engine`, a temp SQLite file, the default
   FULL sync) with the HTTP port on, its Hypercorn swapped for the server under test (bench
   only: `baton serve` always runs Hypercorn).
2. delivery: one follower process per transport opens a `ListEvents follow=true` stream on one
   session: native gRPC (the baseline), Connect over HTTP/1.1 (binary codec, as the widget's
   connect-web transport), gRPC-Web over HTTP/1.1 and Connect over HTTP/2 cleartext (h2c;
   skipped where the server has no HTTP/2). Once all are caught up, this process appends
   `--events` messages over gRPC, one every `--interval-ms`, each carrying its send time
   (CLOCK_MONOTONIC, shared by the processes); each follower records arrival - send.
3. unary: `--concurrency` closed-loop callers in a worker process call GetSession for
   `--seconds`, over native gRPC (baseline), Connect JSON over HTTP/1.1, and over h2c.

Rounds alternate the servers' order. Figures pool the rounds' samples; ratios are against
the gRPC figures measured on the same server in the same round.

    .venv/bin/python -m bench.browser_transport                 # ~3 min; writes the JSON
    .venv/bin/python -m bench.browser_transport --quick         # smoke run, no file
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.cli import cancel_on
from bench.server import ROOT, Procs
from bench.stats import fmt, log, machine_info, ratio, summarize_ms, write_json
from bench.worker import emit, stdin_reader

DEFAULT_JSON = ROOT / "bench" / "results-browser-transport.json"
SERVERS = ("hypercorn", "uvicorn", "granian")
FOLLOWERS = ("grpc", "connect-h1", "grpc-web-h1", "connect-h2")
UNARY = ("grpc", "connect-json-h1", "connect-json-h2")
HTTP2 = {"hypercorn", "granian"}


# ---------------------------------------------------------------- the server under test


class _Uvicorn:
    def __init__(self, app: Any, host: str, port: int) -> None:
        from baton_server.web.server import bind

        self._app, self._sock = app, bind(host, port)
        self.port = self._sock.getsockname()[1]
        self._task: asyncio.Task[None] | None = None

    async def start(self, grace_s: float) -> None:
        import uvicorn

        config = uvicorn.Config(
            self._app, lifespan="off", log_level="warning", timeout_graceful_shutdown=grace_s
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))

    async def stop(self, grace_s: float) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, grace_s + 2)


class _Granian:
    def __init__(self, app: Any, host: str, port: int) -> None:
        with socket.socket() as sock:
            sock.bind((host, 0))
            self.port = sock.getsockname()[1]
        self._app, self._host = app, host
        self._task: asyncio.Task[None] | None = None

    async def start(self, grace_s: float) -> None:
        from granian.constants import HTTPModes, Interfaces
        from granian.server.embed import Server

        self._server = Server(
            self._app,
            address=self._host,
            port=self.port,
            interface=Interfaces.ASGINL,
            http=HTTPModes.auto,
            log_enabled=False,
        )
        self._task = asyncio.create_task(self._server.serve())
        await asyncio.sleep(0.5)  # it binds in its own runtime: the port is polled by callers

    async def stop(self, grace_s: float) -> None:
        self._server.stop()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, grace_s + 2)


async def worker_server(config: dict[str, Any]) -> dict[str, Any]:
    """Baton in this process, the HTTP port served by config["asgi"]; READY with the ports;
    runs until STOP."""
    import baton_server.app as composition
    from baton_server.app import BatonApp
    from baton_server.config import Settings

    asgi = config["asgi"]
    if asgi == "uvicorn":
        composition.HttpServer = _Uvicorn  # type: ignore[misc,assignment]
    elif asgi == "granian":
        composition.HttpServer = _Granian  # type: ignore[misc,assignment]
    app = BatonApp(
        Settings(
            port=0,
            http_port=0,
            database_url=f"sqlite+aiosqlite:///{config['database']}",
            dev_mode=True,
            engine_enabled=False,
        )
    )
    await app.start()
    emit("READY", {"grpc": app.port, "http": app.http_port})
    reader = await stdin_reader()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.readline(), 3600)  # STOP
    await app.stop(grace=1.0)
    return {}


# ---------------------------------------------------------------- clients


def _http_client(kind: str, address: str, service: str, json: bool = False) -> Any:
    from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
    from connectrpc.protocol import ProtocolType
    from pyqwest import Client, HTTPTransport, HTTPVersion

    from baton.v1 import service_connect

    version = HTTPVersion.HTTP2 if kind.endswith("h2") else HTTPVersion.HTTP1
    protocol = ProtocolType.GRPC_WEB if kind.startswith("grpc-web") else ProtocolType.CONNECT
    codec = google_protobuf_json_codec() if json else google_protobuf_binary_codec()
    http = Client(HTTPTransport(http_version=version))
    return getattr(service_connect, f"{service}Client")(
        address, protocol=protocol, codec=codec, http_client=http
    )


async def worker_follow(config: dict[str, Any]) -> dict[str, Any]:
    """One follow stream over config["kind"]; READY once caught up; the delivery latency of
    each message that arrives live, until config["events"] have."""
    kind, session_id, wanted = config["kind"], config["session_id"], config["events"]
    request = rr.ListEventsRequest(session_id=session_id, follow=True)
    latencies: list[float] = []
    ready = False

    def on(response: Any) -> bool:
        nonlocal ready
        now = time.monotonic_ns()
        for event in response.events:
            if ready and event.kind == pb.EVENT_KIND_MESSAGE:
                latencies.append((now - int(event.message.text)) / 1e6)
        if response.caught_up and not ready:
            ready = True
            emit("READY", {})
        return len(latencies) >= wanted

    async with asyncio.timeout(config["timeout_s"]):
        if kind == "grpc":
            async with grpc.aio.insecure_channel(config["grpc"]) as channel:
                async for response in svc.EventServiceStub(channel).ListEvents(request):
                    if on(response):
                        break
        else:
            async with _http_client(kind, config["http"], "EventService") as client:
                async for response in client.list_events(request):
                    if on(response):
                        break
    return {"latencies_ms": latencies}


async def worker_unary(config: dict[str, Any]) -> dict[str, Any]:
    """config["concurrency"] closed-loop GetSession callers over config["kind"] for
    config["seconds"]: calls per second and their latencies."""
    kind, seconds = config["kind"], config["seconds"]
    request = rr.GetSessionRequest(session_id=config["session_id"])
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        if kind == "grpc":
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(config["grpc"]))
            call = svc.SessionServiceStub(channel).GetSession
        else:
            client = await stack.enter_async_context(
                _http_client(kind, config["http"], "SessionService", json=True)
            )
            call = client.get_session
        await call(request)  # connect (and warm up) before the clock starts
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                await call(request)
                latencies.append((time.perf_counter() - start) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(config["concurrency"])))
        elapsed = time.monotonic() - started
    return {"calls": len(latencies), "seconds": elapsed, "latencies_ms": latencies}


# ---------------------------------------------------------------- orchestration


async def one_server(
    procs: Procs, workdir: Path, asgi: str, args: argparse.Namespace, round_no: int
) -> dict[str, Any]:
    server = await procs.worker(
        worker_server, {"asgi": asgi, "database": str(workdir / f"{asgi}-{round_no}.db")}
    )
    ports = await server.expect("READY", 60)
    grpc_target, http = f"127.0.0.1:{ports['grpc']}", f"http://127.0.0.1:{ports['http']}"
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        session = await _new_session(channel)
        base = {"grpc": grpc_target, "http": http, "session_id": session}
        kinds = [k for k in FOLLOWERS if not k.endswith("h2") or asgi in HTTP2]
        followers = {}
        for kind in kinds:
            followers[kind] = await procs.worker(
                worker_follow, {**base, "kind": kind, "events": args.events, "timeout_s": 600}
            )
        for proc in followers.values():
            await proc.expect("READY", 60)
        events = svc.EventServiceStub(channel)
        for _ in range(args.events):
            text = str(time.monotonic_ns())
            await events.CreateEvent(
                rr.CreateEventRequest(
                    session_id=session,
                    kind=pb.EVENT_KIND_MESSAGE,
                    source=pb.EVENT_SOURCE_CUSTOMER,
                    message=pb.MessageData(text=text),
                )
            )
            await asyncio.sleep(args.interval_ms / 1000)
        delivery = {kind: (await proc.expect("RESULT", 120)) for kind, proc in followers.items()}
        unary = {}
        for kind in [k for k in UNARY if not k.endswith("h2") or asgi in HTTP2]:
            worker = await procs.worker(
                worker_unary,
                {**base, "kind": kind, "seconds": args.seconds, "concurrency": args.concurrency},
            )
            unary[kind] = await worker.expect("RESULT", args.seconds + 120)
    await server.send("STOP")
    await server.expect("RESULT", 60)
    log(f"round {round_no} {asgi}: done")
    return {"delivery": delivery, "unary": unary}


async def _new_session(channel: grpc.aio.Channel) -> str:
    agent = await svc.AgentServiceStub(channel).CreateAgent(
        rr.CreateAgentRequest(agent=pb.Agent(name="bench"))
    )
    customer = await svc.CustomerServiceStub(channel).CreateCustomer(
        rr.CreateCustomerRequest(customer=pb.Customer(name="bench"))
    )
    session = await svc.SessionServiceStub(channel).CreateSession(
        rr.CreateSessionRequest(
            session=pb.Session(agent_id=agent.agent.id, customer_id=customer.customer.id)
        )
    )
    return str(session.session.id)


def figures(rounds: list[dict[str, dict[str, Any]]], servers: Sequence[str]) -> dict[str, Any]:
    """Per server: delivery p50/p99 per transport and its ratio to gRPC's; unary calls/s and
    latency per transport, ratio to gRPC's."""
    out: dict[str, Any] = {}
    for asgi in servers:
        runs = [r[asgi] for r in rounds if asgi in r]
        delivery: dict[str, Any] = {}
        for kind in FOLLOWERS:
            samples = [
                x for run in runs for x in run["delivery"].get(kind, {}).get("latencies_ms", [])
            ]
            if samples:
                delivery[kind] = summarize_ms(samples, mean=True)
        base = delivery.get("grpc", {})
        for summary in delivery.values():
            summary["p50_vs_grpc"] = ratio(summary["p50_ms"], base.get("p50_ms"))
            summary["p99_vs_grpc"] = ratio(summary["p99_ms"], base.get("p99_ms"))
        unary: dict[str, Any] = {}
        for kind in UNARY:
            found = [run["unary"][kind] for run in runs if kind in run["unary"]]
            if found:
                calls = sum(f["calls"] for f in found)
                seconds = sum(f["seconds"] for f in found)
                samples = [x for f in found for x in f["latencies_ms"]]
                unary[kind] = {"calls_per_s": calls / seconds, **summarize_ms(samples)}
        for summary in unary.values():
            summary["rate_vs_grpc"] = ratio(summary["calls_per_s"], unary["grpc"]["calls_per_s"])
        out[asgi] = {"delivery": delivery, "unary": unary}
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        "| ASGI server | transport | delivery p50 ms | p99 ms | p50 / gRPC | p99 / gRPC |",
        "|---|---|---|---|---|---|",
    ]
    for asgi, found in result.items():
        for kind, s in found["delivery"].items():
            lines.append(
                f"| {asgi} | {kind} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | "
                f"{fmt(s['p50_vs_grpc'], 2)} | {fmt(s['p99_vs_grpc'], 2)} |"
            )
    lines += [
        "",
        "| ASGI server | unary GetSession | calls/s | p50 ms | p99 ms | rate / gRPC |",
        "|---|---|---|---|---|---|",
    ]
    for asgi, found in result.items():
        for kind, s in found["unary"].items():
            lines.append(
                f"| {asgi} | {kind} | {fmt(s['calls_per_s'], 0)} | {fmt(s['p50_ms'], 2)} | "
                f"{fmt(s['p99_ms'], 2)} | {fmt(s['rate_vs_grpc'], 2)} |"
            )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    servers = [s for s in args.servers.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="baton-browser-bench-") as folder:
        workdir = Path(folder)
        rounds: list[dict[str, dict[str, Any]]] = []
        async with Procs(workdir) as procs:
            for round_no in range(args.rounds):
                order = servers if round_no % 2 == 0 else list(reversed(servers))
                found: dict[str, dict[str, Any]] = {}
                for asgi in order:
                    try:
                        found[asgi] = await one_server(procs, workdir, asgi, args, round_no)
                    except Exception as error:  # a server that cannot run this is reported
                        log(f"round {round_no} {asgi}: failed: {error}")
                rounds.append(found)
    result = figures(rounds, servers)
    print(table(result))
    if args.json or not args.quick:
        path = Path(args.json) if args.json else DEFAULT_JSON
        document = {
            "machine": machine_info(args.note),
            "settings": vars(args),
            "figures": result,
        }
        runs = []
        if path.exists() and not args.fresh:
            import json

            runs = json.loads(path.read_text()).get("runs", [])
        write_json(path, {"runs": [*runs, document]})
        log(f"results: {path}")
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default="")
    parser.add_argument("--fresh", action="store_true", help="start the JSON file over")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.events, args.seconds = 1, 50, 2.0
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    cancel_on(signal.SIGTERM, signal.SIGHUP)
    return await main_async(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
