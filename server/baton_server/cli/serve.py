"""`baton serve`: its options (each with a BATON_* variable) become Settings for BatonApp."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from baton_server.config import Settings

# Defaults of the limit flags (the dataclass's own, so they are written down once).
_DEFAULTS = Settings()


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
    log_level: Annotated[
        str, typer.Option(envvar="BATON_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
    log_format: Annotated[
        str,
        typer.Option(envvar="BATON_LOG_FORMAT", help="text, or json (one object per line)."),
    ] = _DEFAULTS.log_format,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            envvar="BATON_ACCESS_LOG",
            help="Log every RPC: method, status, duration, caller key id (never secrets).",
        ),
    ] = _DEFAULTS.access_log,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="BATON_METRICS_PORT",
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (default: off).",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(envvar="BATON_METRICS_HOST", help="Address for /metrics (default: --host)."),
    ] = _DEFAULTS.metrics_host,
    http_port: Annotated[
        int | None,
        typer.Option(
            envvar="BATON_HTTP_PORT",
            help="Serve Connect and gRPC-Web (browsers) and the web apps on this port "
            "(default: off; 0 picks a free one).",
        ),
    ] = None,
    http_host: Annotated[
        str,
        typer.Option(envvar="BATON_HTTP_HOST", help="Address for --http-port (default: --host)."),
    ] = _DEFAULTS.http_host,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            envvar="BATON_CORS_ORIGINS",
            help="Origin allowed to call the HTTP port from a browser, e.g. "
            "https://shop.example.com (repeatable; * allows any).",
        ),
    ] = None,
    web_root: Annotated[
        str | None,
        typer.Option(
            envvar="BATON_WEB_ROOT",
            help="Folder with widget/ and console/ (default: clients/web/dist of the checkout).",
        ),
    ] = None,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            envvar="BATON_SHUTDOWN_GRACE_SECONDS",
            help="On SIGTERM, time in-flight calls get to finish before they are cancelled.",
        ),
    ] = _DEFAULTS.shutdown_grace_s,
    migrate: Annotated[
        bool,
        typer.Option(
            "--migrate/--no-migrate",
            envvar="BATON_MIGRATE",
            help="Migrate the schema at start (--no-migrate: refuse to start unless "
            "`baton migrate` did).",
        ),
    ] = _DEFAULTS.migrate,
    readiness_interval: Annotated[
        float,
        typer.Option(
            envvar="BATON_READINESS_INTERVAL_SECONDS",
            help="How often health re-checks that the database answers.",
        ),
    ] = _DEFAULTS.readiness_interval_s,
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
    from baton_server.observe.logs import configure_logging
    from baton_server.observe.tracing import TracingConfigError, tracing_requested

    try:
        configure_logging(log_format, log_level, with_trace_ids=tracing_requested(os.environ))
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    for name, value in (
        ("--shutdown-grace", shutdown_grace),
        ("--readiness-interval", readiness_interval),
    ):
        if value < 0 or (name == "--readiness-interval" and value == 0):
            raise typer.BadParameter("must be a positive number of seconds", param_hint=name)
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise typer.BadParameter("must be 0 (a free port) to 65535", param_hint="--metrics-port")
    if http_port is not None and not 0 <= http_port <= 65535:
        raise typer.BadParameter("must be 0 (a free port) to 65535", param_hint="--http-port")
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
        shutdown_grace_s=shutdown_grace,
        migrate=migrate,
        readiness_interval_s=readiness_interval,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        http_port=http_port,
        http_host=http_host,
        cors_origins=tuple(cors_origin or ()),
        web_root=web_root,
        access_log=access_log,
        log_format=log_format,
    )
    try:
        asyncio.run(BatonApp(settings).serve_until_signal())
    except (ConfigurationError, TracingConfigError) as error:
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
