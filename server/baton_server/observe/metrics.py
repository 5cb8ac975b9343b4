"""Baton's Prometheus metrics, on a registry of its own (one per server, so tests can run several).

prometheus-client rather than OpenTelemetry's metrics SDK: it writes the Prometheus text format
itself, an observation is a lock and an add (the SDK's aggregation pipeline costs several times
that per call, on the hot path of every RPC), and values the server already counts are read only
when scraped (`Sampled`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# Seconds: from a fast unary call (sub-millisecond) to a stream kept open for an hour.
RPC_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600,
)  # fmt: skip
COMMIT_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TURN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CLAIM_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


@dataclass(slots=True)
class Sampled:
    """Values other parts of the server keep anyway, read at scrape time (free until then)."""

    # Follow subscribers whose buffer overflowed (they were told `fell_behind`).
    fell_behind_total: Callable[[], int] = lambda: 0
    # Database pool: (connections open, connections in use, pool size).
    pool: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
    # Open handoffs by state, as last counted in the store (all replicas').
    handoffs_by_state: Callable[[], Mapping[str, int]] = lambda: {}
    database_up: Callable[[], bool] = lambda: True
    # Tool workers connected to this replica, and tool calls waiting for one with room.
    tool_workers: Callable[[], int] = lambda: 0
    tool_calls_waiting: Callable[[], int] = lambda: 0


class _SampledCollector(Collector):
    def __init__(self, sampled: Sampled) -> None:
        self._sampled = sampled

    def collect(self) -> Iterable[Metric]:
        sampled = self._sampled
        yield CounterMetricFamily(
            "baton_subscribers_fell_behind",
            "Follow streams whose subscriber fell behind the live log (told fell_behind).",
            value=sampled.fell_behind_total(),
        )
        open_, in_use, size = sampled.pool()
        pool = GaugeMetricFamily(
            "baton_db_pool_connections",
            "Database connections of the server's pool, by state.",
            labels=["state"],
        )
        pool.add_metric(["in_use"], in_use)
        pool.add_metric(["idle"], max(0, open_ - in_use))
        yield pool
        yield GaugeMetricFamily(
            "baton_db_pool_size", "Connections the pool keeps (more may overflow).", value=size
        )
        by_state = sampled.handoffs_by_state()
        handoffs = GaugeMetricFamily(
            "baton_handoffs_open", "Open handoffs in the store, by state.", labels=["state"]
        )
        for state, count in sorted(by_state.items()):
            handoffs.add_metric([state], count)
        yield handoffs
        yield GaugeMetricFamily(
            "baton_handoff_queue_depth",
            "Handoffs waiting for an operator (pending, not claimed).",
            value=by_state.get("pending", 0),
        )
        yield GaugeMetricFamily(
            "baton_tool_workers_connected",
            "Tool workers (ToolWorkerService streams) connected to this replica.",
            value=sampled.tool_workers(),
        )
        yield GaugeMetricFamily(
            "baton_tool_calls_waiting",
            "Tool calls waiting for a worker with room (all workers of their tool are full).",
            value=sampled.tool_calls_waiting(),
        )
        yield GaugeMetricFamily(
            "baton_database_up",
            "1 while the database answers the readiness probe, else 0.",
            value=1 if sampled.database_up() else 0,
        )


class BatonMetrics:
    """Every metric the server reports. Methods are what instrumented code calls."""

    def __init__(self, sampled: Sampled | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sampled = sampled or Sampled()
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        registry.register(_SampledCollector(self.sampled))
        self._rpc_requests = Counter(
            "baton_rpc_requests",
            "RPCs handled, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        self._rpc_seconds = Histogram(
            "baton_rpc_duration_seconds",
            "Time from an RPC's arrival to its status (for streams: how long they stayed open).",
            ["method", "code"],
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self._streams_open = Gauge(
            "baton_streams_open",
            "Server streams open now (ListEvents follows, WatchHandoffs inboxes), by method.",
            ["method"],
            registry=registry,
        )
        self._events_appended = Counter(
            "baton_events_appended", "Events committed to the log.", registry=registry
        )
        self._batch_size = Histogram(
            "baton_append_batch_size",
            "Appends committed together in one group commit.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._commit_seconds = Histogram(
            "baton_append_commit_duration_seconds",
            "Time to write and commit one group of appends.",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self._turns = Counter(
            "baton_engine_turns", "Agent turns run, by outcome.", ["outcome"], registry=registry
        )
        self._turn_seconds = Histogram(
            "baton_engine_turn_duration_seconds",
            "Time from a customer message to the turn's last event, by outcome.",
            ["outcome"],
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self._nlp_calls = Counter(
            "baton_nlp_requests",
            "Calls to the NLP provider, by provider, operation and outcome (ok or error).",
            ["provider", "operation", "outcome"],
            registry=registry,
        )
        self._nlp_seconds = Histogram(
            "baton_nlp_request_duration_seconds",
            "NLP provider call latency, by provider and operation.",
            ["provider", "operation"],
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self._tool_calls = Counter(
            "baton_tool_calls",
            "Tool calls, by tool and outcome (ok, error, timeout, unknown).",
            ["tool", "outcome"],
            registry=registry,
        )
        self._tool_seconds = Histogram(
            "baton_tool_call_duration_seconds",
            "Tool call latency, by tool.",
            ["tool"],
            buckets=TOOL_BUCKETS,
            registry=registry,
        )
        self._handoff_changes = Counter(
            "baton_handoff_changes",
            "Handoff changes made by this server, by the state they left the handoff in.",
            ["state"],
            registry=registry,
        )
        self._time_to_claim = Histogram(
            "baton_handoff_time_to_claim_seconds",
            "Time from a handoff's request to its first claim.",
            buckets=CLAIM_BUCKETS,
            registry=registry,
        )
        # Children by label values: a labels() lookup costs more than the observation itself.
        self._rpc_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    # -------------------------------------------------------------- RPCs

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        children = self._rpc_children.get((method, code))
        if children is None:
            children = (
                self._rpc_requests.labels(method, code),
                self._rpc_seconds.labels(method, code),
            )
            self._rpc_children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def stream_opened(self, method: str) -> None:
        self._streams_open.labels(method).inc()

    def stream_closed(self, method: str) -> None:
        self._streams_open.labels(method).dec()

    # -------------------------------------------------------------- the log

    def batch_committed(self, appends: int, events: int, seconds: float) -> None:
        self._events_appended.inc(events)
        self._batch_size.observe(appends)
        self._commit_seconds.observe(seconds)

    # -------------------------------------------------------------- the engine

    def turn_ended(self, outcome: str, seconds: float) -> None:
        self._turns.labels(outcome).inc()
        self._turn_seconds.labels(outcome).observe(seconds)

    def nlp_called(self, provider: str, operation: str, ok: bool, seconds: float) -> None:
        self._nlp_calls.labels(provider, operation, "ok" if ok else "error").inc()
        self._nlp_seconds.labels(provider, operation).observe(seconds)

    def tool_called(self, tool: str, outcome: str, seconds: float) -> None:
        self._tool_calls.labels(tool, outcome).inc()
        self._tool_seconds.labels(tool).observe(seconds)

    # -------------------------------------------------------------- handoffs

    def handoff_changed(self, state: str, claim_wait_s: float | None) -> None:
        self._handoff_changes.labels(state).inc()
        if claim_wait_s is not None:
            self._time_to_claim.observe(claim_wait_s)
