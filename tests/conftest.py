"""Fixtures: a real grpc.aio Baton server on a loopback port over a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from baton_server.app import BatonApp
from baton_server.config import Settings
from tests.postgres import fresh_postgres_database
from tests.support import Stubs

ServerFactory = Callable[..., "AsyncIterator[tuple[BatonApp, Stubs]]"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Every server test runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # NORMAL keeps the suite fast; FULL (the default) is covered by the durability tests.
    # The engine is off here so log tests see only what they append; engine tests turn it on.
    # Authentication is off (dev mode) except in the auth tests, which turn it on.
    return Settings(
        port=0,
        database_url=database_url,
        sqlite_synchronous="NORMAL",
        shutdown_grace_s=2.0,
        engine_enabled=False,
        dev_mode=True,
    )


@pytest.fixture
async def start_server(settings: Settings):  # type: ignore[no-untyped-def]
    """Starts servers (with optional setting overrides); stops them all at the end."""
    started: list[tuple[BatonApp, grpc.aio.Channel]] = []

    async def start(**overrides: Any) -> tuple[BatonApp, Stubs]:
        """Setting overrides, plus `clock` (handoff times follow it) and `provider` (an
        NLPProvider instance instead of the configured one)."""
        extra = {
            name: overrides.pop(name)
            for name in ("clock", "provider", "tracer_provider")
            if name in overrides
        }
        app = BatonApp(replace(settings, **overrides), **extra)
        port = await app.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        started.append((app, channel))
        return app, Stubs.on(channel)

    yield start
    for app, channel in reversed(started):
        await channel.close()
        await app.stop(grace=1.0)


@pytest.fixture
async def baton(start_server) -> Stubs:  # type: ignore[no-untyped-def]
    _, stubs = await start_server()
    return stubs
