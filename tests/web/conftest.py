"""Fixtures for the HTTP port: the gRPC suite's `start_server` and `baton`, but every test gets
stubs that speak Connect (binary, JSON) or gRPC-Web to the server's --http-port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from baton_server.app import BatonApp
from tests.support import Stubs
from tests.web_support import TRANSPORTS, HttpClients


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite only: what these tests cover is the HTTP transport, which is the same whatever
    the store; the gRPC suite runs the same contract tests on both stores. (Three transports
    times two stores took CI a minute and a half more.)"""
    yield f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"


@pytest.fixture
async def start_server(start_server: Any, transport: str) -> AsyncIterator[Any]:
    """As the suite's start_server (same settings and overrides), with the HTTP port on; returns
    (app, stubs over `transport`)."""
    opened: list[HttpClients] = []

    async def start(**overrides: Any) -> tuple[BatonApp, Stubs]:
        overrides.setdefault("http_port", 0)
        app, _ = await start_server(**overrides)
        clients = HttpClients(app.http_port, transport)
        opened.append(clients)
        return app, clients.stubs()

    yield start
    for clients in opened:
        await clients.close()


@pytest.fixture
async def http_clients(transport: str) -> AsyncIterator[Any]:
    """Opens HttpClients (over this test's transport) to a port; closes them at the end."""
    opened: list[HttpClients] = []

    def open_clients(port: int) -> HttpClients:
        clients = HttpClients(port, transport)
        opened.append(clients)
        return clients

    yield open_clients
    for clients in opened:
        await clients.close()
