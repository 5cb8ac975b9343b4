"""tests/pg_cluster.PrivateCluster: a cluster a test may stop and start without harming others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.pg_cluster import PrivateCluster


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    with PrivateCluster() as cluster:
        yield cluster


async def test_stop_refuses_connections_and_start_brings_back_the_data(
    cluster: PrivateCluster,
) -> None:
    url = make_url(cluster.url)
    assert (url.drivername, url.host, url.port) == ("postgresql+asyncpg", "127.0.0.1", cluster.port)
    connection = await asyncpg.connect(cluster.dsn)
    await connection.execute("CREATE TABLE notes (text text NOT NULL)")
    await connection.execute("INSERT INTO notes VALUES ('written before the stop')")

    await asyncio.to_thread(cluster.stop)
    assert not cluster.running()
    # The open connection was ended by the fast shutdown, and no new one is accepted.
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await connection.fetchval("SELECT 1")
    connection.terminate()
    with pytest.raises(OSError):
        await asyncpg.connect(cluster.dsn, timeout=5)

    await asyncio.to_thread(cluster.start)
    connection = await asyncpg.connect(cluster.dsn)
    try:
        rows = await connection.fetch("SELECT text FROM notes")
        assert [row["text"] for row in rows] == ["written before the stop"]
    finally:
        await connection.close()


async def test_close_stops_the_server_and_removes_its_files() -> None:
    cluster = await asyncio.to_thread(PrivateCluster)
    await (await asyncpg.connect(cluster.dsn)).close()
    await asyncio.to_thread(cluster.close)
    assert not cluster.directory.exists()
    with pytest.raises(OSError):
        await asyncpg.connect(cluster.dsn, timeout=5)
