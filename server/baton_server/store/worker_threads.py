"""Threads that run blocking store calls for the event loop, one queue hop each way.

`loop.run_in_executor` wraps every call in a concurrent.futures.Future (a condition variable,
its lock) chained to an asyncio future by two callbacks; on the append path that was a few
percent of the event loop's time. Here a call is a tuple on a SimpleQueue in, and one
`call_soon_threadsafe` out that settles the awaiting future.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class WorkerThreads:
    """`count` threads taking calls in FIFO order (one thread: calls run in submission order)."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # Daemon threads: close() drains and joins them; a process dying without close() must
        # not hang on an idle thread (SQLite's transactions keep the file consistent anyway).
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    async def call(self, work: Callable[[], T]) -> T:
        """`work()` on one of the threads; its result or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((work, future, loop))
        return await future

    def close(self) -> None:
        """Runs every call already queued, then ends the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            work, future, loop = job
            try:
                outcome: tuple[Any, BaseException | None] = (work(), None)
            except BaseException as error:  # handed to the awaiting caller
                outcome = (None, error)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop closed meanwhile: no one is waiting
                pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the work's effect stands regardless
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
