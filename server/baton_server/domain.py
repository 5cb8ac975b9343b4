"""Transport-free domain model shared by the store, the bus, the use cases and the API layer."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SessionMode(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class EventKind(enum.StrEnum):
    MESSAGE = "message"
    TOOL = "tool"
    STATUS = "status"
    CUSTOM = "custom"


class EventSource(enum.StrEnum):
    CUSTOMER = "customer"
    CUSTOMER_UI = "customer_ui"
    AI_AGENT = "ai_agent"
    HUMAN_AGENT = "human_agent"
    HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT = "human_agent_on_behalf_of_ai_agent"
    SYSTEM = "system"


# Types of Baton's own lifecycle events (custom events with source SYSTEM).
SESSION_CREATED = "baton.session_created"
SESSION_MODE_CHANGED = "baton.session_mode_changed"
# Prefix of the types of handoff lifecycle events ("baton.handoff_requested", ...).
HANDOFF_EVENT_PREFIX = "baton.handoff_"
# Data field of a handoff lifecycle event: the position of its change on the operator inbox.
INBOX_POSITION = "inbox_position"


def now_us() -> int:
    """Current time in integer microseconds since the epoch (how the store keeps times)."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def us_to_datetime(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


# How drafts' data is stored (and digested for idempotency): compact, keys sorted. One
# encoder for all: json.dumps with options builds a new one per call.
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class OperatingWindow:
    weekdays: tuple[int, ...]  # ISO weekdays 1..7; empty means every day
    start: str  # "HH:MM"
    end: str  # "HH:MM", exclusive; "24:00" for midnight


@dataclass(frozen=True, slots=True)
class HandoffPolicy:
    """How handoffs work for one agent. Empty texts and zero durations mean "default"; the
    handoff package resolves them (see handoff/policy.py)."""

    handoff_started_message: str = ""
    operator_joined_message: str = ""
    operator_joined_anonymous_message: str = ""
    ai_back_message: str = ""
    no_operator_message: str = ""
    queue_position_message: str = ""
    claim_timeout_message: str = ""
    claim_timeout_s: float = 0.0
    # "keep_waiting" or "return_to_ai"
    claim_timeout_action: str = "keep_waiting"
    inactivity_timeout_s: float = 0.0
    # "return_to_ai" or "end"
    inactivity_timeout_action: str = "return_to_ai"
    time_zone: str = ""
    operating_hours: tuple[OperatingWindow, ...] = ()
    default_wait_per_position_s: float = 0.0

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in self.__slots__ if name != "operating_hours"}
        data["operating_hours"] = [
            {"weekdays": list(w.weekdays), "start": w.start, "end": w.end}
            for w in self.operating_hours
        ]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HandoffPolicy:
        data = json.loads(text or "{}")
        windows = tuple(
            OperatingWindow(tuple(w.get("weekdays", ())), w["start"], w["end"])
            for w in data.pop("operating_hours", [])
        )
        known = set(cls.__slots__)
        return cls(**{k: v for k, v in data.items() if k in known}, operating_hours=windows)


DEFAULT_POLICY = HandoffPolicy()


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    description: str
    created_at_us: int
    handoff_policy: HandoffPolicy = DEFAULT_POLICY


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    metadata: dict[str, str]
    created_at_us: int


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    agent_id: str
    customer_id: str
    title: str
    mode: SessionMode
    metadata: dict[str, str]
    created_at_us: int
    updated_at_us: int
    next_offset: int
    control_epoch: int = 0


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did a write (audit trail): the API key and its role, and for customer tokens the
    customer. Kept with each event the caller appended."""

    key_id: str
    role: str
    customer_id: str = ""

    def to_dict(self) -> dict[str, str]:
        data = {"key_id": self.key_id, "role": self.role}
        if self.customer_id:
            data["customer_id"] = self.customer_id
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Actor:
        data = json.loads(text)
        return cls(data["key_id"], data["role"], data.get("customer_id", ""))


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event as a caller wants it appended; the store assigns id, offset and time."""

    kind: EventKind
    source: EventSource
    data: dict[str, Any]
    correlation_id: str = ""
    idempotency_key: str = ""

    def data_json(self) -> str:
        return _CANONICAL_JSON.encode(self.data)


@dataclass(frozen=True, slots=True)
class Event:
    """A committed entry of a session's log.

    `data_json` is kept as stored so replay does not pay for parsing until a consumer needs it.
    """

    id: str
    session_id: str
    offset: int
    kind: EventKind
    source: EventSource
    created_at_us: int
    correlation_id: str
    data_json: str
    # Who appended it (None: Baton's engine, or a server without authentication).
    actor: Actor | None = None
    # The bytes stored with it at append (the current wire format): responses and live delivery
    # send them as they are. None when not at hand (a view of the event, an older stored form).
    encoded: bytes | None = field(default=None, compare=False, repr=False)
    _parsed: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)

    @property
    def data(self) -> dict[str, Any]:
        if not self._parsed:
            self._parsed.append(json.loads(self.data_json))
        return self._parsed[0]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a reader wants; empty sets mean everything."""

    kinds: frozenset[EventKind] = frozenset()
    sources: frozenset[EventSource] = frozenset()

    def matches(self, event: Event) -> bool:
        return (not self.kinds or event.kind in self.kinds) and (
            not self.sources or event.source in self.sources
        )

    @property
    def is_everything(self) -> bool:
        return not self.kinds and not self.sources


EVERYTHING = EventFilter()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class AgentChanges:
    """An agent's fields to change (None: leave as is)."""

    name: str | None = None
    description: str | None = None
    handoff_policy: HandoffPolicy | None = None


@dataclass(frozen=True, slots=True)
class CustomerChanges:
    """A customer's fields to change (None: leave as is)."""

    name: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class GuidelineChanges:
    """A guideline's fields to change (None: leave as is)."""

    condition: str | None = None
    action: str | None = None
    tool_names: tuple[str, ...] | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class Guideline:
    id: str
    agent_id: str
    condition: str
    action: str
    tool_names: tuple[str, ...]
    enabled: bool
    created_at_us: int


@dataclass(frozen=True, slots=True)
class CannedResponse:
    id: str
    agent_id: str
    text: str
    created_at_us: int


class GuardFailure(enum.StrEnum):
    """Which condition of a TurnGuard failed in the append transaction (the engine words it)."""

    NOT_AUTO = "not_auto"  # the session left AUTO mode
    CONTROL_CHANGED = "control_changed"  # after this turn's own handoff, control changed again
    SUPERSEDED = "superseded"  # a newer customer message exists
    HUMAN_ANSWERED = "human_answered"  # a human agent wrote after the trigger


@dataclass(frozen=True, slots=True)
class TurnGuard:
    """What must still hold for an agent turn to write to the log.

    `trigger_offset` is the customer message that started the turn: a newer customer message
    supersedes the turn. The session must be in AUTO mode, unless this very turn handed it off.
    """

    trigger_offset: int
    handed_off: bool = False
    # After its own handoff, the session's control epoch that handoff left: any later control
    # change (an operator claiming it, ...) silences the turn too.
    control_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A transient piece of an AI reply being generated; never stored."""

    session_id: str
    correlation_id: str
    text: str
    index: int


@dataclass(frozen=True, slots=True)
class TurnSnapshot:
    """What an agent turn reads from the store, in one go."""

    session: Session
    agent: Agent
    guidelines: list[Guideline]
    canned_responses: list[CannedResponse]
    history: list[Event]


class HandoffState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    ENDED = "ended"


class HandoffOutcome(enum.StrEnum):
    NONE = ""
    RESOLVED_BY_HUMAN = "resolved_by_human"
    RETURNED_TO_AI = "returned_to_ai"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed_out"


class HandoffRequester(enum.StrEnum):
    TOOL = "tool"
    EXTERNAL_SYSTEM = "external_system"
    CUSTOMER = "customer"
    HUMAN_TAKEOVER = "human_takeover"


class HandoffChangeType(enum.StrEnum):
    OPEN = "open"
    REQUESTED = "requested"
    OFFERED = "offered"
    OFFER_DECLINED = "offer_declined"
    CLAIMED = "claimed"
    TRANSFERRED = "transferred"
    CUSTOMER_MESSAGE = "customer_message"
    CLAIM_TIMEOUT = "claim_timeout"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class HolderReply:
    """Append condition and effect for a human agent's message on a handed-off session: it goes
    in only while `author_id` (anyone, when empty) holds the session's CLAIMED handoff, and then
    counts as the holder's reply at `at_us` (the handoff's first reply time is set if unset, its
    inactivity deadline renewed from `at_us`)."""

    author_id: str
    at_us: int


@dataclass(frozen=True, slots=True)
class InboxNotice:
    """Append effect: if the session is MANUAL when the events commit, each one shows on the
    operator inbox as a `change` of the session's latest handoff (the open one, or the last)."""

    change: HandoffChangeType


@dataclass(frozen=True, slots=True)
class Operator:
    """A human agent as the integration knows them."""

    id: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Handoff:
    id: str
    session_id: str
    agent_id: str
    state: HandoffState
    reason: str
    summary: str
    requested_by: HandoffRequester
    operator: Operator | None
    operator_on_behalf_of_ai: bool
    offered_to: Operator | None
    requested_at_us: int
    claimed_at_us: int | None
    first_human_reply_at_us: int | None
    ended_at_us: int | None
    outcome: HandoffOutcome
    note: str
    control_epoch: int
    queue_position: int = 0

    @property
    def is_open(self) -> bool:
        return self.state is not HandoffState.ENDED


@dataclass(frozen=True, slots=True)
class HandoffChange:
    position: int
    type: HandoffChangeType
    handoff: Handoff
    event_offset: int
    created_at_us: int


def mode_changed(
    previous: SessionMode,
    mode: SessionMode,
    reason: str = "",
    correlation_id: str = "",
    actor: Actor | None = None,
) -> EventDraft:
    """The log entry recording a mode change (appended in the transaction that makes it)."""
    data: dict[str, Any] = {
        "type": SESSION_MODE_CHANGED,
        "mode": mode.value,
        "previous_mode": previous.value,
    }
    if reason:
        data["reason"] = reason
    if actor is not None:
        data["actor"] = actor.to_dict()
    return EventDraft(EventKind.CUSTOM, EventSource.SYSTEM, data, correlation_id=correlation_id)


@dataclass(frozen=True, slots=True)
class WorkerToolSpec:
    """A tool as a tool worker declared it (ToolWorkerService); remembered by the store so
    guidelines and the catalogue know it while no worker serving it is connected."""

    name: str
    description: str
    parameters: dict[str, Any]
    timeout_s: float | None = None  # None: the server's default tool timeout
    retry_safe: bool = False
