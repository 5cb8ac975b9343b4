"""Several `baton serve` processes on one PostgreSQL: offsets, cross-replica live streams."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import grpc
import pytest

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.store.pg_notify import asyncpg_dsn
from tests.postgres import fresh_postgres_database
from tests.support import ServerProcess, Stubs, collect, customer_message


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


@asynccontextmanager
async def running_replicas(
    url: str, count: int, *flags: str
) -> AsyncIterator[tuple[list[ServerProcess], list[Stubs]]]:
    """`count` `baton serve` processes on one database, with a client for each."""
    replicas = [ServerProcess(url, *flags) for _ in range(count)]
    channels: list[grpc.aio.Channel] = []
    try:
        # All at once, on a fresh database: they race to migrate it.
        await asyncio.gather(*(asyncio.to_thread(replica.start) for replica in replicas))
        channels = [grpc.aio.insecure_channel(r.target) for r in replicas]
        yield replicas, [Stubs.on(c) for c in channels]
    finally:
        for channel in channels:
            await channel.close()
        for replica in replicas:
            replica.kill()


def human(session_id: str, text: str) -> rr.CreateEventRequest:
    return rr.CreateEventRequest(
        session_id=session_id,
        kind=pb.EVENT_KIND_MESSAGE,
        source=pb.EVENT_SOURCE_HUMAN_AGENT,
        message=pb.MessageData(text=text, participant=pb.Participant(id="op", display_name="Op")),
    )


async def test_three_replicas_one_subscriber_sees_every_offset_once(postgres_url: str) -> None:
    async with running_replicas(postgres_url, 3, "--no-engine") as (_replicas, stubs):
        session = await stubs[0].new_session()
        stream = stubs[0].events.ListEvents(
            rr.ListEventsRequest(session_id=session.id, follow=True)
        )
        await collect(stream, until_caught_up=True)
        per_replica, writers = 1000, 10

        async def writer(replica: Stubs, w: int) -> None:
            for i in range(per_replica // writers):
                await replica.events.CreateEvent(human(session.id, f"{w}-{i}"), timeout=30)

        await asyncio.gather(*(writer(s, w) for s in stubs for w in range(writers)))
        # The first human message also took the session over (a few handoff events).
        head = (
            await stubs[1].sessions.GetSession(rr.GetSessionRequest(session_id=session.id))
        ).session.next_offset
        events, _ = await collect(stream, until_offset=head - 1, timeout=120)
        stream.cancel()
        assert [e.offset for e in events] == list(range(1, head))
        said = [e for e in events if e.source == pb.EVENT_SOURCE_HUMAN_AGENT]
        assert len(said) == 3 * per_replica


async def test_live_delivery_survives_a_dropped_listen_connection(postgres_url: str) -> None:
    # Short heartbeats: an idle follow stream re-checks the store that often.
    async with running_replicas(postgres_url, 2, "--no-engine", "--heartbeat", "0.5") as (
        _replicas,
        stubs,
    ):
        a, b = stubs
        session = await a.new_session()
        stream = a.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
        await collect(stream, until_caught_up=True)
        admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'baton-listen' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert killed == 2
        # Appended right away, possibly while replica A is not listening: still delivered.
        after = [
            (await b.events.CreateEvent(human(session.id, f"after {i}"))).event for i in range(5)
        ]
        events, _ = await collect(stream, until_offset=after[-1].offset, timeout=30)
        stream.cancel()
        # Every offset once, in order (the first human message also records its takeover).
        assert [e.offset for e in events] == list(range(1, after[-1].offset + 1))
        said = [e.offset for e in events if e.source == pb.EVENT_SOURCE_HUMAN_AGENT]
        assert said == [e.offset for e in after]


async def test_a_turn_runs_once_across_replicas(postgres_url: str) -> None:
    async with running_replicas(postgres_url, 2) as (_replicas, stubs):
        a, b = stubs
        session = await a.new_session()
        stream = a.events.ListEvents(rr.ListEventsRequest(session_id=session.id, follow=True))
        await collect(stream, until_caught_up=True)
        sent = []
        for text in ("hello there", "and again"):
            message = (await b.events.CreateEvent(customer_message(session.id, text))).event
            sent.append(message)
            async with asyncio.timeout(30):
                async for response in stream:
                    if any(
                        e.correlation_id == message.id and e.status.status == pb.STATUS_READY
                        for e in response.events
                    ):
                        break
        stream.cancel()
        log, _ = await collect(a.events.ListEvents(rr.ListEventsRequest(session_id=session.id)))
        for message in sent:
            acks = [
                e
                for e in log
                if e.correlation_id == message.id and e.status.status == pb.STATUS_ACKNOWLEDGED
            ]
            replies = [
                e
                for e in log
                if e.correlation_id == message.id
                and e.source == pb.EVENT_SOURCE_AI_AGENT
                and e.WhichOneof("data") == "message"
            ]
            assert (len(acks), len(replies)) == (1, 1)


async def test_sigkill_of_one_replica_loses_no_acknowledged_event(postgres_url: str) -> None:
    async with running_replicas(postgres_url, 2, "--no-engine") as (replicas, stubs):
        a, b = stubs
        session = await a.new_session()
        acknowledged: list[str] = []

        async def writer(replica: Stubs) -> None:
            for i in range(300):
                try:
                    event = (
                        await replica.events.CreateEvent(human(session.id, str(i)), timeout=10)
                    ).event
                except grpc.aio.AioRpcError:
                    return
                acknowledged.append(event.id)

        writes = [asyncio.create_task(writer(s)) for s in (a, b) for _ in range(4)]
        async with asyncio.timeout(30):
            while len(acknowledged) < 200:
                await asyncio.sleep(0.005)
        replicas[1].process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        await asyncio.gather(*writes)
        log, _ = await collect(a.events.ListEvents(rr.ListEventsRequest(session_id=session.id)))
        assert [e.offset for e in log] == list(range(len(log)))
        assert set(acknowledged) <= {e.id for e in log}
        assert len(log) >= 1 + 4 * 300, "replica A's writers went on"


async def test_the_operator_inbox_sees_changes_made_on_another_replica(postgres_url: str) -> None:
    async with running_replicas(postgres_url, 2, "--no-engine") as (_replicas, stubs):
        a, b = stubs
        watch = a.handoffs.WatchHandoffs(rr.WatchHandoffsRequest())
        async with asyncio.timeout(20):
            async for response in watch:
                if response.caught_up:
                    break
        session = await b.new_session()
        requested = await b.handoffs.RequestHandoff(
            rr.RequestHandoffRequest(session_id=session.id, reason="refund")
        )
        await b.handoffs.ClaimHandoff(
            rr.ClaimHandoffRequest(
                handoff_id=requested.handoff.id, operator=pb.Participant(id="op")
            )
        )
        seen: list[pb.HandoffChange] = []
        async with asyncio.timeout(20):
            async for response in watch:
                seen += response.changes
                if len(seen) >= 2:
                    break
        watch.cancel()
        assert [(c.type, c.handoff.id) for c in seen] == [
            (pb.HANDOFF_CHANGE_TYPE_REQUESTED, requested.handoff.id),
            (pb.HANDOFF_CHANGE_TYPE_CLAIMED, requested.handoff.id),
        ]


async def test_concurrent_controls_on_two_replicas_neither_deadlock_nor_fail(
    postgres_url: str,
) -> None:
    """Claims of different handoffs of one agent, on two replicas, while those customers write:
    every call succeeds (lock order: sessions, then the inbox log head; queue moves are
    announced after commit, one session per transaction)."""
    async with running_replicas(postgres_url, 2, "--no-engine") as (_replicas, stubs):
        a, b = stubs
        first = await a.new_session()
        agent_id = first.agent_id
        sessions = [first]
        for _ in range(11):
            customer = await a.customers.CreateCustomer(
                rr.CreateCustomerRequest(customer=pb.Customer(name="Cy"))
            )
            created = await a.sessions.CreateSession(
                rr.CreateSessionRequest(
                    session=pb.Session(agent_id=agent_id, customer_id=customer.customer.id)
                )
            )
            sessions.append(created.session)
        handoffs = [
            (
                await a.handoffs.RequestHandoff(
                    rr.RequestHandoffRequest(session_id=s.id, reason="help")
                )
            ).handoff
            for s in sessions
        ]

        async def claim(i: int) -> None:
            stub = (a, b)[i % 2]
            await stub.handoffs.ClaimHandoff(
                rr.ClaimHandoffRequest(
                    handoff_id=handoffs[i].id, operator=pb.Participant(id=f"op{i}")
                )
            )

        async def chatter(i: int) -> None:
            stub = (b, a)[i % 2]
            for n in range(5):
                await stub.events.CreateEvent(customer_message(sessions[i].id, f"hello {n}"))

        await asyncio.gather(
            *(claim(i) for i in range(len(handoffs))),
            *(chatter(i) for i in range(len(sessions))),
        )
        for handoff in handoffs:
            got = await b.handoffs.GetHandoff(rr.GetHandoffRequest(handoff_id=handoff.id))
            assert got.handoff.state == pb.HANDOFF_STATE_CLAIMED


async def test_twenty_operators_on_three_replicas_one_winner(postgres_url: str) -> None:
    async with running_replicas(postgres_url, 3, "--no-engine") as (_replicas, stubs):
        session = await stubs[0].new_session()
        handoff = (
            await stubs[1].handoffs.RequestHandoff(
                rr.RequestHandoffRequest(session_id=session.id, reason="help")
            )
        ).handoff
        results = await asyncio.gather(
            *(
                stubs[i % 3].handoffs.ClaimHandoff(
                    rr.ClaimHandoffRequest(
                        handoff_id=handoff.id, operator=pb.Participant(id=f"op{i}")
                    )
                )
                for i in range(20)
            ),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, rr.ClaimHandoffResponse)]
        losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(winners) == 1 and len(losers) == 19
        assert {e.code() for e in losers} == {grpc.StatusCode.FAILED_PRECONDITION}
        events, _ = await collect(
            stubs[2].events.ListEvents(rr.ListEventsRequest(session_id=session.id))
        )
        claims = [
            e
            for e in events
            if e.HasField("custom") and e.custom["type"] == "baton.handoff_claimed"
        ]
        assert len(claims) == 1
        assert claims[0].custom["operator"]["id"] == winners[0].handoff.operator.id
