"""WorkerThreads: the store's thread hop (results, errors, order, cancellation, close)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from baton_server.store.worker_threads import WorkerThreads


async def test_returns_the_result_computed_on_a_worker_thread() -> None:
    threads = WorkerThreads(1, "t")
    try:
        name = await threads.call(lambda: threading.current_thread().name)
        assert name == "t-0"
        assert name != threading.current_thread().name
    finally:
        threads.close()


async def test_the_callers_get_the_exception_their_call_raised() -> None:
    threads = WorkerThreads(2, "t")

    def fail() -> None:
        raise LookupError("no such row")

    try:
        with pytest.raises(LookupError, match="no such row"):
            await threads.call(fail)
        assert await threads.call(lambda: 7) == 7  # the thread survived it
    finally:
        threads.close()


async def test_one_thread_runs_calls_in_submission_order() -> None:
    threads = WorkerThreads(1, "t")
    seen: list[int] = []
    try:
        await asyncio.gather(*(threads.call(lambda i=i: seen.append(i)) for i in range(200)))
        assert seen == list(range(200))
    finally:
        threads.close()


async def test_a_cancelled_caller_does_not_stop_the_call_or_the_thread() -> None:
    threads = WorkerThreads(1, "t")
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        finished.set()
        return "done"

    try:
        waiter = asyncio.ensure_future(threads.call(slow))
        assert await asyncio.to_thread(started.wait, 10)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        assert await threads.call(lambda: "next") == "next"
        assert finished.is_set()
    finally:
        threads.close()


async def test_close_runs_what_was_queued_then_ends_the_threads() -> None:
    threads = WorkerThreads(2, "t")
    gate = threading.Event()
    ran: list[int] = []
    lock = threading.Lock()

    def job(i: int) -> None:
        gate.wait(10)
        with lock:
            ran.append(i)

    calls = [asyncio.ensure_future(threads.call(lambda i=i: job(i))) for i in range(10)]
    await asyncio.sleep(0)  # queued
    gate.set()
    await asyncio.to_thread(threads.close)
    assert sorted(ran) == list(range(10))
    assert not any(t.is_alive() for t in threads._threads)
    await asyncio.gather(*calls)
