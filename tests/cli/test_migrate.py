"""`baton migrate` on its own, and `serve --no-migrate` refusing a database it would have to
migrate: for deploys that migrate once, then roll replicas."""

from __future__ import annotations

import asyncio
import subprocess

from typer.testing import CliRunner, Result

from baton_server.cli import app as cli
from baton_server.store.database import head_revision
from tests.support import ROOT, ServerProcess


async def baton(*args: str) -> Result:
    # The commands run their own event loop: keep them off this test's.
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_migrate_then_serve_without_migrating(database_url: str) -> None:
    head = head_revision()
    behind = await baton("migrate", "--database", database_url, "--check")
    assert behind.exit_code == 1, behind.output
    assert f"this server needs {head}" in behind.output

    refused = await asyncio.to_thread(
        subprocess.run,
        ServerProcess(database_url, "--no-migrate").argv(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert refused.returncode == 2
    assert "run `baton migrate` first" in " ".join(refused.stderr.split())

    migrated = await baton("migrate", "--database", database_url)
    assert migrated.exit_code == 0, migrated.output
    assert f"migrated an empty database -> {head}" in migrated.output
    again = await baton("migrate", "--database", database_url)
    assert again.exit_code == 0 and f"already at {head}" in again.output
    checked = await baton("migrate", "--database", database_url, "--check")
    assert checked.exit_code == 0 and f"up to date: {head}" in checked.output

    server = ServerProcess(database_url, "--no-migrate", "--no-engine")
    server.start()
    assert server.terminate() == 0


async def test_migrate_says_why_it_cannot_reach_the_database() -> None:
    result = await baton("migrate", "--database", "postgresql+asyncpg://baton@127.0.0.1:1/baton")
    assert result.exit_code == 2
    assert "cannot migrate" in result.output
    assert "Connect call failed" in result.output or "refused" in result.output.lower()


async def test_shutdown_grace_must_not_be_negative() -> None:
    result = await baton("serve", "--shutdown-grace", "-1")
    assert result.exit_code == 2
    assert "--shutdown-grace" in result.output
