"""The `baton` Typer app: one command per module of this package."""

from __future__ import annotations

import typer

from baton_server.cli.conversation import chat, tail
from baton_server.cli.keys import keys_app
from baton_server.cli.migrate import migrate
from baton_server.cli.serve import serve
from baton_server.cli.stats import stats

app = typer.Typer(
    help="Baton: an AI customer-service agent with human handoff, over gRPC.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(serve)
app.command()(migrate)
app.add_typer(keys_app, name="keys")
app.command()(tail)
app.command()(chat)
app.command("stats")(stats)


def main() -> None:
    app()
