"""bench.handoffs, figure 2: operators racing `ClaimHandoff` for one handoff vs one uncontended
`ClaimHandoff`.

`race_handoffs` times: a handoff is requested (not timed), then `race_operators` operators, each
on its own connection, claim it at once; wall time = first send → last answer. Each race is
checked afterwards: exactly one OK, the others FAILED_PRECONDITION, the handoff CLAIMED by the
winner, exactly one `baton.handoff_claimed` event in the session log. The baseline, alternating
with the races, is one uncontended claim of another handoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2_grpc as svc
from bench.clients import create_sessions, gc_paused, new_channel
from bench.inbox import lifecycle
from bench.plans import HandoffPlan
from bench.server import Procs, Server
from bench.stats import CpuMeter, Figure, fmt, log, ratio, summarize_ms


def claimed_events(events: Sequence[Any], handoff_id: str) -> int:
    return sum(1 for e in events if lifecycle(e) == (handoff_id, "claimed"))


async def worker_race(config: dict[str, Any]) -> dict[str, Any]:
    """Alternates: one handoff claimed by one operator (baseline), one raced by N operators,
    each operator on its own connection. Then checks every race had exactly one winner, the
    handoff names it, and the session log holds exactly one claim."""
    operators = config["operators"]
    channels = [new_channel(config["target"]) for _ in range(operators)]
    stubs = [svc.HandoffServiceStub(c) for c in channels]
    events = svc.EventServiceStub(channels[0])
    single_ms: list[float] = []
    races: list[dict[str, Any]] = []

    async def request(session_id: str) -> str:
        response = await stubs[0].RequestHandoff(
            rr.RequestHandoffRequest(session_id=session_id, reason="race"), timeout=30
        )
        return str(response.handoff.id)

    async def claim(index: int, handoff_id: str) -> tuple[str, float, float]:
        started = time.monotonic()
        try:
            await stubs[index].ClaimHandoff(
                rr.ClaimHandoffRequest(
                    handoff_id=handoff_id,
                    operator=pb.Participant(id=f"op-{index}", display_name=f"Operator {index}"),
                ),
                timeout=60,
            )
            outcome = "OK"
        except grpc.aio.AioRpcError as error:
            outcome = error.code().name
        return outcome, started, time.monotonic()

    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        with gc_paused():
            for single_session, race_session in zip(
                config["single_sessions"], config["race_sessions"], strict=True
            ):
                handoff_id = await request(single_session)
                await asyncio.sleep(0.02)
                outcome, started, ended = await claim(0, handoff_id)
                if outcome != "OK":
                    raise RuntimeError(f"uncontended claim failed: {outcome}")
                single_ms.append((ended - started) * 1000)

                handoff_id = await request(race_session)
                await asyncio.sleep(0.02)
                results = await asyncio.gather(*(claim(i, handoff_id) for i in range(operators)))
                winners = [i for i, r in enumerate(results) if r[0] == "OK"]
                races.append(
                    {
                        "handoff_id": handoff_id,
                        "session_id": race_session,
                        "wall_ms": (max(r[2] for r in results) - min(r[1] for r in results)) * 1000,
                        "winner_ms": (results[winners[0]][2] - results[winners[0]][1]) * 1000
                        if winners
                        else None,
                        "winners": winners,
                        "losers": sorted({r[0] for r in results if r[0] != "OK"}),
                    }
                )
        for race in races:  # verification, not timed
            handoff = (
                await stubs[0].GetHandoff(rr.GetHandoffRequest(handoff_id=race["handoff_id"]))
            ).handoff
            log_events = []
            async for response in events.ListEvents(
                rr.ListEventsRequest(session_id=race["session_id"]), timeout=30
            ):
                log_events.extend(response.events)
            winner = race["winners"][0] if len(race["winners"]) == 1 else None
            race["ok"] = (
                winner is not None
                and race["losers"] == ["FAILED_PRECONDITION"]
                and handoff.state == pb.HANDOFF_STATE_CLAIMED
                and handoff.operator.id == f"op-{winner}"
                and claimed_events(log_events, race["handoff_id"]) == 1
            )
    finally:
        for channel in channels:
            await channel.close()
    return {"single_ms": single_ms, "races": races}


async def bench_race(procs: Procs, server: Server, plan: HandoffPlan) -> list[Figure]:
    sessions = await create_sessions(server.target, 2 * plan.race_handoffs, concurrency=16)
    log(f"race: {plan.race_handoffs} races of {plan.race_operators} operators")
    meter = CpuMeter(server.pid)
    racer = await procs.worker(
        worker_race,
        {
            "target": server.target,
            "operators": plan.race_operators,
            "single_sessions": sessions[: plan.race_handoffs],
            "race_sessions": sessions[plan.race_handoffs :],
        },
    )
    result = await racer.expect("RESULT", timeout_s=300)
    server_cpu = round(meter.percent(), 1)
    races = result["races"]
    wall = summarize_ms([r["wall_ms"] for r in races])
    winner = summarize_ms([r["winner_ms"] for r in races if r["winner_ms"] is not None])
    single = summarize_ms(result["single_ms"])
    exact = sum(1 for r in races if r["ok"])
    log(
        f"  race wall p50/p99 {fmt(wall['p50_ms'])}/{fmt(wall['p99_ms'])} ms, single claim "
        f"{fmt(single['p50_ms'])}/{fmt(single['p99_ms'])} ms; exactly one winner in "
        f"{exact}/{len(races)}"
    )
    details = {
        "race_wall": wall,
        "race_winner_call": winner,
        "single_claim": single,
        "races": len(races),
        "races_with_exactly_one_winner": exact,
        "bad_races": [r for r in races if not r["ok"]],
        "server_cpu_pct": server_cpu,
    }
    figures = []
    for q in ("p50", "p99"):
        value, base = wall[f"{q}_ms"], single[f"{q}_ms"]
        figures.append(
            Figure(
                f"race_{q}",
                f"Claim race of {plan.race_operators}, wall {q}",
                "ms",
                value,
                base,
                ratio(value, base),
                "context",
                None,
                details if q == "p99" else {},
            )
        )
    figures.append(
        Figure(
            "race_winners",
            "Races with exactly one winner",
            "races",
            exact,
            len(races),
            ratio(exact, len(races)),
            "all",
            exact == len(races),
            {},
        )
    )
    return figures
