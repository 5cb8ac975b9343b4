"""Server settings, filled from the CLI (which also reads BATON_* environment variables)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8800
    database_url: str = "sqlite+aiosqlite:///baton.db"
    # SQLite durability: FULL syncs the WAL on every (group) commit; NORMAL may lose the last
    # commits on power loss (not on a process crash).
    sqlite_synchronous: str = "FULL"
    heartbeat_interval_s: float = 15.0
    # Events buffered per live subscriber before it falls back to reading the store.
    subscriber_buffer: int = 4096
    # Time in-flight RPCs get to finish on SIGTERM.
    shutdown_grace_s: float = 10.0
    # Close connections after this age (with a grace period) so load balancers can rebalance;
    # 0 keeps them open. Follow streams resume by offset.
    max_connection_age_s: float = 0.0
    max_message_bytes: int = 4 * 1024 * 1024
    # Input limits (INVALID_ARGUMENT naming the field beyond them).
    max_text_length: int = 32_768
    max_metadata_entries: int = 64
    max_metadata_key_length: int = 128
    max_metadata_value_length: int = 4096
    # HTTP/2 streams open at once on one connection (`grpc.max_concurrent_streams`).
    max_streams_per_connection: int = 10_000
    # Server streams (ListEvents, ...) open at once per API key (0: unlimited).
    max_streams_per_key: int = 10_000
    # ... and per customer (customer tokens): a chat widget needs a stream or two, not thousands.
    max_streams_per_customer: int = 16
    # Requests per second per API key or customer (token bucket; 0: unlimited) and burst size.
    # Per API key: a guard against runaway clients, above what one server sustains.
    rate_limit_per_s: float = 2000.0
    rate_limit_burst: float = 4000.0
    # Per customer (customer tokens): what one person's chat plausibly needs.
    customer_rate_limit_per_s: float = 20.0
    customer_rate_limit_burst: float = 60.0
    # Failed authentications per peer address (s⁻¹, burst) before credentials that need a
    # database lookup are refused from that address (RESOURCE_EXHAUSTED).
    auth_failure_rate_per_s: float = 10.0
    auth_failure_burst: float = 100.0
    # --dev: no authentication, every caller may do everything (local development only).
    dev_mode: bool = False
    # --dev on a non-loopback address is refused unless this is set (--dev-on-network-unsafe).
    dev_on_network: bool = False
    # How long an API key lookup is cached: a revocation takes effect within this time.
    key_cache_s: float = 5.0
    # Customer-token signing secret (never stored in the database). None: a random one for this
    # process only (SQLite or --dev; PostgreSQL replicas must share one, so it is required).
    token_secret: str | None = None
    # Earlier signing secrets still accepted when verifying (rotation).
    token_previous_secrets: tuple[str, ...] = ()
    customer_token_default_ttl_s: int = 900
    customer_token_max_ttl_s: int = 86_400
    # TLS: PEM files. With a client CA, clients must present a certificate it signed (mTLS).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # Python modules whose @tool functions the engine may call.
    tool_modules: tuple[str, ...] = ()
    tool_timeout_s: float = 10.0
    # Load the example agent (its tools, and the agent itself on first start).
    example_agent: bool = False
    # "offline" (deterministic, no network) or "openai" (any OpenAI-compatible server).
    nlp_provider: str = "offline"
    # The offline provider's guideline matcher: "auto" (embedding when the model package is
    # installed, else lexical), "embedding" (refuses to start without the model) or "lexical".
    offline_matcher: str = "auto"
    openai_api_key: str = ""
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_timeout_s: float = 30.0
    openai_max_retries: int = 2
    # False: store events only, run no agent turns.
    engine_enabled: bool = True
    # At start, answer customer messages this recent whose turn a stop or crash cut short.
    resume_turns_within_s: float = 600.0
    # How often due handoff timeouts (claim, inactivity) are looked for.
    handoff_timer_tick_s: float = 1.0
    # Migrate the schema at start (False: refuse to start unless `baton migrate` already did).
    migrate: bool = True
    # Readiness: how often the database is probed, and how long a probe may take.
    readiness_interval_s: float = 2.0
    readiness_timeout_s: float = 2.0
    # Prometheus /metrics on this port (None: off; 0: a free port), on this address ("": --host).
    metrics_port: int | None = None
    metrics_host: str = ""
    # Connect and gRPC-Web (browsers) on this port (None: off; 0: a free port), on this
    # address ("": --host), callable from these origins (CORS; "*": any), with the web apps'
    # files from this folder (None: the repository's clients/web/dist when it exists).
    http_port: int | None = None
    http_host: str = ""
    cors_origins: tuple[str, ...] = ()
    web_root: str | None = None
    # How often values that need a query (open handoffs by state) are refreshed for /metrics.
    metrics_sample_interval_s: float = 5.0
    # One log line per RPC (method, status, duration, caller key id) on the baton.access logger.
    access_log: bool = False
    # JSON logs: the RPC context is bound to each call even without metrics or tracing.
    log_format: str = "text"


@dataclass(frozen=True, slots=True)
class InputLimits:
    """What the servicers check requests against (from Settings)."""

    max_text_length: int = 32_768
    max_metadata_entries: int = 64
    max_metadata_key_length: int = 128
    max_metadata_value_length: int = 4096

    @classmethod
    def of(cls, settings: Settings) -> InputLimits:
        return cls(
            settings.max_text_length,
            settings.max_metadata_entries,
            settings.max_metadata_key_length,
            settings.max_metadata_value_length,
        )
