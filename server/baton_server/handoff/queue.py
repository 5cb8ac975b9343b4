"""Waiting customers' places in the queue: told when they join it (in the transaction that
opens their handoff) and again whenever it moves (after the commit that moved it)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from baton_server.domain import Actor, Event, Handoff, HandoffPolicy
from baton_server.handoff.drafts import queue_event
from baton_server.store import Repository, Transaction
from baton_server.store import handoffs as rows

log = logging.getLogger(__name__)

# Queue-position updates posted per transaction when the queue moves (the rest see theirs on
# the next move); bounds the cost of a claim on a long queue.
MAX_QUEUE_UPDATES = 50


async def tell_position(
    conn: Transaction,
    repository: Repository,
    handoff: Handoff,
    policy: HandoffPolicy,
    actor: Actor | None,
    correlation_id: str = "",
) -> list[Event]:
    """Tells the customer of `handoff` (whose session the transaction holds) their place and
    estimated wait."""
    queue = await rows.pending_queue(conn, handoff.agent_id)
    waits = await rows.recent_claim_waits_us(conn, handoff.agent_id)
    for position, waiting in enumerate(queue, start=1):
        if waiting.id == handoff.id:
            draft = queue_event(policy, waiting, position, waits, actor)
            if correlation_id:
                draft = replace(draft, correlation_id=correlation_id)
            return await repository.append_in(conn, waiting.session_id, [draft], actor=actor)
    return []


class QueueAnnouncer:
    """New places for the waiting customers of queues that moved: one small transaction per
    customer, each locking only their session (never inside the changing transaction: locking
    other sessions there could deadlock with appends on PostgreSQL). Bursts coalesce. Baton
    itself tells them (no actor)."""

    def __init__(self, repository: Repository) -> None:
        self._repo = repository
        self._moved: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def moved(self, agent_id: str) -> None:
        """Called inside a transaction that took a handoff out of the agent's queue."""
        self._moved.add(agent_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._announce())

    async def idle(self) -> None:
        """Waits for pending announcements (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])

    async def _announce(self) -> None:
        while self._moved:
            agent_id = self._moved.pop()
            try:
                await self._announce_queue(agent_id)
            except Exception as error:  # best effort: the next move announces again
                log.info("queue positions for agent %s not announced: %s", agent_id, error)

    async def _announce_queue(self, agent_id: str) -> None:
        # Read on the writer, not a pooled reader: `moved` is called inside the transaction
        # that moved the queue, and this runs only after it commits. A reader could see the
        # queue before that commit; every place would then look "moved again meanwhile" and
        # nobody would be told (seen as a flaky queue-position test under load).
        async def read_queue(conn: Transaction) -> tuple[list[Handoff], list[Event]]:
            return await rows.pending_queue(conn, agent_id), []

        queue = (await self._repo.run_write(read_queue))[:MAX_QUEUE_UPDATES]
        for position, waiting in enumerate(queue, start=1):

            async def job(
                conn: Transaction, waiting: Handoff = waiting, position: int = position
            ) -> tuple[None, list[Event]]:
                await rows.lock_session(conn, waiting.session_id)
                current = await rows.pending_queue(conn, agent_id)
                ids = [h.id for h in current]
                if waiting.id not in ids or ids.index(waiting.id) + 1 != position:
                    return None, []  # moved again meanwhile; the next round tells them
                policy = await rows.agent_policy(conn, agent_id)
                waits = await rows.recent_claim_waits_us(conn, agent_id)
                draft = queue_event(policy, waiting, position, waits, None)
                return None, await self._repo.append_in(conn, waiting.session_id, [draft])

            await self._repo.run_write(job)
