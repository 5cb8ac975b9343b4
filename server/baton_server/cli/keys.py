"""`baton keys`: API keys, managed directly in the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from baton_server.cli.terminal_text import visible
from baton_server.config import Settings

if TYPE_CHECKING:
    from baton_server.auth.keys import ApiKey, KeyStore

T = TypeVar("T")

keys_app = typer.Typer(help="Manage API keys (directly in the database).", no_args_is_help=True)

DEFAULT_DATABASE = Settings().database_url

DatabaseOption = Annotated[
    str, typer.Option(envvar="BATON_DATABASE_URL", help="SQLAlchemy async database URL.")
]


async def _with_keys(database: str, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    from baton_server.auth.keys import KeyStore
    from baton_server.store import open_database
    from baton_server.store.api_keys import ApiKeyRows

    db = await open_database(database)
    try:
        return await work(KeyStore(ApiKeyRows(db), cache_ttl_s=0))
    finally:
        await db.dispose()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, integration, operator or tool_worker.")],
    name: Annotated[str, typer.Option(help="What the key is for (shown by `keys list`).")] = "",
    operator_id: Annotated[
        str,
        typer.Option(help="Operator keys: the one operator id the key may act as."),
    ] = "",
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Create an API key and print its secret (shown only this once)."""
    from baton_server.auth.principal import KEY_ROLES, Role

    if role not in {r.value for r in KEY_ROLES}:
        raise typer.BadParameter(
            "must be admin, integration, operator or tool_worker", param_hint="--role"
        )
    if operator_id and role != Role.OPERATOR.value:
        raise typer.BadParameter("only operator keys act for one operator", param_hint="--role")

    async def work(keys: KeyStore) -> tuple[ApiKey, str]:
        return await keys.create(Role(role), name, operator_id)

    key, secret = asyncio.run(_with_keys(database, work))
    bound = f" for operator {operator_id!r}" if operator_id else ""
    typer.echo(f"created {key.role.value} key {key.id}{bound}" + (f" ({name})" if name else ""))
    typer.echo("secret (store it now; it is not shown again):", err=True)
    typer.echo(secret)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (see `baton keys list`).")],
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Revoke a key: servers refuse it (and the customer tokens it issued) within seconds."""

    async def work(keys: KeyStore) -> bool:
        return await keys.revoke(key_id)

    if not asyncio.run(_with_keys(database, work)):
        typer.echo(f"no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(database: DatabaseOption = DEFAULT_DATABASE) -> None:
    """List keys (never their secrets)."""
    from baton_server.domain import us_to_datetime

    async def work(keys: KeyStore) -> list[ApiKey]:
        return await keys.list()

    for key in asyncio.run(_with_keys(database, work)):
        created = us_to_datetime(key.created_at_us).strftime("%Y-%m-%d %H:%M:%S")
        state = "revoked" if key.revoked_at_us is not None else "active"
        acts_as = f"operator {key.operator_id}" if key.operator_id else ""
        typer.echo(
            visible(
                f"{key.id}  {key.role.value:<11}  {state:<7}  {created}  {acts_as:<20}  {key.name}"
            )
        )
