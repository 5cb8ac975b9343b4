"""`baton tail` and `baton chat`: a session's events in the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

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
    from baton.v1 import message_pb2
    from baton_client import BatonClient


def describe_event(event: message_pb2.Event) -> str:
    """One readable line for an event (used by `baton tail` and `baton chat`), with the
    control characters of its untrusted parts made visible (`terminal_text.visible`); still
    plain text, to be markup-escaped before Rich prints it."""
    from google.protobuf import json_format

    from baton.v1 import message_pb2 as pb

    kind = pb.EventKind.Name(event.kind).removeprefix("EVENT_KIND_").lower()
    source = pb.EventSource.Name(event.source).removeprefix("EVENT_SOURCE_").lower()
    when = event.created_at.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
    data = event.WhichOneof("data")
    if data == "message":
        who = event.message.participant.display_name or source
        body = f"{who}: {event.message.text}"
    elif data == "status":
        body = pb.Status.Name(event.status.status).removeprefix("STATUS_").lower()
        if event.status.HasField("detail"):
            body += f" ({event.status.detail})"
    elif data == "tool":
        body = ", ".join(c.name for c in event.tool.tool_calls)
    else:
        body = json.dumps(json_format.MessageToDict(event.custom), ensure_ascii=False)
    # Continuation lines are indented, so text cannot forge a line of its own ("#12 ...").
    body = visible(body).replace("\n", "\n       | ")
    return f"#{event.offset:<5} {when} {source:<12} {kind:<8} {body}"


def _error_line(error: BaseException) -> str:
    """`CODE: message` of a failed call, untrusted message shown inert."""
    from baton_client import BatonError

    if isinstance(error, BatonError):
        return f"[red]{error.code().name}[/red]: {escape(visible(error.message))}"
    return f"[red]{type(error).__name__}[/red]: {escape(visible(str(error)))}"


def _reconnect_notice(stderr: Console) -> Callable[[BaseException | None, float], None]:
    """`on_retry` of a follow: one dim line on stderr per reconnect attempt."""

    def notice(error: BaseException | None, delay: float) -> None:
        from baton_client import BatonError

        what = (
            f"{error.code().name} ({error.reason or 'no reason'})"
            if isinstance(error, BatonError)
            else "stream ended"
        )
        stderr.print(f"[dim]-- {escape(visible(what))}; reconnecting in {delay:.1f}s --[/dim]")

    return notice


def tail(
    session_id: Annotated[str, typer.Argument(help="Session whose events to follow.")],
    from_offset: Annotated[int, typer.Option("--from", help="First offset to show.")] = 0,
    target: Annotated[
        str, typer.Option(envvar="BATON_TARGET", help="Server address.")
    ] = DEFAULT_TARGET,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Stop after stored events.")
    ] = False,
    api_key: ApiKeyOption = "",
    tls_ca: TlsCaOption = None,
    tls: TlsOption = False,
    insecure: InsecureOption = False,
) -> None:
    """Print a session's events, one line each, and follow new ones live (across server
    restarts and lost connections: it resumes after the last event shown)."""
    from baton_client import BatonError, RetriesExhausted

    console = Console(highlight=False, emoji=False, soft_wrap=True)
    stderr = Console(highlight=False, emoji=False, soft_wrap=True, stderr=True)

    def caught_up() -> None:
        console.print("[dim]-- caught up; following live (Ctrl-C to stop) --[/dim]")

    async def run() -> None:
        async with open_client(target, api_key, tls_ca, tls=tls, insecure=insecure) as client:
            if no_follow:
                async for event in client.events.read(session_id, min_offset=from_offset):
                    console.print(escape(describe_event(event)))
                return
            follower = client.follow(
                session_id,
                from_offset,
                on_caught_up=caught_up,
                on_retry=_reconnect_notice(stderr),
            )
            async with follower:
                async for event in follower:
                    console.print(escape(describe_event(event)))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (BatonError, RetriesExhausted) as error:
        console.print(_error_line(error))
        raise typer.Exit(1) from None


def chat(
    session_id: Annotated[
        str | None, typer.Argument(help="Session to talk in; omitted: start a new one.")
    ] = None,
    agent: Annotated[
        str, typer.Option("--agent", help="Agent for a new session (default: the first one).")
    ] = "",
    target: Annotated[
        str, typer.Option(envvar="BATON_TARGET", help="Server address.")
    ] = DEFAULT_TARGET,
    turn_timeout: Annotated[
        float, typer.Option(help="Wait at most this long for the agent's turn after a message.")
    ] = 30.0,
    api_key: ApiKeyOption = "",
    tls_ca: TlsCaOption = None,
    tls: TlsOption = False,
    insecure: InsecureOption = False,
) -> None:
    """Talk to an agent as the customer: each input line is a message; the session's events
    (and the AI's reply as it is written) are printed as they arrive."""
    from baton_client import BatonError, RetriesExhausted

    console = Console(highlight=False, emoji=False, soft_wrap=True)
    try:
        # The client (and its channel) is made inside the loop that uses it.
        asyncio.run(
            _chat(
                console,
                lambda: open_client(target, api_key, tls_ca, tls=tls, insecure=insecure),
                session_id,
                agent,
                turn_timeout,
            )
        )
    except KeyboardInterrupt:
        pass
    except (BatonError, RetriesExhausted) as error:
        console.print(_error_line(error))
        raise typer.Exit(1) from None


async def _chat(
    console: Console,
    make_client: Callable[[], BatonClient],
    session_id: str | None,
    agent_id: str,
    turn_timeout: float,
) -> None:
    import sys

    from baton.v1 import message_pb2 as pb

    stderr = Console(highlight=False, emoji=False, soft_wrap=True, stderr=True)
    # A turn is over at one of these statuses (acknowledged alone when humans answer).
    final = {pb.STATUS_READY, pb.STATUS_ERROR, pb.STATUS_CANCELLED}
    async with make_client() as client:
        if session_id is None:
            if not agent_id:
                listed = await client.agents.list(page_size=1)
                if not listed.agents:
                    console.print("[red]no agent exists; start `baton serve --example-agent`[/red]")
                    raise typer.Exit(1)
                agent_id = listed.agents[0].id
            customer = await client.customers.create("Terminal customer")
            created = await client.sessions.create(agent_id=agent_id, customer_id=customer.id)
            session_id = created.id
        shown_id = escape(visible(session_id))
        console.print(f"[dim]session {shown_id} — type a message, Ctrl-D to end[/dim]")
        turn_over: dict[str, asyncio.Event] = {}
        streaming = False

        def delta(piece: pb.MessageDelta) -> None:
            nonlocal streaming
            if not streaming:
                console.print("[dim]ai_agent (typing):[/dim] ", end="")
                streaming = True
            console.print(escape(visible(piece.text)), end="")

        async def show() -> None:
            nonlocal streaming
            mode = (await client.sessions.get(session_id)).mode
            follower = client.follow(
                session_id, 0, on_delta=delta, on_retry=_reconnect_notice(stderr)
            )
            async with follower:
                async for event in follower:
                    if streaming:
                        console.print()
                        streaming = False
                    line = escape(describe_event(event))
                    is_status = event.WhichOneof("data") == "status"
                    console.print(f"[dim]{line}[/dim]" if is_status else line)
                    if event.WhichOneof("data") == "custom" and "mode" in event.custom:
                        manual = event.custom["mode"] == "manual"
                        mode = pb.SESSION_MODE_MANUAL if manual else pb.SESSION_MODE_AUTO
                    done = is_status and (
                        event.status.status in final
                        or (
                            event.status.status == pb.STATUS_ACKNOWLEDGED
                            and mode == pb.SESSION_MODE_MANUAL
                        )
                    )
                    if done:
                        turn_over.setdefault(event.correlation_id, asyncio.Event()).set()

        follower = asyncio.create_task(show())
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                if not line.strip():
                    continue
                if follower.done():
                    follower.result()  # the follow failed: raise its error
                sent = await client.events.send_message(session_id, line.strip())
                # Like a conversation: let the agent finish before the next message.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(turn_timeout):
                        await turn_over.setdefault(sent.correlation_id, asyncio.Event()).wait()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
