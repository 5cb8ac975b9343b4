"""Cross-language smoke scenario for the Python client.

    python clients/python/smoke.py 127.0.0.1:8800

Creates an agent, a customer and a session, follows the session, posts a customer message and
sees it arrive, switches to MANUAL, posts a human agent's message and sees it arrive with its
participant, switches back to AUTO, checks that an unknown session is NOT_FOUND, and checks that
the offsets seen are contiguous from 0 without duplicates. Every wait has a deadline.

Environment: BATON_SMOKE_EXPECT_AI=1 also waits for the AI agent's reply to the customer message
(a MESSAGE from AI_AGENT correlated to it), for up to BATON_SMOKE_AI_TIMEOUT seconds (60);
BATON_TOKEN is sent as a bearer token. Prints one line per check and, last, exactly
"N passed, N failed"; exits 1 when any check failed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from baton.v1 import message_pb2 as pb
from baton_client import BatonClient, Participant, RetryPolicy

WAIT_S = 10.0


class Smoke:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    async def check(self, name: str, step: Callable[[], Awaitable[Any]]) -> bool:
        started = time.monotonic()
        try:
            await step()
        except Exception as exc:
            self.failed += 1
            detail = f"{type(exc).__name__}: {exc}".strip()
            if isinstance(exc, grpc.aio.AioRpcError):
                detail = f"{exc.code().name}: {exc.details()}"
            elif isinstance(exc, AssertionError | TimeoutError):
                detail = f"{type(exc).__name__}: {exc}"
            else:
                traceback.print_exc()
            print(f"FAIL {name}: {detail}", flush=True)
            return False
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - started:.2f}s)", flush=True)
        return True


async def wait_for(predicate: Callable[[], bool], what: str, within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen within {within:g}s")
        await asyncio.sleep(0.01)


async def run(target: str) -> Smoke:
    smoke = Smoke()
    expect_ai = os.environ.get("BATON_SMOKE_EXPECT_AI") == "1"
    ai_timeout = float(os.environ.get("BATON_SMOKE_AI_TIMEOUT", "60"))
    token = os.environ.get("BATON_TOKEN") or None
    state: dict[str, Any] = {}
    seen: list[pb.Event] = []
    follow_error: list[BaseException] = []

    async with BatonClient(target, token=token, deadline=WAIT_S) as client:

        async def connect() -> None:
            try:
                async with asyncio.timeout(WAIT_S):
                    await client.wait_ready()
            except TimeoutError:
                raise TimeoutError(f"no connection within {WAIT_S:g}s") from None

        if not await smoke.check(f"connect to {target}", connect):
            return smoke

        async def create_resources() -> None:
            agent = await client.agents.create("Smoke agent", description="smoke test")
            customer = await client.customers.create("Smoke customer", metadata={"smoke": "1"})
            session = await client.sessions.create(
                agent_id=agent.id, customer_id=customer.id, title="smoke"
            )
            assert session.id and session.mode == pb.SESSION_MODE_AUTO, session
            state["session"] = session

        if not await smoke.check("create agent, customer and session", create_resources):
            return smoke
        session_id = state["session"].id

        follower = client.follow(session_id, retry=RetryPolicy(max_elapsed=WAIT_S))

        async def pump() -> None:
            try:
                async for event in follower:
                    seen.append(event)
            except Exception as exc:
                follow_error.append(exc)

        def arrived(predicate: Callable[[pb.Event], bool]) -> bool:
            if follow_error:
                raise follow_error[0]
            return any(predicate(e) for e in seen)

        pump_task = asyncio.create_task(pump())
        try:

            async def follow_catches_up() -> None:
                await wait_for(lambda: follower.caught_up or bool(follow_error), "caught_up")
                arrived(lambda e: e.offset == 0)

            await smoke.check("follow the session (history, caught_up)", follow_catches_up)

            async def customer_message() -> None:
                event = await client.events.send_message(
                    session_id, "Hello, I need help with my order", source="CUSTOMER"
                )
                state["customer_event"] = event
                await wait_for(
                    lambda: arrived(lambda e: e.id == event.id), "customer message on the stream"
                )

            customer_ok = await smoke.check("customer message arrives", customer_message)

            if expect_ai and customer_ok:
                question = state["customer_event"]

                def is_reply(e: pb.Event) -> bool:
                    return (
                        e.kind == pb.EVENT_KIND_MESSAGE
                        and e.source == pb.EVENT_SOURCE_AI_AGENT
                        and e.correlation_id == question.id
                    )

                async def ai_reply() -> None:
                    await wait_for(lambda: arrived(is_reply), "AI reply", ai_timeout)

                await smoke.check("AI agent's reply arrives", ai_reply)

            async def set_manual() -> None:
                session = await client.sessions.set_mode(session_id, "MANUAL")
                assert session.mode == pb.SESSION_MODE_MANUAL, session.mode
                got = await client.sessions.get(session_id)
                assert got.mode == pb.SESSION_MODE_MANUAL, got.mode

            await smoke.check("set mode MANUAL", set_manual)

            async def human_message() -> None:
                participant = Participant(id="smoke-agent-7", display_name="Hana (smoke)")
                event = await client.events.send_message(
                    session_id,
                    "Hi, this is Hana, I'll take it from here.",
                    source="HUMAN_AGENT",
                    participant=participant,
                )
                await wait_for(
                    lambda: arrived(lambda e: e.id == event.id), "human message on the stream"
                )
                streamed = next(e for e in seen if e.id == event.id)
                assert streamed.source == pb.EVENT_SOURCE_HUMAN_AGENT, streamed.source
                assert streamed.message.participant == participant, streamed.message.participant

            await smoke.check("human agent message arrives with its participant", human_message)

            async def set_auto() -> None:
                session = await client.sessions.set_mode(session_id, "AUTO")
                assert session.mode == pb.SESSION_MODE_AUTO, session.mode

            await smoke.check("set mode AUTO", set_auto)

            async def unknown_session() -> None:
                try:
                    await client.sessions.get("ses_smoke_does_not_exist")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.NOT_FOUND, exc.code()
                    return
                raise AssertionError("GetSession on an unknown id succeeded")

            await smoke.check("GetSession on an unknown id is NOT_FOUND", unknown_session)

            async def contiguous_offsets() -> None:
                head = (await client.sessions.get(session_id)).next_offset
                await wait_for(
                    lambda: arrived(lambda e: e.offset == head - 1), f"offset {head - 1}"
                )
                offsets = [e.offset for e in seen]
                assert offsets[:head] == list(range(head)), f"offsets {offsets}"
                assert len({e.id for e in seen}) == len(seen), "duplicate events"

            await smoke.check("offsets contiguous from 0, no duplicates", contiguous_offsets)
        finally:
            pump_task.cancel()
            await asyncio.gather(pump_task, return_exceptions=True)
            await follower.aclose()
    return smoke


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} HOST:PORT", file=sys.stderr)
        return 2
    smoke = asyncio.run(run(argv[1]))
    print(f"{smoke.passed} passed, {smoke.failed} failed", flush=True)
    return 1 if smoke.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
