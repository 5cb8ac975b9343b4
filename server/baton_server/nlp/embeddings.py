"""Sentence vectors for the offline provider, each text embedded once.

The cache is keyed by the text itself: an unchanged guideline or canned response is never
embedded again, an edited one is a new text (embedded on its next use; the old vector ages out of
the LRU). Misses of the turns that reach matching in the same event-loop iteration are embedded
in one batch: while there are few tokens, a forward pass costs what moving its 42 MB of weights
through the matrix products costs, not what the tokens cost (2 tokens 5.9 ms, 16 tokens 7.6 ms,
32 tokens 11 ms on one core here), so one pass for several turns is cheaper than one each.

The forward pass runs on the event loop itself (8-10 ms for a short message on one core, during
which the loop waits). On a worker thread it took twice as long as soon as the loop was busy:
numpy releases the GIL only inside its matmuls, and each of the pass's ~150 other operations
waited for the loop to hand the GIL back.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from baton_server.nlp.minilm import Vectors


class Encoder(Protocol):
    """A sentence encoder: unit-length rows, one per text (MiniLM, or a test's stand-in)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors: ...

    def knows(self, word: str) -> bool:
        """Whether `word` (lower case) is a whole word of the encoder's vocabulary."""
        ...


class EmbeddingCache:
    def __init__(self, encoder: Encoder, *, capacity: int = 4096, max_batch: int = 32) -> None:
        self.encoder = encoder
        self._capacity = capacity
        self._max_batch = max_batch
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Vectors]] = {}
        self._queue: list[str] = []
        self._flushing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Texts run through the encoder so far (tests and benches read it).
        self.embedded = 0

    def __contains__(self, text: str) -> bool:
        return text in self._vectors

    async def vectors(self, texts: Sequence[str]) -> Vectors:
        """One row per text, embedding only the texts not seen before."""
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Work left from another (ended) event loop can never complete there: start over.
            self._loop, self._pending, self._queue, self._flushing = loop, {}, [], False
        for text in texts:
            if text not in self._vectors and text not in self._pending:
                self._pending[text] = loop.create_future()
                self._queue.append(text)
        waiting = {text: self._pending[text] for text in texts if text in self._pending}
        if self._queue and not self._flushing:
            # After the callbacks already due: turns that get here meanwhile join the batch.
            self._flushing = True
            loop.call_soon(self._flush)
        if waiting:
            # Not gather: a cancelled turn must not cancel vectors other turns wait for.
            await asyncio.wait(set(waiting.values()))
        rows = []
        for text in texts:
            future = waiting.get(text)
            if future is not None:
                rows.append(future.result())
            else:
                self._vectors.move_to_end(text)
                rows.append(self._vectors[text])
        return np.stack(rows)

    def _flush(self) -> None:
        self._flushing = False
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        if self._queue:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            rows = self.encoder.embed(batch)
        except Exception as error:
            for text in batch:
                future = self._pending.pop(text)
                if not future.done():
                    future.set_exception(error)
            return
        self.embedded += len(batch)
        for text, row in zip(batch, rows, strict=True):
            self._vectors[text] = row
            future = self._pending.pop(text)
            if not future.done():
                future.set_result(row)
        while len(self._vectors) > self._capacity:
            self._vectors.popitem(last=False)
