"""Cross-language smoke scenario for the Python client (see clients/smoke-all.sh).

    python clients/python/smoke.py 127.0.0.1:8800

Runs against a server with authentication ON and the example agent's tools. Environment:
BATON_SMOKE_INTEGRATION_KEY, BATON_SMOKE_OPERATOR_KEY, BATON_SMOKE_OPERATOR_ID (the operator id
the key is bound to), BATON_SMOKE_RESTART (a shell command line that restarts the server on the
same address; the restart step is skipped when unset). Uses only the client's public API.
Prints one line per step and "smoke python: ok" last; exits 1 with a message on failure.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterable, Callable

from baton_client import (
    BatonClient,
    BatonError,
    HandoffChange,
    Participant,
    RetryPolicy,
    Unauthenticated,
    pb,
    rr,
)

DEADLINE_S = 90.0  # the whole scenario
WAIT_S = 30.0  # one condition
WRONG_KEY = "bk_key_0000000000000000_wrongwrongwrong"


class SmokeFailure(Exception):
    pass


def step(text: str) -> None:
    print(f"smoke python: {text}", flush=True)


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SmokeFailure(f"{name} is not set")
    return value


class Collected:
    """Runs an async iterator in a task and keeps what it yields (or the error it ended with)."""

    def __init__(self, iterator: AsyncIterable[object], name: str) -> None:
        self.items: list[object] = []
        self.error: BaseException | None = None
        self.name = name
        self._iterator = iterator
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for item in self._iterator:
                self.items.append(item)
        except Exception as exc:
            self.error = exc

    async def wait(self, predicate: Callable[[object], bool], what: str, start: int = 0) -> object:
        """The first item (from index `start`) matching `predicate`, waiting for it."""
        deadline = time.monotonic() + WAIT_S
        while True:
            for item in self.items[start:]:
                if predicate(item):
                    return item
            if self.error is not None:
                raise SmokeFailure(f"{self.name} failed while waiting for {what}: {self.error}")
            if time.monotonic() > deadline:
                raise SmokeFailure(f"{what} not seen on the {self.name} within {WAIT_S:g}s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def run(target: str) -> None:
    integration_key = env("BATON_SMOKE_INTEGRATION_KEY")
    operator_key = env("BATON_SMOKE_OPERATOR_KEY")
    operator_id = env("BATON_SMOKE_OPERATOR_ID")
    restart = os.environ.get("BATON_SMOKE_RESTART", "")
    retry = RetryPolicy(initial_delay=0.1, max_delay=2.0, max_elapsed=60.0)

    async with (
        BatonClient(target, api_key=integration_key, retry=retry) as integration,
        BatonClient(target, api_key=operator_key, retry=retry) as operator,
    ):
        # 1. The integration sets up an agent, its guideline, a customer and a session.
        agent = await integration.agents.create("Smoke agent (python)")
        await integration.guidelines.create(
            agent.id,
            condition="The customer asks for a human",
            action="Tell the customer you are connecting them with a colleague",
            tool_names=["initiate_human_handoff"],
        )
        customer = await integration.customers.create("Smoke customer (python)")
        session = await integration.sessions.create(agent_id=agent.id, customer_id=customer.id)
        first_token = await integration.auth.issue_customer_token(customer.id)
        assert first_token.token, "IssueCustomerToken returned no token"
        step(f"agent {agent.id}, session {session.id}, customer token issued")

        # 2. The customer's credentials come from a provider (called when a token is needed).
        issued: list[str] = []

        async def customer_token() -> rr.IssueCustomerTokenResponse:
            response = await integration.auth.issue_customer_token(customer.id)
            issued.append(response.token)
            return response

        async with BatonClient(target, token_provider=customer_token, retry=retry) as cust:
            follow = Collected(cust.follow(session.id, from_offset=0), "customer's follow")
            inbox = Collected(
                operator.watch_handoffs(operator=Participant(id=operator_id, display_name="Olga")),
                "operator's inbox watch",
            )
            try:
                await scenario(integration, operator, cust, session, follow, inbox, operator_id)
                if restart:
                    await after_restart(cust, integration, session, follow, inbox, restart)
                else:
                    step("BATON_SMOKE_RESTART not set: restart step skipped")
            finally:
                await follow.stop()
                await inbox.stop()
            if not issued:
                raise SmokeFailure("the token provider was never called")
            step(f"token provider called {len(issued)} time(s)")

        # 5. A wrong key fails with UNAUTHENTICATED, with a reason.
        async with BatonClient(target, api_key=WRONG_KEY) as wrong:
            try:
                await wrong.agents.list()
            except Unauthenticated as error:
                step(f"wrong key: {error.code().name}, reason {error.reason!r}")
                if not error.reason:
                    raise SmokeFailure("UNAUTHENTICATED without an ErrorInfo reason") from None
            else:
                raise SmokeFailure("a wrong key was accepted")


def is_message(source: int, text: str | None = None) -> Callable[[object], bool]:
    def check(item: object) -> bool:
        return (
            isinstance(item, pb.Event)
            and item.kind == pb.EVENT_KIND_MESSAGE
            and item.source == source
            and (text is None or item.message.text == text)
        )

    return check


def handoff_change(session_id: str, *types: int) -> Callable[[object], bool]:
    def check(item: object) -> bool:
        return (
            isinstance(item, HandoffChange)
            and item.handoff.session_id == session_id
            and item.type in types
        )

    return check


async def scenario(
    integration: BatonClient,
    operator: BatonClient,
    customer: BatonClient,
    session: pb.Session,
    follow: Collected,
    inbox: Collected,
    operator_id: str,
) -> None:
    question = await customer.events.send_message(session.id, "Can I talk to a human please?")
    await follow.wait(lambda e: isinstance(e, pb.Event) and e.id == question.id, "the question")
    step(f"customer posted at offset {question.offset}; the follow has it")

    # 3. The operator sees the handoff the tool opened, claims it, writes, releases it.
    change = await inbox.wait(
        lambda c: (
            handoff_change(
                session.id, pb.HANDOFF_CHANGE_TYPE_REQUESTED, pb.HANDOFF_CHANGE_TYPE_OPEN
            )(c)
            and isinstance(c, HandoffChange)
            and c.handoff.state == pb.HANDOFF_STATE_PENDING
        ),
        "the PENDING handoff",
    )
    assert isinstance(change, HandoffChange)
    handoff = change.handoff
    step(f"inbox: handoff {handoff.id} PENDING (requested by {handoff.requested_by})")
    olga = Participant(id=operator_id, display_name="Olga")
    claimed = await operator.handoffs.claim(handoff.id, olga)
    if claimed.state != pb.HANDOFF_STATE_CLAIMED:
        raise SmokeFailure(f"claim left the handoff in state {claimed.state}")
    text = "Hi, this is Olga. How can I help?"
    await operator.events.send_message(session.id, text, source="HUMAN_AGENT", participant=olga)
    await follow.wait(is_message(pb.EVENT_SOURCE_HUMAN_AGENT, text), "the operator's message")
    step("operator claimed and wrote; the customer's follow has the message")
    released = await operator.handoffs.release(
        handoff.id, "RETURNED_TO_AI", operator_id=operator_id
    )
    if released.outcome != pb.HANDOFF_OUTCOME_RETURNED_TO_AI:
        raise SmokeFailure(f"release ended with outcome {released.outcome}")
    step("handoff released to the AI")

    # 4. The AI answers the next question.
    order = await customer.events.send_message(session.id, "Where is my order 12345?")
    await follow.wait(
        lambda e: (
            is_message(pb.EVENT_SOURCE_AI_AGENT)(e)
            and isinstance(e, pb.Event)
            and e.correlation_id == order.id
        ),
        "the AI's answer",
    )
    step("the AI answered on the follow")


async def after_restart(
    customer: BatonClient,
    integration: BatonClient,
    session: pb.Session,
    follow: Collected,
    inbox: Collected,
    restart: str,
) -> None:
    # 6. Restart with the follow and the inbox watch open.
    before_inbox = len(inbox.items)
    result = await asyncio.to_thread(
        subprocess.run, ["sh", "-c", restart], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise SmokeFailure(f"restart command failed: {result.stdout}{result.stderr}")
    step("server restarted")
    still = await customer.events.send_message(session.id, "Are you still there?")
    await follow.wait(lambda e: isinstance(e, pb.Event) and e.id == still.id, "the message")
    # "a human": the server's lexical matcher (--offline-matcher lexical) needs the word of the
    # guideline's condition; "I want to talk to a person" alone covers none of it.
    again = await customer.events.send_message(
        session.id, "I want to talk to a person, a human please"
    )
    await follow.wait(lambda e: isinstance(e, pb.Event) and e.id == again.id, "the request")
    second = await inbox.wait(
        handoff_change(session.id, pb.HANDOFF_CHANGE_TYPE_REQUESTED),
        "a handoff change after the restart",
        start=before_inbox,
    )
    step("after the restart: follow and inbox watch delivered new items")
    # Leave no open handoff behind for the next language's smoke: the integration withdraws it.
    assert isinstance(second, HandoffChange)
    await integration.handoffs.release(second.handoff.id, "ABANDONED")

    # The follow delivered every event once: compare with a fresh read of the log with the
    # same (customer) credentials. A customer does not see the staff-only events (tool calls,
    # handoff bookkeeping), so its offsets have holes; the integration's read has none.
    everything = [e.offset for e in await integration.events.history(session.id)]
    if everything != list(range(len(everything))):
        raise SmokeFailure(f"stored offsets not 0..n: {everything}")
    stored = [(e.offset, e.id) for e in await customer.events.history(session.id)]
    last = stored[-1][0]
    await follow.wait(lambda e: isinstance(e, pb.Event) and e.offset == last, "the last event")
    followed = [(e.offset, e.id) for e in follow.items if isinstance(e, pb.Event)]
    if followed[: len(stored)] != stored:
        raise SmokeFailure(f"follow {followed} differs from the stored log {stored}")
    offsets = [offset for offset, _ in followed]
    if any(b <= a for a, b in itertools.pairwise(offsets)) or offsets[0] != 0:
        raise SmokeFailure(f"follow offsets not increasing from 0, each once: {offsets}")
    step(
        f"follow: {len(stored)} events (offsets 0..{offsets[-1]} visible to the customer), "
        "each once, as a fresh read returns them"
    )

    # The inbox delivered changes with strictly increasing positions (the snapshot's OPEN
    # entries all carry the snapshot's position), none twice.
    changes = [c for c in inbox.items if isinstance(c, HandoffChange)]
    live = [c.position for c in changes if c.type != pb.HANDOFF_CHANGE_TYPE_OPEN]
    if any(b <= a for a, b in itertools.pairwise(live)):
        raise SmokeFailure(f"inbox positions not strictly increasing: {live}")
    step(f"inbox: {len(live)} change(s), positions strictly increasing")


async def main_async(target: str) -> int:
    try:
        async with asyncio.timeout(DEADLINE_S):
            await run(target)
    except TimeoutError:
        print(f"smoke python: FAILED: over the {DEADLINE_S:g}s deadline", flush=True)
        return 1
    except (SmokeFailure, AssertionError) as failure:
        print(f"smoke python: FAILED: {failure}", flush=True)
        return 1
    except BatonError as error:
        print(f"smoke python: FAILED: {type(error).__name__}: {error}", flush=True)
        return 1
    print("smoke python: ok", flush=True)
    return 0


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else os.environ.get("BATON_SMOKE_TARGET", "")
    if not target:
        print(f"usage: {argv[0]} HOST:PORT (or set BATON_SMOKE_TARGET)", file=sys.stderr)
        return 2
    return asyncio.run(main_async(target))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
