"""Readiness follows the database: with its PostgreSQL cluster stopped under a live server,
health turns NOT_SERVING and calls answer UNAVAILABLE; started again, health turns SERVING by
itself and the log goes on where it was, with nothing lost or doubled."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from baton.v1 import request_response_pb2 as rr
from baton_server.app import BatonApp
from baton_server.config import Settings
from tests.observe.scrape import Scrape
from tests.pg_cluster import PrivateCluster
from tests.support import Stubs, collect, error_reason

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def status_becomes(
    health: health_pb2_grpc.HealthStub, wanted: int, service: str = "", timeout: float = 15
) -> None:
    async with asyncio.timeout(timeout):
        while True:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            if answer.status == wanted:
                return
            await asyncio.sleep(0.05)


async def test_health_follows_the_database_down_and_back() -> None:
    cluster = await asyncio.to_thread(PrivateCluster)
    app = BatonApp(
        Settings(
            port=0,
            database_url=cluster.url,
            dev_mode=True,
            engine_enabled=False,
            shutdown_grace_s=1.0,
            readiness_interval_s=0.1,
            readiness_timeout_s=1.0,
            metrics_port=0,
        )
    )
    try:
        port = await app.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            baton = Stubs.on(channel)
            session = await baton.new_session()
            before = await baton.say(session.id, "before the outage")
            await status_becomes(health, SERVING)

            await asyncio.to_thread(cluster.stop)
            await status_becomes(health, NOT_SERVING)
            await status_becomes(health, NOT_SERVING, "baton.v1.EventService")
            scrape = await asyncio.to_thread(Scrape, app.metrics_port)
            assert scrape.value("baton_database_up") == 0
            try:
                await baton.say(session.id, "during the outage")
                raise AssertionError("an append succeeded with the database stopped")
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
                assert error_reason(error) == "DATABASE_UNAVAILABLE"

            await asyncio.to_thread(cluster.start)
            await status_becomes(health, SERVING)
            await status_becomes(health, SERVING, "baton.v1.EventService")
            after = await baton.say(session.id, "after the outage")
            assert after.offset == before.offset + 1
            events, _ = await collect(
                baton.events.ListEvents(rr.ListEventsRequest(session_id=session.id))
            )
            texts = [e.message.text for e in events if e.WhichOneof("data") == "message"]
            assert texts == ["before the outage", "after the outage"]
            scrape = await asyncio.to_thread(Scrape, app.metrics_port)
            assert scrape.value("baton_database_up") == 1
    finally:
        await app.stop(grace=1.0)
        await asyncio.to_thread(cluster.close)
