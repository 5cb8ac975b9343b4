"""`baton` command line: serve, tail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from baton_server.cli_channel import DEFAULT_TARGET, ApiKeyOption, TlsCaOption, open_channel
from baton_server.config import Settings
from baton_server.stats_cli import stats
from baton_server.terminal_text import visible

if TYPE_CHECKING:
    import grpc

    from baton.v1 import message_pb2
    from baton_server.auth.keys import ApiKey, KeyStore

T = TypeVar("T")

# Defaults of the limit flags (the dataclass's own, so they are written down once).
_DEFAULTS = Settings()

app = typer.Typer(
    help="Baton: an AI customer-service agent with human handoff, over gRPC.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="BATON_HOST", help="Address to listen on.")
    ] = _DEFAULTS.host,
    port: Annotated[
        int, typer.Option(envvar="BATON_PORT", help="Port; 0 picks a free one.")
    ] = _DEFAULTS.port,
    database: Annotated[
        str, typer.Option(envvar="BATON_DATABASE_URL", help="SQLAlchemy async database URL.")
    ] = _DEFAULTS.database_url,
    heartbeat: Annotated[
        float, typer.Option(envvar="BATON_HEARTBEAT_SECONDS", help="Idle stream heartbeat period.")
    ] = _DEFAULTS.heartbeat_interval_s,
    sqlite_synchronous: Annotated[
        str, typer.Option(envvar="BATON_SQLITE_SYNCHRONOUS", help="FULL (default) or NORMAL.")
    ] = _DEFAULTS.sqlite_synchronous,
    max_connection_age: Annotated[
        float,
        typer.Option(
            envvar="BATON_MAX_CONNECTION_AGE_SECONDS",
            help="Recycle connections after this many seconds (0: never).",
        ),
    ] = _DEFAULTS.max_connection_age_s,
    log_level: Annotated[str, typer.Option(envvar="BATON_LOG_LEVEL")] = "INFO",
    tools: Annotated[
        list[str] | None,
        typer.Option(
            "--tools", envvar="BATON_TOOLS", help="Python module with @tool functions (repeatable)."
        ),
    ] = None,
    example_agent: Annotated[
        bool,
        typer.Option(
            "--example-agent",
            envvar="BATON_EXAMPLE_AGENT",
            help="Load the example support agent and its tools.",
        ),
    ] = False,
    nlp: Annotated[
        str,
        typer.Option(
            "--nlp",
            envvar="BATON_NLP_PROVIDER",
            help="offline, openai, or auto (openai when OPENAI_API_KEY is set).",
        ),
    ] = "auto",
    offline_matcher: Annotated[
        str,
        typer.Option(
            envvar="BATON_OFFLINE_MATCHER",
            help="auto (embedding if the model is installed, else lexical), embedding, lexical.",
        ),
    ] = _DEFAULTS.offline_matcher,
    openai_model: Annotated[
        str, typer.Option(envvar="BATON_OPENAI_MODEL")
    ] = _DEFAULTS.openai_model,
    openai_base_url: Annotated[
        str | None,
        typer.Option(
            envvar="OPENAI_BASE_URL", help="Any OpenAI-compatible server (vLLM, Ollama, ...)."
        ),
    ] = None,
    engine: Annotated[
        bool,
        typer.Option(
            "--engine/--no-engine",
            envvar="BATON_ENGINE",
            help="Run agent turns (--no-engine: store and stream events only).",
        ),
    ] = True,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            envvar="BATON_DEV",
            help="Development mode: NO authentication, every caller may do everything.",
        ),
    ] = False,
    token_secret: Annotated[
        str | None,
        typer.Option(
            envvar="BATON_TOKEN_SECRET",
            help="Customer-token signing secret (32+ chars); default: a random one for this "
            "process (required with PostgreSQL).",
        ),
    ] = None,
    token_secret_file: Annotated[
        str | None,
        typer.Option(
            envvar="BATON_TOKEN_SECRET_FILE",
            help="File with the signing secret on its first line; further lines are previous "
            "secrets still accepted (rotation).",
        ),
    ] = None,
    token_previous_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--token-previous-secret",
            envvar="BATON_TOKEN_PREVIOUS_SECRETS",
            help="A previous signing secret still accepted when verifying (repeatable).",
        ),
    ] = None,
    dev_on_network_unsafe: Annotated[
        bool,
        typer.Option(
            "--dev-on-network-unsafe",
            envvar="BATON_DEV_ON_NETWORK_UNSAFE",
            help="Allow --dev (NO authentication) on a non-loopback --host.",
        ),
    ] = False,
    tls_cert: Annotated[
        str | None, typer.Option(envvar="BATON_TLS_CERT", help="Server certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(envvar="BATON_TLS_KEY", help="Server private key (PEM).")
    ] = None,
    tls_client_ca: Annotated[
        str | None,
        typer.Option(
            envvar="BATON_TLS_CLIENT_CA",
            help="CA (PEM) that signs client certificates: require them (mutual TLS).",
        ),
    ] = None,
    max_message_bytes: Annotated[
        int, typer.Option(envvar="BATON_MAX_MESSAGE_BYTES", help="Largest gRPC message.")
    ] = _DEFAULTS.max_message_bytes,
    max_text_length: Annotated[
        int, typer.Option(envvar="BATON_MAX_TEXT_LENGTH", help="Longest message event text.")
    ] = _DEFAULTS.max_text_length,
    max_metadata_entries: Annotated[
        int, typer.Option(envvar="BATON_MAX_METADATA_ENTRIES", help="Per session/customer.")
    ] = _DEFAULTS.max_metadata_entries,
    max_metadata_key_length: Annotated[
        int, typer.Option(envvar="BATON_MAX_METADATA_KEY_LENGTH")
    ] = _DEFAULTS.max_metadata_key_length,
    max_metadata_value_length: Annotated[
        int, typer.Option(envvar="BATON_MAX_METADATA_VALUE_LENGTH")
    ] = _DEFAULTS.max_metadata_value_length,
    max_streams_per_connection: Annotated[
        int, typer.Option(envvar="BATON_MAX_STREAMS_PER_CONNECTION")
    ] = _DEFAULTS.max_streams_per_connection,
    max_streams_per_key: Annotated[
        int,
        typer.Option(envvar="BATON_MAX_STREAMS_PER_KEY", help="Per API key (0: off)."),
    ] = _DEFAULTS.max_streams_per_key,
    max_streams_per_customer: Annotated[
        int,
        typer.Option(
            envvar="BATON_MAX_STREAMS_PER_CUSTOMER", help="Per customer token's customer (0: off)."
        ),
    ] = _DEFAULTS.max_streams_per_customer,
    rate_limit: Annotated[
        float,
        typer.Option(envvar="BATON_RATE_LIMIT", help="Requests/s per API key (0: unlimited)."),
    ] = _DEFAULTS.rate_limit_per_s,
    rate_limit_burst: Annotated[
        float, typer.Option(envvar="BATON_RATE_LIMIT_BURST")
    ] = _DEFAULTS.rate_limit_burst,
    customer_rate_limit: Annotated[
        float,
        typer.Option(
            envvar="BATON_CUSTOMER_RATE_LIMIT",
            help="Requests/s per customer (customer tokens; 0: unlimited).",
        ),
    ] = _DEFAULTS.customer_rate_limit_per_s,
    customer_rate_limit_burst: Annotated[
        float, typer.Option(envvar="BATON_CUSTOMER_RATE_LIMIT_BURST")
    ] = _DEFAULTS.customer_rate_limit_burst,
) -> None:
    """Run the gRPC server (migrates the database first)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
        raise typer.BadParameter("must be FULL or NORMAL", param_hint="--sqlite-synchronous")
    from baton_server.app import BatonApp, ConfigurationError

    api_key = os.environ.get("OPENAI_API_KEY", "")
    provider = ("openai" if api_key else "offline") if nlp == "auto" else nlp
    if provider not in ("offline", "openai"):
        raise typer.BadParameter("must be offline, openai or auto", param_hint="--nlp")
    if offline_matcher not in ("auto", "embedding", "lexical"):
        raise typer.BadParameter(
            "must be auto, embedding or lexical", param_hint="--offline-matcher"
        )
    if provider == "openai" and not api_key and not openai_base_url:
        raise typer.BadParameter("the openai provider needs OPENAI_API_KEY (or OPENAI_BASE_URL)")
    secrets = _token_secrets(token_secret, token_secret_file, token_previous_secret or [])
    settings = Settings(
        host=host,
        port=port,
        database_url=database,
        heartbeat_interval_s=heartbeat,
        sqlite_synchronous=sqlite_synchronous.upper(),
        max_connection_age_s=max_connection_age,
        tool_modules=tuple(tools or ()),
        example_agent=example_agent,
        nlp_provider=provider,
        offline_matcher=offline_matcher,
        openai_api_key=api_key or "unused",
        openai_base_url=openai_base_url,
        openai_model=openai_model,
        engine_enabled=engine,
        dev_mode=dev,
        dev_on_network=dev_on_network_unsafe,
        token_secret=secrets[0] if secrets else None,
        token_previous_secrets=tuple(secrets[1:]),
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_client_ca_file=tls_client_ca,
        max_message_bytes=max_message_bytes,
        max_text_length=max_text_length,
        max_metadata_entries=max_metadata_entries,
        max_metadata_key_length=max_metadata_key_length,
        max_metadata_value_length=max_metadata_value_length,
        max_streams_per_connection=max_streams_per_connection,
        max_streams_per_key=max_streams_per_key,
        max_streams_per_customer=max_streams_per_customer,
        rate_limit_per_s=rate_limit,
        rate_limit_burst=rate_limit_burst,
        customer_rate_limit_per_s=customer_rate_limit,
        customer_rate_limit_burst=customer_rate_limit_burst,
    )
    try:
        asyncio.run(BatonApp(settings).serve_until_signal())
    except ConfigurationError as error:
        raise typer.BadParameter(str(error)) from None


def _token_secrets(secret: str | None, file: str | None, previous: list[str]) -> list[str]:
    """The signing secret first, then the previous ones still accepted."""
    if secret and file:
        raise typer.BadParameter("give --token-secret or --token-secret-file, not both")
    found = [secret] if secret else []
    if file:
        try:
            with open(file, encoding="utf-8") as lines:
                found = [line.strip() for line in lines if line.strip()]
        except OSError as error:
            raise typer.BadParameter(str(error), param_hint="--token-secret-file") from None
        if not found:
            raise typer.BadParameter("the file is empty", param_hint="--token-secret-file")
    if previous and not found:
        raise typer.BadParameter("previous secrets need a current one (--token-secret)")
    found += previous
    if any(len(value) < 32 for value in found):
        raise typer.BadParameter("token secrets must be at least 32 characters")
    return found


# ---------------------------------------------------------------- keys

keys_app = typer.Typer(help="Manage API keys (directly in the database).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

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
    role: Annotated[str, typer.Option(help="admin, integration or operator.")],
    name: Annotated[str, typer.Option(help="What the key is for (shown by `keys list`).")] = "",
    operator_id: Annotated[
        str,
        typer.Option(help="Operator keys: the one operator id the key may act as."),
    ] = "",
    database: DatabaseOption = _DEFAULTS.database_url,
) -> None:
    """Create an API key and print its secret (shown only this once)."""
    from baton_server.auth.principal import KEY_ROLES, Role

    if role not in {r.value for r in KEY_ROLES}:
        raise typer.BadParameter("must be admin, integration or operator", param_hint="--role")
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
    database: DatabaseOption = _DEFAULTS.database_url,
) -> None:
    """Revoke a key: servers refuse it (and the customer tokens it issued) within seconds."""

    async def work(keys: KeyStore) -> bool:
        return await keys.revoke(key_id)

    if not asyncio.run(_with_keys(database, work)):
        typer.echo(f"no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(database: DatabaseOption = _DEFAULTS.database_url) -> None:
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


# ---------------------------------------------------------------- clients: tail, chat


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


@app.command()
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
) -> None:
    """Print a session's events, one line each, and follow new ones live."""
    import grpc

    from baton.v1 import request_response_pb2 as rr
    from baton.v1 import service_pb2_grpc as svc_grpc

    console = Console(highlight=False, emoji=False, soft_wrap=True)

    async def run() -> None:
        async with open_channel(target, api_key, tls_ca) as channel:
            stub = svc_grpc.EventServiceStub(channel)
            stream = stub.ListEvents(
                rr.ListEventsRequest(
                    session_id=session_id, min_offset=from_offset, follow=not no_follow
                )
            )
            async for response in stream:
                for event in response.events:
                    console.print(escape(describe_event(event)))
                if response.caught_up:
                    console.print("[dim]-- caught up; following live (Ctrl-C to stop) --[/dim]")

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except grpc.aio.AioRpcError as error:
        console.print(f"[red]{error.code().name}[/red]: {escape(visible(error.details() or ''))}")
        raise typer.Exit(1) from None


app.command("stats")(stats)


def main() -> None:
    app()


@app.command()
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
) -> None:
    """Talk to an agent as the customer: each input line is a message; the session's events
    (and the AI's reply as it is written) are printed as they arrive."""
    import grpc

    console = Console(highlight=False, emoji=False, soft_wrap=True)
    try:
        # The channel is made inside the loop that uses it.
        asyncio.run(
            _chat(
                console,
                lambda: open_channel(target, api_key, tls_ca),
                session_id,
                agent,
                turn_timeout,
            )
        )
    except KeyboardInterrupt:
        pass
    except grpc.aio.AioRpcError as error:
        console.print(f"[red]{error.code().name}[/red]: {escape(visible(error.details() or ''))}")
        raise typer.Exit(1) from None


async def _chat(
    console: Console,
    make_channel: Callable[[], grpc.aio.Channel],
    session_id: str | None,
    agent_id: str,
    turn_timeout: float,
) -> None:
    import sys

    from baton.v1 import message_pb2 as pb
    from baton.v1 import request_response_pb2 as rr
    from baton.v1 import service_pb2_grpc as svc_grpc

    # A turn is over at one of these statuses (acknowledged alone when humans answer).
    final = {pb.STATUS_READY, pb.STATUS_ERROR, pb.STATUS_CANCELLED}
    async with make_channel() as channel:
        sessions = svc_grpc.SessionServiceStub(channel)
        events = svc_grpc.EventServiceStub(channel)
        if session_id is None:
            if not agent_id:
                listed = await svc_grpc.AgentServiceStub(channel).ListAgents(
                    rr.ListAgentsRequest(page_size=1)
                )
                if not listed.agents:
                    console.print("[red]no agent exists; start `baton serve --example-agent`[/red]")
                    raise typer.Exit(1)
                agent_id = listed.agents[0].id
            customer = await svc_grpc.CustomerServiceStub(channel).CreateCustomer(
                rr.CreateCustomerRequest(customer=pb.Customer(name="Terminal customer"))
            )
            created = await sessions.CreateSession(
                rr.CreateSessionRequest(
                    session=pb.Session(agent_id=agent_id, customer_id=customer.customer.id)
                )
            )
            session_id = created.session.id
        shown_id = escape(visible(session_id))
        console.print(f"[dim]session {shown_id} — type a message, Ctrl-D to end[/dim]")
        turn_over: dict[str, asyncio.Event] = {}

        async def show() -> None:
            mode = (
                await sessions.GetSession(rr.GetSessionRequest(session_id=session_id))
            ).session.mode
            stream = events.ListEvents(
                rr.ListEventsRequest(session_id=session_id, min_offset=0, follow=True)
            )
            streaming = False
            async for response in stream:
                if response.HasField("delta"):
                    if not streaming:
                        console.print("[dim]ai_agent (typing):[/dim] ", end="")
                        streaming = True
                    console.print(escape(visible(response.delta.text)), end="")
                for event in response.events:
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
                sent = await events.CreateEvent(
                    rr.CreateEventRequest(
                        session_id=session_id,
                        kind=pb.EVENT_KIND_MESSAGE,
                        source=pb.EVENT_SOURCE_CUSTOMER,
                        message=pb.MessageData(text=line.strip()),
                    )
                )
                # Like a conversation: let the agent finish before the next message.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(turn_timeout):
                        await turn_over.setdefault(
                            sent.event.correlation_id, asyncio.Event()
                        ).wait()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
