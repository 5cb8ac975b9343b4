"""Cross-replica fan-out over PostgreSQL LISTEN/NOTIFY.

Each replica NOTIFYs what it committed and LISTENs for what the others did; a notification
carries only `session:first:head` ranges (never payloads: NOTIFY is capped at 8,000 bytes), and
the receiver reads those events from the store and publishes them on its local bus, where
subscribers de-duplicate by offset and fill any hole from the store. Notifications are coalesced:
commits that land while a NOTIFY is in flight go out together in the next one (NOTIFY takes a
global lock at commit, so one per commit would cap every writer). LISTEN runs on its own
connection; when it drops, the relay reconnects with backoff and re-reads from the store what
its local subscribers may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict

from baton_server.bus.fanout import EventBus
from baton_server.domain import Event, EventFilter
from baton_server.store import Repository
from baton_server.store.pg_notify import PgNotifyChannel

log = logging.getLogger(__name__)

CHANNEL = "baton_events"
MAX_PAYLOAD = 7900
# Per-session delivery marks kept (least recently used dropped first).
MAX_TRACKED_SESSIONS = 100_000
READ_PAGE = 1000


def encode(replica: str, ranges: dict[str, tuple[int, int]]) -> list[str]:
    """`replica|sid:first:head,...` payloads, each under NOTIFY's size limit."""
    payloads: list[str] = []
    current = replica + "|"
    for session_id, (first, head) in ranges.items():
        item = f"{session_id}:{first}:{head}"
        if len(current) + len(item) + 1 > MAX_PAYLOAD and not current.endswith("|"):
            payloads.append(current)
            current = replica + "|"
        current += ("" if current.endswith("|") else ",") + item
    if not current.endswith("|"):
        payloads.append(current)
    return payloads


def decode(payload: str) -> tuple[str, dict[str, tuple[int, int]]]:
    replica, _, body = payload.partition("|")
    ranges: dict[str, tuple[int, int]] = {}
    for item in filter(None, body.split(",")):
        session_id, first, head = item.rsplit(":", 2)
        ranges[session_id] = (int(first), int(head))
    return replica, ranges


class PostgresRelay:
    def __init__(self, database_url: str, repository: Repository, bus: EventBus) -> None:
        self._channel = PgNotifyChannel(
            database_url, CHANNEL, self._on_notification, self._reread_subscribed
        )
        self._repository = repository
        self._bus = bus
        self.replica_id = uuid.uuid4().hex[:12]
        # Offset up to which this replica has published each session's events (its own commits
        # and the ones relayed). Local subscribers fill any hole below it from the store, and
        # each replica's engine reacts to its own commits.
        self._delivered: OrderedDict[str, int] = OrderedDict()
        self._pending: dict[str, tuple[int, int]] = {}
        self._wake = asyncio.Event()
        self._fetching: dict[str, asyncio.Task[None]] = {}
        # Sessions notified again while a fetch for them runs: that fetch reads once more.
        self._dirty: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def reconnects(self) -> int:
        """How often the LISTEN connection was re-established."""
        return self._channel.reconnects

    async def start(self) -> None:
        await self._channel.start()
        self._tasks.append(asyncio.create_task(self._flush_forever(), name="baton-notify"))

    async def close(self) -> None:
        if self._pending:  # the last commits (e.g. shutdown statuses) still reach the others
            with contextlib.suppress(Exception):
                await self._flush()
        for task in [*self._tasks, *self._fetching.values()]:
            task.cancel()
        for task in [*self._tasks, *self._fetching.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._channel.close()

    def _reread_subscribed(self) -> None:
        # Whatever was committed elsewhere while we were deaf: re-read for local subscribers.
        for session_id in self._bus.subscribed_sessions():
            self._fetch_soon(session_id, None)

    # ------------------------------------------------------------------ outgoing

    def on_local_commit(self, events: list[Event]) -> None:
        """Called after every local commit (before local publication is complete is fine)."""
        for event in events:
            sid = event.session_id
            first, head = self._pending.get(sid, (event.offset, event.offset + 1))
            self._pending[sid] = (min(first, event.offset), max(head, event.offset + 1))
            self._mark(sid, event.offset + 1)
        self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Readers still find every event in the store; only liveness suffers meanwhile.
                log.warning("NOTIFY failed (%s); reconnecting the notifier", error)
                await asyncio.sleep(0.1)
                await self._channel.reconnect_notifier()
                self._wake.set()

    async def _flush(self) -> None:
        ranges, self._pending = self._pending, {}
        try:
            for payload in encode(self.replica_id, ranges):
                await self._channel.notify(payload)
        except BaseException:
            for sid, (first, head) in ranges.items():  # send them again with what came since
                old = self._pending.get(sid, (first, head))
                self._pending[sid] = (min(first, old[0]), max(head, old[1]))
            raise

    # ------------------------------------------------------------------ incoming

    def _on_notification(self, payload: str) -> None:
        try:
            replica, ranges = decode(payload)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload[:100])
            return
        if replica == self.replica_id:
            return
        for session_id, (first, head) in ranges.items():
            if head > self._delivered.get(session_id, first):
                self._fetch_soon(session_id, first)

    def _fetch_soon(self, session_id: str, first: int | None) -> None:
        if session_id in self._fetching:
            self._dirty.add(session_id)
            return
        task = asyncio.create_task(self._fetch(session_id, first))
        self._fetching[session_id] = task
        task.add_done_callback(lambda _t: self._fetching.pop(session_id, None))

    async def _fetch(self, session_id: str, first: int | None) -> None:
        try:
            while True:
                self._dirty.discard(session_id)
                head = await self._repository.next_offset(session_id)
                start = self._delivered.get(session_id)
                if start is None:
                    start = first if first is not None else head
                while start < head:
                    events = await self._repository.read_events(
                        session_id, start, head, EventFilter(), READ_PAGE, with_encoded=True
                    )
                    if not events:
                        break
                    self._mark(session_id, events[-1].offset + 1)
                    self._bus.publish(events)
                    start = events[-1].offset + 1
                if session_id not in self._dirty:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.debug("relay fetch for %s failed", session_id, exc_info=True)

    def _mark(self, session_id: str, head: int) -> None:
        if head > self._delivered.get(session_id, -1):
            self._delivered[session_id] = head
        self._delivered.move_to_end(session_id)
        while len(self._delivered) > MAX_TRACKED_SESSIONS:
            self._delivered.popitem(last=False)
