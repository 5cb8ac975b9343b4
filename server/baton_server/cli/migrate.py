"""`baton migrate`: the schema migrations on their own, for pipelines that migrate first and
then roll replicas started with `baton serve --no-migrate`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from baton_server.cli.keys import DEFAULT_DATABASE, DatabaseOption


def migrate(
    database: DatabaseOption = DEFAULT_DATABASE,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing: exit 1 when the database is behind this server."
        ),
    ] = False,
) -> None:
    """Bring the database schema to this server's version (safe to repeat; replicas starting
    at the same time wait for each other)."""
    from baton_server.store.database import create_engines, head_revision, schema_revisions
    from baton_server.store.database import migrate as upgrade

    async def run() -> tuple[str | None, str | None]:
        engines = create_engines(database)
        try:
            before, _ = await schema_revisions(engines)
            if not check and before != head_revision():
                await upgrade(engines)
            after, _ = await schema_revisions(engines)
            return before, after
        finally:
            await engines.dispose()

    try:
        before, after = asyncio.run(run())
    except Exception as error:  # no database, a wrong URL, a refused connection: say which
        typer.echo(f"cannot migrate: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(2) from None
    head = head_revision()
    if check:
        if after != head:
            typer.echo(f"behind: the database is at {after or 'none'}, this server needs {head}")
            raise typer.Exit(1)
        typer.echo(f"up to date: {head}")
    elif before == after:
        typer.echo(f"already at {after}")
    else:
        typer.echo(f"migrated {before or 'an empty database'} -> {after}")
