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
    # Python modules whose @tool functions the engine may call.
    tool_modules: tuple[str, ...] = ()
    tool_timeout_s: float = 10.0
    # Load the example agent (its tools, and the agent itself on first start).
    example_agent: bool = False
    # "offline" (deterministic, no network) or "openai" (any OpenAI-compatible server).
    nlp_provider: str = "offline"
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
