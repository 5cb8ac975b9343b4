"""`baton stats`: handoff analytics from a running server, as a table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from baton_server.cli.channel import (
    DEFAULT_TARGET,
    ApiKeyOption,
    InsecureOption,
    TlsCaOption,
    TlsOption,
    open_client,
)
from baton_server.cli.terminal_text import visible

if TYPE_CHECKING:
    from google.protobuf.duration_pb2 import Duration

    from baton.v1 import message_pb2 as pb


def _seconds(duration: Duration) -> str:
    return f"{duration.seconds + duration.nanos / 1e9:.1f} s"


def stats_table(stats: pb.HandoffStats, title: str) -> Table:
    """The figures as a table; reason and outcome names (untrusted) are shown escaped: control
    characters made visible (`terminal_text.visible`), Rich markup printed literally."""
    table = Table(title=escape(visible(title)), show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("sessions", str(stats.sessions)),
        ("sessions with a handoff", str(stats.sessions_with_handoff)),
        ("handoff rate", f"{stats.handoff_rate:.1%}"),
        ("handoffs", str(stats.handoffs)),
        ("abandoned while queued", str(stats.abandoned_while_queued)),
        ("returned to AI (share of ended)", f"{stats.returned_to_ai_share:.1%}"),
        ("re-handoffs within 30 min of a return", str(stats.rehandoffs_within_30_minutes)),
    ]
    for label, percentiles in (
        ("time to claim", stats.time_to_claim),
        ("time to first human reply", stats.time_to_first_human_reply),
    ):
        rows.append(
            (
                f"{label} p50 / p90 (n={percentiles.count})",
                f"{_seconds(percentiles.p50)} / {_seconds(percentiles.p90)}",
            )
        )
    rows += [(f"outcome {name}", str(count)) for name, count in sorted(stats.by_outcome.items())]
    rows += [(f"reason {name!r}", str(count)) for name, count in sorted(stats.by_reason.items())]
    for label, value in rows:
        table.add_row(escape(visible(label)), value)
    return table


def stats(
    agent: Annotated[str, typer.Option(help="Only this agent's sessions.")] = "",
    days: Annotated[float, typer.Option(help="The last this many days (0: all time).")] = 7.0,
    target: Annotated[
        str, typer.Option(envvar="BATON_TARGET", help="Server address.")
    ] = DEFAULT_TARGET,
    api_key: ApiKeyOption = "",
    tls_ca: TlsCaOption = None,
    tls: TlsOption = False,
    insecure: InsecureOption = False,
) -> None:
    """Print handoff analytics: rate, reasons, outcomes, time to claim and to first reply."""
    from baton_client import BatonError

    console = Console(highlight=False, emoji=False)
    start = None
    title = "Handoffs, all time"
    if days > 0:
        start = datetime.now(UTC) - timedelta(days=days)
        title = f"Handoffs, last {days:g} day(s)"
    if agent:
        title += f", agent {agent}"

    async def run() -> pb.HandoffStats:
        async with open_client(target, api_key, tls_ca, tls=tls, insecure=insecure) as client:
            return await client.handoffs.stats(agent_id=agent, start_time=start)

    try:
        figures = asyncio.run(run())
    except BatonError as error:
        console.print(f"[red]{error.code().name}[/red]: {escape(visible(error.message))}")
        raise typer.Exit(1) from None
    console.print(stats_table(figures, title))
