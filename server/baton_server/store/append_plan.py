"""What a batch of appends writes, decided without I/O.

Both append paths (SQLAlchemy on PostgreSQL and for batches that touch handoff rows; plain
`sqlite3` on SQLite's writer thread, see sqlite_log.py) read the same `BatchState` inside their
write transaction, call `plan_batch`, and write the `BatchPlan` it returns. So the rules (offsets,
idempotency, guards, holder conditions, inbox notices) live once, here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from baton_server.domain import (
    Actor,
    Event,
    EventDraft,
    EventKind,
    EventSource,
    GuardFailure,
    HandoffChangeType,
    HolderReply,
    InboxNotice,
    SessionMode,
    TurnGuard,
)
from baton_server.errors import (
    BatonError,
    IdempotencyKeyReused,
    NeedsHandoffControl,
    NotFound,
    TurnAborted,
)
from baton_server.store.handoff_rows import HeldHandoff
from baton_server.store.ids import new_id

HUMAN_SOURCES = (EventSource.HUMAN_AGENT, EventSource.HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT)
MANUAL = SessionMode.MANUAL.value


@dataclass(frozen=True, slots=True)
class EventEncoding:
    """Turns a committed event into the bytes readers send for it (the API layer's wire format;
    the store keeps them opaque), so replay, responses and live delivery encode nothing.

    `version` is stored beside the bytes: rows of another version are encoded anew on read, so
    a change to the format needs no backfill and never serves stale bytes."""

    version: int
    encode: Callable[[Event], bytes]

    def attached(self, event: Event, wire: bytes | None, wire_format: int | None) -> Event:
        """`event` with its bytes: the stored ones when of this version, else encoded anew."""
        if wire is None or wire_format != self.version:
            return replace(event, encoded=self.encode(event))
        return replace(event, encoded=bytes(wire))


def request_digest(session_id: str, draft: EventDraft, data_json: str) -> str:
    text = "\x1f".join(
        (session_id, draft.kind.value, draft.source.value, draft.correlation_id, data_json)
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class AppendRequest:
    """Drafts to append to one session, all or none, optionally only while `guard` holds."""

    session_id: str
    drafts: list[EventDraft]
    guard: TurnGuard | None = None
    # Who asks (audit trail). Captured by the caller: the writer task runs in another context.
    actor: Actor | None = None
    # A holder's message: appended only while its author holds the CLAIMED handoff, whose
    # reply times it then updates.
    human: HolderReply | None = None
    # Events the operator inbox shows when the session is MANUAL at commit.
    inbox: InboxNotice | None = None
    # Filled in by `prepare()`: (data_json, digest) per draft, and the actor's JSON.
    prepared: list[tuple[str, str]] = field(default_factory=list)
    actor_json: str | None = None

    def prepare(self) -> AppendRequest:
        for draft in self.drafts:
            data_json = draft.data_json()
            digest = (
                request_digest(self.session_id, draft, data_json) if draft.idempotency_key else ""
            )
            self.prepared.append((data_json, digest))
        if self.actor is not None:
            self.actor_json = self.actor.to_json()
        return self


@dataclass(frozen=True, slots=True)
class SessionHead:
    next_offset: int
    mode: str
    control_epoch: int


@dataclass(slots=True)
class BatchState:
    """What the write transaction read (under the write lock) for a batch."""

    sessions: dict[str, SessionHead]
    # (session id, idempotency key) -> (request digest, the event stored under it)
    known: dict[tuple[str, str], tuple[str, Event]]
    # Newest customer / human-agent message offset per guarded session.
    latest_customer: dict[str, int]
    latest_human: dict[str, int]
    # The CLAIMED handoff of each session a holder's message goes to.
    held: dict[str, HeldHandoff]


@dataclass(slots=True)
class BatchOutcome:
    # Per request: its events (new, or the originals of idempotent retries), or its error.
    results: list[list[Event] | BatonError] = field(default_factory=list)
    committed: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class BatchPlan:
    outcome: BatchOutcome
    # Event rows to insert (columns of schema.events) and each touched session's new head.
    rows: list[dict[str, Any]]
    heads: dict[str, int]
    created_at_us: int
    # Holders wrote: (the handoff with its first reply time set, its last reply time here).
    replies: list[tuple[HeldHandoff, int]]
    # Inbox changes the appends asked for (InboxNotice on a MANUAL session).
    noticed: list[tuple[HandoffChangeType, Event]]

    @property
    def touches_handoffs(self) -> bool:
        return bool(self.replies or self.noticed)


def latest_messages(
    rows: Iterable[tuple[str, str, int]],
) -> tuple[dict[str, int], dict[str, int]]:
    """(session id, source, newest message offset) rows, split into the newest customer and
    the newest human-agent message offset per session (what the turn guards compare)."""
    customer: dict[str, int] = {}
    human: dict[str, int] = {}
    for session_id, source, offset in rows:
        target = customer if source == EventSource.CUSTOMER.value else human
        target[session_id] = max(offset, target.get(session_id, -1))
    return customer, human


def keyed_drafts(requests: list[AppendRequest]) -> set[tuple[str, str]]:
    """(session id, idempotency key) of every keyed draft: the keys the state must look up."""
    return {
        (r.session_id, d.idempotency_key) for r in requests for d in r.drafts if d.idempotency_key
    }


def guarded_sessions(requests: list[AppendRequest]) -> list[str]:
    """Sessions whose latest customer and human messages the state must hold."""
    return sorted({r.session_id for r in requests if r.guard is not None})


def holder_sessions(requests: list[AppendRequest]) -> list[str]:
    return sorted({r.session_id for r in requests if r.human is not None})


def plan_batch(
    requests: list[AppendRequest],
    state: BatchState,
    encoding: EventEncoding | None,
    created_at_us: int,
) -> BatchPlan:
    """The rows the batch writes, and each request's result, in request order. A request that
    cannot be appended (unknown session, reused idempotency key, a guard or holder condition that
    no longer holds) gets its error; the others still go in."""
    outcome = BatchOutcome()
    heads = {sid: head.next_offset for sid, head in state.sessions.items()}
    known = dict(state.known)
    latest_customer = dict(state.latest_customer)
    latest_human = dict(state.latest_human)
    rows: list[dict[str, Any]] = []
    noticed: list[tuple[HandoffChangeType, Event]] = []
    replies: dict[str, tuple[HeldHandoff, int]] = {}
    touched: set[str] = set()
    for request in requests:
        sid = request.session_id
        result = _check(request, state, heads, latest_customer, latest_human, known)
        if result is not None:
            outcome.results.append(result)
            continue
        mode = state.sessions[sid].mode
        events: list[Event] = []
        for draft, (data_json, digest) in zip(request.drafts, request.prepared, strict=True):
            offset = heads[sid]
            heads[sid] = offset + 1
            event_id = new_id("evt")
            event = Event(
                id=event_id,
                session_id=sid,
                offset=offset,
                kind=draft.kind,
                source=draft.source,
                created_at_us=created_at_us,
                # Uncorrelated events start their own correlation (e.g. the turn a message starts).
                correlation_id=draft.correlation_id or event_id,
                data_json=data_json,
                actor=request.actor,
            )
            if encoding is not None:
                event = replace(event, encoded=encoding.encode(event))
            rows.append(
                {
                    "session_id": sid,
                    "offset": offset,
                    "id": event_id,
                    "kind": draft.kind.value,
                    "source": draft.source.value,
                    "created_at_us": created_at_us,
                    "correlation_id": event.correlation_id,
                    "idempotency_key": draft.idempotency_key or None,
                    "request_digest": digest if draft.idempotency_key else None,
                    "data_json": data_json,
                    "data_type": data_type(draft.kind, draft.data),
                    "wire": event.encoded,
                    "wire_format": encoding.version if encoding is not None else None,
                    "actor_json": request.actor_json,
                }
            )
            if draft.idempotency_key:
                known[(sid, draft.idempotency_key)] = (digest, event)
            if draft.kind is EventKind.MESSAGE:
                if draft.source is EventSource.CUSTOMER:
                    latest_customer[sid] = offset
                elif draft.source in HUMAN_SOURCES:
                    latest_human[sid] = offset
            if request.inbox is not None and mode == MANUAL:
                noticed.append((request.inbox.change, event))
            events.append(event)
        if request.human is not None:
            handoff = state.held[sid]
            first = replies.get(handoff.id, (handoff, 0))[0]
            if first.first_human_reply_at_us is None:  # the first reply of the batch wins
                first = replace(first, first_human_reply_at_us=request.human.at_us)
            replies[handoff.id] = (first, request.human.at_us)
        touched.add(sid)
        outcome.results.append(events)
        outcome.committed.extend(events)
    return BatchPlan(
        outcome,
        rows,
        {sid: heads[sid] for sid in sorted(touched)},
        created_at_us,
        list(replies.values()),
        noticed,
    )


def _check(
    request: AppendRequest,
    state: BatchState,
    heads: dict[str, int],
    latest_customer: dict[str, int],
    latest_human: dict[str, int],
    known: dict[tuple[str, str], tuple[str, Event]],
) -> list[Event] | BatonError | None:
    """Why `request` must not append (an error, or the original events of a retry), or None."""
    sid = request.session_id
    session = state.sessions.get(sid)
    if session is None:
        return NotFound("session", sid)
    guard = request.guard
    if guard is not None:
        if session.mode != SessionMode.AUTO.value and not guard.handed_off:
            return TurnAborted(GuardFailure.NOT_AUTO)
        if guard.control_epoch is not None and session.control_epoch != guard.control_epoch:
            return TurnAborted(GuardFailure.CONTROL_CHANGED)
        if latest_customer.get(sid, -1) > guard.trigger_offset:
            return TurnAborted(GuardFailure.SUPERSEDED)
        if latest_human.get(sid, -1) > guard.trigger_offset:
            # Even after this turn's own handoff: once a human speaks, the AI stays silent.
            return TurnAborted(GuardFailure.HUMAN_ANSWERED)
    originals: list[Event] = []
    for draft, (_, digest) in zip(request.drafts, request.prepared, strict=True):
        key = (sid, draft.idempotency_key)
        if not draft.idempotency_key or key not in known:
            continue
        known_digest, original = known[key]
        if known_digest != digest:
            return IdempotencyKeyReused(
                f"idempotency_key {draft.idempotency_key!r} was already used in session "
                f"{sid!r} for a different event (offset {original.offset}); "
                "use a new key for a new event",
                metadata={"offset": str(original.offset)},
            )
        originals.append(original)
    if originals:
        if len(originals) != len(request.drafts):
            return IdempotencyKeyReused("a multi-event request mixed retried and new events")
        return originals
    if request.human is not None:
        handoff = state.held.get(sid)
        author = request.human.author_id
        if handoff is None or (author and author != handoff.operator_id):
            return NeedsHandoffControl("the handoff controls decide this message")
    return None


def data_type(kind: EventKind, data: dict[str, Any]) -> str | None:
    """The `data_type` column of an event: its status name, or its custom type."""
    value = data.get("status") if kind is EventKind.STATUS else None
    if kind is EventKind.CUSTOM:
        value = data.get("type")
    return value if isinstance(value, str) and len(value) <= 128 else None
