"""The `baton` command line: serve, migrate, keys, tail, chat, stats."""

from baton_server.cli.commands import app, main
from baton_server.cli.conversation import describe_event

__all__ = ["app", "describe_event", "main"]
