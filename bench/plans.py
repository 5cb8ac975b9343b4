"""What a full and a quick run of `bench.run` and `bench.handoffs` measure. The results JSON
records the plan of its run (`"plan"`), field by field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencyScenario:
    key: str
    label: str
    sessions: int  # distinct sessions appended to
    streams_per_session: int  # follow streams on each of them
    rate: float  # appends per second, spread round-robin over the sessions
    # Also run the durable fan-out (the in-memory one plus a durable SQLite commit per append),
    # for context: what any store that commits each append at synchronous=FULL adds here.
    durable_floor: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """bench.run: throughput, latency, replay, memory."""

    # 1. throughput
    clients: int = 64
    client_channels: int = 2
    warmup_s: float = 2.0
    duration_s: float = 10.0
    # Baseline and Baton runs alternate this many times; a figure is the mean of the rounds.
    throughput_rounds: int = 3
    # 2. latency
    scenarios: tuple[LatencyScenario, ...] = (
        # Rates keep the baseline well below saturation on 2 cores: about 5,000 deliveries/s
        # for (a) and (b) (10,000/s already saturates a grpc.aio server here).
        LatencyScenario("a", "100 subscribers, 1 session", 1, 100, 50.0),
        LatencyScenario("b", "1,000 subscribers, 1 session", 1, 1000, 5.0),
        LatencyScenario("c", "1,000 sessions x 1 subscriber", 1000, 1, 200.0, durable_floor=True),
    )
    latency_warmup_s: float = 2.0
    latency_measure_s: float = 10.0
    # Baseline and Baton runs alternate this many times; a figure is each system's round with
    # the lowest p99.
    latency_rounds: int = 2
    streams_per_channel: int = 100
    # 3. replay
    replay_events: int = 100_000
    replay_runs: int = 3
    # 4. memory
    memory_streams: int = 10_000
    memory_warm_streams: int = 200
    memory_sessions: int = 1000
    # Throughput and latency on a fresh database of this PostgreSQL (an admin URL) instead of a
    # SQLite file: `bench.run --postgres URL`.
    postgres_admin_url: str = ""

    @property
    def backend(self) -> str:
        return "PostgreSQL" if self.postgres_admin_url else "SQLite"


FULL_PLAN = Plan()
# A smoke run (under a minute on 2 cores): every figure, on small sizes and short windows.
QUICK_PLAN = Plan(
    warmup_s=1.0,
    duration_s=2.0,
    throughput_rounds=1,
    latency_rounds=1,
    scenarios=(
        LatencyScenario("a", "50 subscribers, 1 session", 1, 50, 50.0),
        LatencyScenario("b", "200 subscribers, 1 session", 1, 200, 10.0),
        LatencyScenario("c", "100 sessions x 1 subscriber", 100, 1, 50.0, durable_floor=True),
    ),
    latency_warmup_s=1.0,
    latency_measure_s=2.0,
    replay_events=10_000,
    replay_runs=1,
    memory_streams=1000,
    memory_warm_streams=50,
    memory_sessions=100,
)


@dataclass(frozen=True, slots=True)
class HandoffPlan:
    """bench.handoffs: inbox, race, auth."""

    # 1. inbox: request, then claim, a handoff on each session, one control RPC per interval.
    inbox_sessions: int = 200
    inbox_interval_s: float = 0.025
    inbox_drain_s: float = 20.0  # longer than the server's 15 s heartbeat (the inbox re-reads)
    # 2. race: `race_handoffs` races of `race_operators`, alternating with as many single claims.
    race_handoffs: int = 50
    race_operators: int = 20
    # 3. auth: closed-loop CreateEvent clients, each on its own session.
    auth_clients: int = 32
    auth_channels: int = 2
    auth_warmup_s: float = 2.0
    auth_duration_s: float = 10.0
    auth_rounds: int = 3  # --dev and auth alternate; a figure is the mean of the rounds


FULL_HANDOFF_PLAN = HandoffPlan()
QUICK_HANDOFF_PLAN = HandoffPlan(
    inbox_sessions=40,
    race_handoffs=10,
    auth_clients=16,
    auth_warmup_s=1.0,
    auth_duration_s=3.0,
    auth_rounds=1,
)


@dataclass(frozen=True, slots=True)
class GrowthPlan:
    """bench.growth: the append rate and a fresh session's catch-up on a big store vs an empty
    one."""

    # The big store: `stored_events` events round-robin over `stored_sessions` sessions.
    stored_events: int = 1_000_000
    stored_sessions: int = 10_000
    # The fresh session caught up on each store, and how many reads (the figure is the median).
    replay_events: int = 20_000
    replay_runs: int = 3
    # The append rate: closed-loop CreateEvent clients, each on its own new session.
    clients: int = 64
    client_channels: int = 2
    warmup_s: float = 2.0
    duration_s: float = 10.0


FULL_GROWTH_PLAN = GrowthPlan()
# A smoke run (under a minute on 2 cores): the same procedure on a small store.
QUICK_GROWTH_PLAN = GrowthPlan(
    stored_events=20_000,
    stored_sessions=200,
    replay_events=2_000,
    warmup_s=1.0,
    duration_s=2.0,
)
