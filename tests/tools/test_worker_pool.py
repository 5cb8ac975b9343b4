"""The worker pool on its own (no server, no database): who gets a call, limits, failover,
cancellation, and what is remembered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from baton_server.domain import WorkerToolSpec
from baton_server.errors import FailedPrecondition
from baton_server.tools.api import ToolContext, ToolError
from baton_server.tools.workers import (
    WorkerCall,
    WorkerCancel,
    WorkerDeclaration,
    WorkerLink,
    WorkerPool,
    WorkerReply,
    choose_worker,
)
from tests.support import wait_until

SPEC = WorkerToolSpec("lookup", "Looks things up", {"type": "object"})
SAFE = WorkerToolSpec("lookup", "Looks things up", {"type": "object"}, retry_safe=True)


async def no_events(offset: int, kinds: Any) -> list[Any]:
    return []


CONTEXT = ToolContext("ses_1", "agt_1", "cus_1", "evt_1", no_events)


def declaration(name: str, limit: int = 1, spec: WorkerToolSpec = SPEC) -> WorkerDeclaration:
    return WorkerDeclaration(name, (spec,), limit)


async def next_sent(link: WorkerLink) -> WorkerCall | WorkerCancel:
    async with asyncio.timeout(5):
        async for item in link.outgoing(heartbeat_s=60):
            assert item is not None
            return item
    raise AssertionError("the link closed")


def test_choose_worker_prefers_the_least_loaded_share_then_the_longest_idle() -> None:
    busy = WorkerLink("busy", declaration("busy", limit=4), order=0)
    idle = WorkerLink("idle", declaration("idle", limit=1), order=1)
    for i in range(1, 3):
        busy._in_flight[f"c{i}"] = asyncio.Future  # type: ignore[assignment]
    # busy runs 2 of 4 (half); idle runs none: idle goes first.
    assert choose_worker([busy, idle]) is idle
    idle._in_flight["c"] = asyncio.Future  # type: ignore[assignment]
    assert choose_worker([busy, idle]) is busy  # idle is at its limit
    busy.draining = True
    assert choose_worker([busy, idle]) is None
    a = WorkerLink("a", declaration("a"), order=5)
    b = WorkerLink("b", declaration("b"), order=3)
    assert choose_worker([a, b]) is b  # equally loaded: the one given a call longest ago


async def test_sequential_calls_take_turns_between_idle_workers() -> None:
    pool = WorkerPool()
    one = await pool.connect(declaration("one"))
    two = await pool.connect(declaration("two"))
    served: list[str] = []
    for _ in range(4):
        call = asyncio.create_task(pool.call("lookup", {}, CONTEXT, 5.0))
        sent = await asyncio.wait_for(
            asyncio.shield(asyncio.ensure_future(_first_of({"one": one, "two": two}))),
            5,
        )
        name, item = sent
        assert isinstance(item, WorkerCall)
        served.append(name)
        pool.settle({"one": one, "two": two}[name], WorkerReply(item.call_id, {"ok": True}))
        assert (await call).data == {"ok": True}
    assert served == ["one", "two", "one", "two"]


async def _first_of(links: dict[str, WorkerLink]) -> tuple[str, WorkerCall | WorkerCancel]:
    waits = {asyncio.ensure_future(next_sent(link)): name for name, link in links.items()}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    [first] = done
    return waits[first], first.result()


async def test_a_retry_safe_call_moves_to_another_worker_with_the_next_attempt() -> None:
    pool = WorkerPool()
    first = await pool.connect(declaration("first", spec=SAFE))
    call = asyncio.create_task(pool.call("lookup", {"q": 1}, CONTEXT, 5.0))
    sent = await next_sent(first)
    assert isinstance(sent, WorkerCall) and sent.attempt == 1
    second = await pool.connect(declaration("second", spec=SAFE))
    pool.disconnect(first)
    again = await next_sent(second)
    assert isinstance(again, WorkerCall)
    assert (again.call_id, again.attempt, again.arguments) == (sent.call_id, 2, {"q": 1})
    assert again.deadline_us == sent.deadline_us  # one deadline for every attempt
    pool.settle(second, WorkerReply(again.call_id, "found"))
    assert (await call).data == "found"


async def test_a_call_not_safe_to_retry_fails_when_its_worker_leaves() -> None:
    pool = WorkerPool()
    first = await pool.connect(declaration("first"))
    second = await pool.connect(declaration("second"))
    call = asyncio.create_task(pool.call("lookup", {}, CONTEXT, 5.0))
    winner, _ = await _first_of({"first": first, "second": second})
    pool.disconnect({"first": first, "second": second}[winner])
    with pytest.raises(ToolError, match="not declared retry_safe"):
        await call


async def test_a_cancelled_call_is_cancelled_on_its_worker_and_frees_its_slot() -> None:
    pool = WorkerPool()
    link = await pool.connect(declaration("only"))
    call = asyncio.create_task(pool.call("lookup", {}, CONTEXT, 5.0))
    sent = await next_sent(link)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    cancel = await next_sent(link)
    assert isinstance(cancel, WorkerCancel) and cancel.call_id == sent.call_id
    assert link.in_flight == 0 and link.has_room()
    # A late answer is ignored.
    pool.settle(link, WorkerReply(sent.call_id, "late"))
    assert link.in_flight == 0


async def test_a_call_waits_for_room_and_fails_at_once_without_workers() -> None:
    pool = WorkerPool()
    with pytest.raises(ToolError, match="no tool worker serving 'lookup'"):
        await pool.call("lookup", {}, CONTEXT, 5.0)
    link = await pool.connect(declaration("only", limit=1))
    first = asyncio.create_task(pool.call("lookup", {}, CONTEXT, 5.0))
    sent = await next_sent(link)
    second = asyncio.create_task(pool.call("lookup", {}, CONTEXT, 5.0))
    # The second waits for room: nothing more is sent until the first is answered.
    await wait_until(lambda: pool.waiting == 1)
    assert link.in_flight == 1
    pool.settle(link, WorkerReply(sent.call_id, 1))
    assert (await first).data == 1
    later = await next_sent(link)
    assert isinstance(later, WorkerCall)
    pool.settle(link, WorkerReply(later.call_id, 2))
    assert (await second).data == 2


async def test_a_worker_error_is_the_calls_error() -> None:
    pool = WorkerPool()
    link = await pool.connect(declaration("only"))
    call = asyncio.create_task(pool.call("lookup", {}, CONTEXT, 5.0))
    sent = await next_sent(link)
    pool.settle(link, WorkerReply(sent.call_id, error="order system down"))
    with pytest.raises(ToolError, match=r"^order system down$"):
        await call


async def test_names_of_python_tools_are_refused_and_changes_remembered() -> None:
    remembered: list[list[str]] = []

    async def remember(specs: list[WorkerToolSpec]) -> None:
        remembered.append([s.name for s in specs])

    async def recall() -> list[WorkerToolSpec]:
        return []

    pool = WorkerPool(reserved=lambda name: name == "python_tool")
    pool.remember_with(remember, recall)
    with pytest.raises(FailedPrecondition, match="loaded into the server"):
        await pool.connect(
            WorkerDeclaration("w", (WorkerToolSpec("python_tool", "", {"type": "object"}),), 1)
        )
    await pool.connect(declaration("a"))
    await pool.connect(declaration("b"))  # the same declaration: nothing new to keep
    await pool.connect(declaration("c", spec=SAFE))  # changed: kept again
    assert remembered == [["lookup"], ["lookup"]]
    assert pool.spec("lookup") == SAFE
