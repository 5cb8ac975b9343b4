"""A server SIGKILLed in the middle of a burst of idempotent appends loses nothing it
acknowledged, and retries with the same idempotency keys complete the logs exactly once.

Extends test_durability's stop/kill scenario: 16 clients (each on its own connection) append
bursts with idempotency keys to shared sessions; the kill comes when a given number of appends
has been acknowledged; the server restarts on the same database; every client then retries
what it did not see acknowledged (and re-sends some of what it did).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from tests.support import ServerProcess, Stubs, collect, customer_message

CLIENTS = 16
SESSIONS = 4
PER_CLIENT = 120
KILL_AFTER_ACKS = CLIENTS * PER_CLIENT // 3
CALL_TIMEOUT_S = 15.0


def key_of(client: int, n: int) -> str:
    return f"c{client:02d}-{n:04d}"


def request_of(session_id: str, key: str) -> rr.CreateEventRequest:
    # The text names the key: Event does not carry its idempotency key, the log is checked by it.
    return customer_message(session_id, f"message {key}", idempotency_key=key)


@dataclass
class Client:
    number: int
    session_id: str
    acknowledged: dict[str, pb.Event] = field(default_factory=dict)
    # Sent, but the server died before answering: in the log or not, both are correct.
    unanswered: set[str] = field(default_factory=set)

    @property
    def keys(self) -> list[str]:
        return [key_of(self.number, n) for n in range(PER_CLIENT)]


async def burst(target: str, clients: list[Client], server: ServerProcess) -> int:
    """Each client appends its keys in order until the server dies; the kill comes right after
    the KILL_AFTER_ACKS-th acknowledgement. Returns the number acknowledged."""
    acknowledged = 0

    async def run(client: Client) -> None:
        nonlocal acknowledged
        async with grpc.aio.insecure_channel(target) as channel:
            stubs = Stubs.on(channel)
            for key in client.keys:
                client.unanswered.add(key)
                try:
                    response = await stubs.events.CreateEvent(
                        request_of(client.session_id, key), timeout=CALL_TIMEOUT_S
                    )
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    return
                client.unanswered.discard(key)
                client.acknowledged[key] = response.event
                acknowledged += 1
                if acknowledged == KILL_AFTER_ACKS:
                    server.kill()

    await asyncio.gather(*(run(client) for client in clients))
    return acknowledged


async def read_log(stubs: Stubs, session_id: str) -> list[pb.Event]:
    events, _ = await collect(
        stubs.events.ListEvents(rr.ListEventsRequest(session_id=session_id)), timeout=30
    )
    return events


def check_log(events: list[pb.Event]) -> dict[str, pb.Event]:
    """Offsets 0..n-1, no duplicate event or key; returns the client events by key."""
    assert [e.offset for e in events] == list(range(len(events))), "offsets must be 0..n-1"
    assert len({e.id for e in events}) == len(events), "duplicate event id"
    by_key: dict[str, pb.Event] = {}
    for event in events[1:]:  # offset 0 is baton.session_created
        key = event.message.text.removeprefix("message ")
        assert key not in by_key, f"{key} twice: offsets {by_key[key].offset}, {event.offset}"
        by_key[key] = event
    return by_key


async def test_sigkill_mid_burst_then_idempotent_retries_complete_logs_exactly_once(
    database_url: str,
) -> None:
    server = ServerProcess(database_url, "--no-engine")  # SQLite: synchronous FULL (default)
    server.start()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stubs = Stubs.on(channel)
            session_ids = [(await stubs.new_session()).id for _ in range(SESSIONS)]
        clients = [Client(n, session_ids[n % SESSIONS]) for n in range(CLIENTS)]
        acknowledged = await burst(server.target, clients, server)
        assert server.process is not None and server.process.returncode is not None
    finally:
        server.kill()
    assert KILL_AFTER_ACKS <= acknowledged < CLIENTS * PER_CLIENT, "the kill must be mid-burst"
    assert any(client.unanswered for client in clients), "no request was cut off by the kill"

    restarted = ServerProcess(database_url, "--no-engine")
    restarted.start()
    try:
        async with grpc.aio.insecure_channel(restarted.target) as channel:
            stubs = Stubs.on(channel)
            # 1. Everything acknowledged survived, at its offset, with its content; nothing
            #    that was never sent is there; only cut-off requests may be there unacknowledged.
            for session_id in session_ids:
                logged = check_log(await read_log(stubs, session_id))
                mine = [c for c in clients if c.session_id == session_id]
                for client in mine:
                    for key, event in client.acknowledged.items():
                        assert key in logged, f"acknowledged {key} lost"
                        assert logged[key] == event, f"{key} changed after the restart"
                allowed = {k for c in mine for k in (*c.acknowledged, *c.unanswered)}
                assert logged.keys() <= allowed, f"unexpected events: {logged.keys() - allowed}"

            # 2. Every client retries what it did not see acknowledged, plus some it did.
            async def retry(client: Client) -> None:
                resend = [k for k in client.keys if k not in client.acknowledged]
                resend += list(client.acknowledged)[::7]
                for key in resend:
                    response = await stubs.events.CreateEvent(
                        request_of(client.session_id, key), timeout=CALL_TIMEOUT_S
                    )
                    event = response.event
                    if key in client.acknowledged:
                        assert event == client.acknowledged[key], f"retry of {key} not original"
                    client.acknowledged[key] = event

            await asyncio.gather(*(retry(client) for client in clients))

            # 3. Each key exactly once, where its (last) acknowledgement said.
            for session_id in session_ids:
                logged = check_log(await read_log(stubs, session_id))
                mine = [c for c in clients if c.session_id == session_id]
                assert sorted(logged) == sorted(k for c in mine for k in c.keys)
                for client in mine:
                    for key, event in client.acknowledged.items():
                        assert logged[key] == event, key
    finally:
        restarted.kill()
