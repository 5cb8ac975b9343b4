"""The repository every caller (servicers' use cases, engine, handoff) goes through.

Reads run on pooled connections; every write goes through the Appender's single writer task so
each state change commits together with the event that records it, and is published after commit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import (
    DEFAULT_POLICY,
    SESSION_CREATED,
    SESSION_MODE_CHANGED,
    Actor,
    Agent,
    CannedResponse,
    Customer,
    Event,
    EventDraft,
    EventFilter,
    EventKind,
    EventSource,
    Guideline,
    HandoffPolicy,
    Page,
    Session,
    SessionMode,
    TurnGuard,
    TurnSnapshot,
    now_us,
)
from baton_server.errors import FailedPrecondition, NotFound, StaleEpoch
from baton_server.store import schema
from baton_server.store.appender import Appender, AppendRequest, EventEncoder, append_rows
from baton_server.store.database import Database
from baton_server.store.handoffs import forget_session
from baton_server.store.ids import new_id
from baton_server.store.paging import keyset_page
from baton_server.store.rows import (
    agent_from_row,
    canned_response_from_row,
    customer_from_row,
    event_from_row,
    guideline_from_row,
    session_from_row,
)

_UNSET: Any = object()

# Runs inside a write transaction (given its connection); returns the events it appended.
InTransaction = Callable[[AsyncConnection], Awaitable[list[Event]]]
# What UpdateSession does on a mode change: (conn, session before, new mode, reason) → events.
# (transaction, session before, new mode, reason, who acts) -> the events it appended.
ModeChangeHook = Callable[
    [AsyncConnection, Session, SessionMode, str, Actor | None], Awaitable[list[Event]]
]


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


class Repository:
    def __init__(
        self,
        database: Database,
        *,
        on_commit: Callable[[list[Event]], None],
        on_session_deleted: Callable[[str], None],
        encode_event: EventEncoder | None = None,
    ) -> None:
        self._db = database
        self._encode = encode_event
        self._appender = Appender(database, on_commit, encode=encode_event)
        self._on_session_deleted = on_session_deleted

    @property
    def database(self) -> Database:
        return self._db

    @property
    def stores_encoded_events(self) -> bool:
        """Whether appends keep each event's encoded form (see `read_encoded_events`)."""
        return self._encode is not None

    def start(self) -> None:
        self._appender.start()

    async def run_write(self, job: Any) -> Any:
        """Runs `job(conn) -> (result, appended events)` in one transaction on the writer;
        publishes the appended events after commit and returns the result. (The job runs on
        the writer task: whoever acts is passed to `append_in` explicitly.)"""
        return await self._appender.run_job(job)

    async def key_used(self, conn: AsyncConnection, session_id: str, key: str) -> bool:
        events = schema.events
        return bool(
            await conn.scalar(
                select(
                    exists().where(
                        events.c.session_id == session_id, events.c.idempotency_key == key
                    )
                )
            )
        )

    async def close(self) -> None:
        await self._appender.close()

    # ------------------------------------------------------------------ paging helper

    async def _page(
        self,
        query: Select[Any],
        table: Any,
        size: int,
        token: str,
        filters: dict[str, str],
        convert: Callable[[Any], Any],
    ) -> Page[Any]:
        return await keyset_page(
            self._db, query, table.c.created_at_us, table.c.id, size, token, filters, convert
        )

    async def _one(self, table: Any, resource: str, resource_id: str, convert: Any) -> Any:
        async with self._db.reader.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == resource_id))).first()
        if row is None:
            raise NotFound(resource, resource_id)
        return convert(row)

    # ------------------------------------------------------------------ agents

    async def create_agent(
        self, name: str, description: str, handoff_policy: HandoffPolicy = DEFAULT_POLICY
    ) -> Agent:
        agent = Agent(new_id("agt"), name, description, now_us(), handoff_policy)

        async def job(conn: AsyncConnection) -> tuple[Agent, list[Event]]:
            await conn.execute(
                schema.agents.insert().values(
                    id=agent.id,
                    name=name,
                    description=description,
                    created_at_us=agent.created_at_us,
                    handoff_policy_json=handoff_policy.to_json(),
                )
            )
            return agent, []

        return await self.run_write(job)

    async def get_agent(self, agent_id: str) -> Agent:
        return await self._one(schema.agents, "agent", agent_id, agent_from_row)

    async def list_agents(self, size: int, token: str) -> Page[Agent]:
        return await self._page(
            select(schema.agents), schema.agents, size, token, {}, agent_from_row
        )

    async def update_agent(
        self,
        agent_id: str,
        *,
        name: str = _UNSET,
        description: str = _UNSET,
        handoff_policy: HandoffPolicy = _UNSET,
    ) -> Agent:
        values = {
            k: v for k, v in (("name", name), ("description", description)) if v is not _UNSET
        }
        if handoff_policy is not _UNSET:
            values["handoff_policy_json"] = handoff_policy.to_json()
        return await self._update(schema.agents, "agent", agent_id, values, agent_from_row)

    async def delete_agent(self, agent_id: str) -> None:
        await self._delete(schema.agents, "agent", agent_id, schema.sessions.c.agent_id)

    # ------------------------------------------------------------------ customers

    async def create_customer(self, name: str, metadata: dict[str, str]) -> Customer:
        customer = Customer(new_id("cus"), name, dict(metadata), now_us())

        async def job(conn: AsyncConnection) -> tuple[Customer, list[Event]]:
            await conn.execute(
                schema.customers.insert().values(
                    id=customer.id,
                    name=name,
                    metadata_json=json.dumps(metadata),
                    created_at_us=customer.created_at_us,
                )
            )
            return customer, []

        return await self.run_write(job)

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._one(schema.customers, "customer", customer_id, customer_from_row)

    async def list_customers(self, size: int, token: str) -> Page[Customer]:
        return await self._page(
            select(schema.customers), schema.customers, size, token, {}, customer_from_row
        )

    async def update_customer(
        self, customer_id: str, *, name: str = _UNSET, metadata: dict[str, str] = _UNSET
    ) -> Customer:
        values: dict[str, Any] = {}
        if name is not _UNSET:
            values["name"] = name
        if metadata is not _UNSET:
            values["metadata_json"] = json.dumps(metadata)
        return await self._update(
            schema.customers, "customer", customer_id, values, customer_from_row
        )

    async def delete_customer(self, customer_id: str) -> None:
        await self._delete(schema.customers, "customer", customer_id, schema.sessions.c.customer_id)

    async def _update(
        self, table: Any, resource: str, resource_id: str, values: dict[str, Any], convert: Any
    ) -> Any:
        async def job(conn: AsyncConnection) -> tuple[Any, list[Event]]:
            if values:
                await conn.execute(update(table).where(table.c.id == resource_id).values(values))
            row = (await conn.execute(select(table).where(table.c.id == resource_id))).first()
            if row is None:
                raise NotFound(resource, resource_id)
            return convert(row), []

        return await self.run_write(job)

    async def _delete(
        self, table: Any, resource: str, resource_id: str, used_by_sessions: Any = None
    ) -> None:
        """Deletes one row; with `used_by_sessions` (a sessions column), refuses while any
        session still references it."""

        async def job(conn: AsyncConnection) -> tuple[None, list[Event]]:
            if used_by_sessions is not None:
                in_use = await conn.scalar(
                    select(func.count())
                    .select_from(schema.sessions)
                    .where(used_by_sessions == resource_id)
                )
                if in_use:
                    raise FailedPrecondition(
                        f"{resource} {resource_id!r} is used by {in_use} session(s); "
                        "delete those sessions first",
                        metadata={"sessions": str(in_use)},
                    )
            result = await conn.execute(delete(table).where(table.c.id == resource_id))
            if result.rowcount == 0:
                raise NotFound(resource, resource_id)
            return None, []

        await self.run_write(job)

    # ------------------------------------------------------------------ sessions

    async def create_session(
        self,
        agent_id: str,
        customer_id: str,
        title: str,
        mode: SessionMode,
        metadata: dict[str, str],
        actor: Actor | None = None,
    ) -> Session:
        session_id = new_id("ses")

        async def job(conn: AsyncConnection) -> tuple[Session, list[Event]]:
            for table, resource, rid in (
                (schema.agents, "agent", agent_id),
                (schema.customers, "customer", customer_id),
            ):
                if not await conn.scalar(select(exists().where(table.c.id == rid))):
                    raise NotFound(resource, rid)
            created = now_us()
            await conn.execute(
                schema.sessions.insert().values(
                    id=session_id,
                    agent_id=agent_id,
                    customer_id=customer_id,
                    title=title,
                    mode=mode.value,
                    metadata_json=json.dumps(metadata),
                    created_at_us=created,
                    updated_at_us=created,
                    next_offset=0,
                )
            )
            draft = EventDraft(
                EventKind.CUSTOM,
                EventSource.SYSTEM,
                {
                    "type": SESSION_CREATED,
                    "agent_id": agent_id,
                    "customer_id": customer_id,
                    "mode": mode.value,
                },
            )
            committed = await self.append_in(conn, session_id, [draft], actor=actor)
            return await self._session_in(conn, session_id), committed

        return await self.run_write(job)

    async def get_session(self, session_id: str) -> Session:
        return await self._one(schema.sessions, "session", session_id, session_from_row)

    async def list_sessions(
        self,
        size: int,
        token: str,
        *,
        agent_id: str = "",
        customer_id: str = "",
        mode: SessionMode | None = None,
    ) -> Page[Session]:
        table = schema.sessions
        query = select(table)
        filters = {
            "agent_id": agent_id,
            "customer_id": customer_id,
            "mode": mode.value if mode else "",
        }
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        if customer_id:
            query = query.where(table.c.customer_id == customer_id)
        if mode is not None:
            query = query.where(table.c.mode == mode.value)
        return await self._page(query, table, size, token, filters, session_from_row)

    async def update_session(
        self,
        session_id: str,
        *,
        title: str = _UNSET,
        metadata: dict[str, str] = _UNSET,
        mode: SessionMode = _UNSET,
        reason: str = "",
        expected_epoch: int | None = None,
        on_mode_change: ModeChangeHook | None = None,
        actor: Actor | None = None,
    ) -> Session:
        """Updates fields; a mode change appends a mode-changed event in the same transaction
        (or runs `on_mode_change`, which records it with whatever else a change implies), both
        recorded as done by `actor`."""

        async def job(conn: AsyncConnection) -> tuple[Session, list[Event]]:
            current = await self._session_in(conn, session_id, lock=True)
            if expected_epoch is not None and expected_epoch != current.control_epoch:
                raise StaleEpoch(session_id, expected_epoch, current.control_epoch)
            values: dict[str, Any] = {}
            if title is not _UNSET:
                values["title"] = title
            if metadata is not _UNSET:
                values["metadata_json"] = json.dumps(metadata)
            drafts: list[EventDraft] = []
            changes_mode = mode is not _UNSET and mode != current.mode
            if changes_mode and on_mode_change is None:
                values["mode"] = mode.value
                drafts.append(mode_changed(current.mode, mode, reason, actor=actor))
            if values:
                values["updated_at_us"] = now_us()
                await conn.execute(
                    update(schema.sessions).where(schema.sessions.c.id == session_id).values(values)
                )
            committed = (
                await self.append_in(conn, session_id, drafts, actor=actor) if drafts else []
            )
            if changes_mode and on_mode_change is not None:
                committed += await on_mode_change(conn, current, mode, reason, actor)
            return await self._session_in(conn, session_id), committed

        return await self.run_write(job)

    async def delete_session(self, session_id: str) -> None:
        async def job(conn: AsyncConnection) -> tuple[None, list[Event]]:
            await forget_session(conn, session_id, now_us())
            await conn.execute(
                delete(schema.events).where(schema.events.c.session_id == session_id)
            )
            result = await conn.execute(
                delete(schema.sessions).where(schema.sessions.c.id == session_id)
            )
            if result.rowcount == 0:
                raise NotFound("session", session_id)
            return None, []

        await self.run_write(job)
        self._on_session_deleted(session_id)

    async def _session_in(
        self, conn: AsyncConnection, session_id: str, *, lock: bool = False
    ) -> Session:
        query = select(schema.sessions).where(schema.sessions.c.id == session_id)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("session", session_id)
        return session_from_row(row)

    async def append_in(
        self,
        conn: AsyncConnection,
        session_id: str,
        drafts: Sequence[EventDraft],
        guard: TurnGuard | None = None,
        *,
        actor: Actor | None = None,
    ) -> list[Event]:
        """Appends inside the caller's write transaction (a `run_write` job), recorded as done
        by `actor` (None: Baton itself)."""
        request = AppendRequest(session_id, list(drafts), guard, actor).prepare()
        outcome = await append_rows(conn, [request], self._encode)
        result = outcome.results[0]
        if isinstance(result, Exception):
            raise result
        return result

    # ------------------------------------------------------------------ events

    async def append_event(
        self, session_id: str, draft: EventDraft, actor: Actor | None = None
    ) -> Event:
        """Appends one event (group-committed with concurrent appends); returns it once durable.

        With an idempotency key already used for the same request, returns the original event.
        """
        request = AppendRequest(session_id, [draft], actor=actor)
        (event,) = await self._appender.append(request)
        return event

    async def append_holder_message(
        self,
        session_id: str,
        draft: EventDraft,
        author_id: str,
        at_us: int,
        actor: Actor | None = None,
    ) -> Event:
        """A human agent's message on a session whose CLAIMED handoff `author_id` holds (any
        holder when empty), group-committed like any append; raises NeedsHandoffControl when
        that does not hold (the handoff controls then take the message)."""
        request = AppendRequest(session_id, [draft], actor=actor, human=(author_id, at_us))
        (event,) = await self._appender.append(request)
        return event

    async def next_offset(self, session_id: str) -> int:
        """Offset the next event of the session will get; every lower offset is committed."""
        async with self._db.reader.connect() as conn:
            value = await conn.scalar(
                select(schema.sessions.c.next_offset).where(schema.sessions.c.id == session_id)
            )
        if value is None:
            raise NotFound("session", session_id)
        return int(value)

    def _events_query(
        self,
        columns: Sequence[Any],
        session_id: str,
        from_offset: int,
        to_offset: int,
        event_filter: EventFilter,
        limit: int,
    ) -> Select[Any]:
        table = schema.events
        query = (
            select(*columns)
            .where(
                table.c.session_id == session_id,
                table.c.offset >= from_offset,
                table.c.offset < to_offset,
            )
            .order_by(table.c.offset)
            .limit(limit)
        )
        if event_filter.kinds:
            query = query.where(table.c.kind.in_(sorted(k.value for k in event_filter.kinds)))
        if event_filter.sources:
            query = query.where(table.c.source.in_(sorted(s.value for s in event_filter.sources)))
        return query

    async def read_events(
        self,
        session_id: str,
        from_offset: int,
        to_offset: int,
        event_filter: EventFilter,
        limit: int,
    ) -> list[Event]:
        """Committed events with from_offset <= offset < to_offset matching the filter, in order."""
        c = schema.events.c
        columns = (
            c.id,
            c.session_id,
            c.offset,
            c.kind,
            c.source,
            c.created_at_us,
            c.correlation_id,
            c.data_json,
            c.actor_json,
        )
        query = self._events_query(columns, session_id, from_offset, to_offset, event_filter, limit)
        async with self._db.reader.connect() as conn:
            result = await conn.execute(query)
            return [event_from_row(row) for row in result]

    async def read_encoded_events(
        self,
        session_id: str,
        from_offset: int,
        to_offset: int,
        event_filter: EventFilter,
        limit: int,
    ) -> list[tuple[int, bytes]]:
        """Like `read_events`, as (offset, encoded event) pairs: the bytes stored at append, so
        replay costs no per-event conversion. Needs `encode_event`."""
        assert self._encode is not None, "the repository was built without encode_event"
        c = schema.events.c
        query = self._events_query(
            (c.offset, c.wire), session_id, from_offset, to_offset, event_filter, limit
        )
        async with self._db.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        if any(wire is None for _, wire in rows):  # written before events were encoded
            events = await self.read_events(session_id, from_offset, to_offset, event_filter, limit)
            return [(e.offset, self._encode(e)) for e in events]
        return [(offset, bytes(wire)) for offset, wire in rows]

    # ------------------------------------------------------------------ guidelines

    async def create_guideline(
        self,
        agent_id: str,
        condition: str,
        action: str,
        tool_names: Sequence[str],
        enabled: bool,
    ) -> Guideline:
        guideline = Guideline(
            new_id("gdl"), agent_id, condition, action, tuple(tool_names), enabled, now_us()
        )

        async def job(conn: AsyncConnection) -> tuple[Guideline, list[Event]]:
            await self._require_agent(conn, agent_id)
            await conn.execute(
                schema.guidelines.insert().values(
                    id=guideline.id,
                    agent_id=agent_id,
                    condition=condition,
                    action=action,
                    tool_names_json=json.dumps(list(tool_names)),
                    enabled=enabled,
                    created_at_us=guideline.created_at_us,
                )
            )
            return guideline, []

        return await self.run_write(job)

    async def get_guideline(self, guideline_id: str) -> Guideline:
        return await self._one(schema.guidelines, "guideline", guideline_id, guideline_from_row)

    async def list_guidelines(self, size: int, token: str, agent_id: str = "") -> Page[Guideline]:
        table = schema.guidelines
        query = select(table)
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        return await self._page(
            query, table, size, token, {"agent_id": agent_id}, guideline_from_row
        )

    async def update_guideline(
        self,
        guideline_id: str,
        *,
        condition: str = _UNSET,
        action: str = _UNSET,
        tool_names: Sequence[str] = _UNSET,
        enabled: bool = _UNSET,
    ) -> Guideline:
        values: dict[str, Any] = {}
        for name, value in (("condition", condition), ("action", action), ("enabled", enabled)):
            if value is not _UNSET:
                values[name] = value
        if tool_names is not _UNSET:
            values["tool_names_json"] = json.dumps(list(tool_names))
        return await self._update(
            schema.guidelines, "guideline", guideline_id, values, guideline_from_row
        )

    async def delete_guideline(self, guideline_id: str) -> None:
        await self._delete(schema.guidelines, "guideline", guideline_id)

    async def agent_guidelines(self, agent_id: str) -> list[Guideline]:
        """The agent's enabled guidelines, oldest first (what a turn matches against)."""
        table = schema.guidelines
        async with self._db.reader.connect() as conn:
            rows = await conn.execute(
                select(table)
                .where(table.c.agent_id == agent_id, table.c.enabled.is_(True))
                .order_by(table.c.created_at_us, table.c.id)
            )
            return [guideline_from_row(r) for r in rows]

    # ------------------------------------------------------------------ canned responses

    async def create_canned_response(self, agent_id: str, text: str) -> CannedResponse:
        canned = CannedResponse(new_id("can"), agent_id, text, now_us())

        async def job(conn: AsyncConnection) -> tuple[CannedResponse, list[Event]]:
            await self._require_agent(conn, agent_id)
            await conn.execute(
                schema.canned_responses.insert().values(
                    id=canned.id, agent_id=agent_id, text=text, created_at_us=canned.created_at_us
                )
            )
            return canned, []

        return await self.run_write(job)

    async def get_canned_response(self, canned_response_id: str) -> CannedResponse:
        return await self._one(
            schema.canned_responses, "canned response", canned_response_id, canned_response_from_row
        )

    async def list_canned_responses(
        self, size: int, token: str, agent_id: str = ""
    ) -> Page[CannedResponse]:
        table = schema.canned_responses
        query = select(table)
        if agent_id:
            query = query.where(table.c.agent_id == agent_id)
        return await self._page(
            query, table, size, token, {"agent_id": agent_id}, canned_response_from_row
        )

    async def update_canned_response(self, canned_response_id: str, *, text: str) -> CannedResponse:
        return await self._update(
            schema.canned_responses,
            "canned response",
            canned_response_id,
            {"text": text},
            canned_response_from_row,
        )

    async def delete_canned_response(self, canned_response_id: str) -> None:
        await self._delete(schema.canned_responses, "canned response", canned_response_id)

    async def agent_canned_responses(self, agent_id: str) -> list[CannedResponse]:
        table = schema.canned_responses
        async with self._db.reader.connect() as conn:
            rows = await conn.execute(
                select(table)
                .where(table.c.agent_id == agent_id)
                .order_by(table.c.created_at_us, table.c.id)
            )
            return [canned_response_from_row(r) for r in rows]

    async def _require_agent(self, conn: AsyncConnection, agent_id: str) -> None:
        if not await conn.scalar(select(exists().where(schema.agents.c.id == agent_id))):
            raise NotFound("agent", agent_id)

    # ------------------------------------------------------------------ agent turns

    async def unanswered_customer_messages(self, since_us: int) -> list[Event]:
        """The newest customer message of each AUTO session, committed after `since_us`, whose
        turn never ended (no ready, error or cancelled status carries its correlation id): what
        a restarted engine picks up again."""
        events, sessions = schema.events, schema.sessions
        newest = (
            select(events.c.session_id, func.max(events.c.offset).label("offset"))
            .join(sessions, sessions.c.id == events.c.session_id)
            .where(
                sessions.c.mode == SessionMode.AUTO.value,
                events.c.kind == EventKind.MESSAGE.value,
                events.c.source == EventSource.CUSTOMER.value,
                events.c.created_at_us >= since_us,
            )
            .group_by(events.c.session_id)
            .subquery()
        )
        trigger = events.alias("trigger")
        ended = events.alias("ended")
        query = (
            select(trigger)
            .join(
                newest,
                and_(
                    trigger.c.session_id == newest.c.session_id,
                    trigger.c.offset == newest.c.offset,
                ),
            )
            .where(
                ~exists().where(
                    ended.c.session_id == trigger.c.session_id,
                    ended.c.offset > trigger.c.offset,
                    ended.c.correlation_id == trigger.c.correlation_id,
                    ended.c.kind == EventKind.STATUS.value,
                    ended.c.data_type.in_(("ready", "error", "cancelled")),
                ),
                # Written while humans answered (or before a handoff): context, not a turn owed.
                ~exists().where(
                    ended.c.session_id == trigger.c.session_id,
                    ended.c.offset > trigger.c.offset,
                    ended.c.kind == EventKind.CUSTOM.value,
                    ended.c.source == EventSource.SYSTEM.value,
                    ended.c.data_type == SESSION_MODE_CHANGED,
                ),
            )
        )
        async with self._db.reader.connect() as conn:
            return [event_from_row(row) for row in await conn.execute(query)]

    async def turn_snapshot(
        self, session_id: str, history_kinds: frozenset[EventKind], history_limit: int
    ) -> TurnSnapshot:
        """What a turn reads, on one connection: session, agent, enabled guidelines, canned
        responses and the latest `history_limit` events of the given kinds (oldest first)."""
        events = schema.events
        async with self._db.reader.connect() as conn:
            session = await self._session_in(conn, session_id)
            agent_row = (
                await conn.execute(
                    select(schema.agents).where(schema.agents.c.id == session.agent_id)
                )
            ).first()
            if agent_row is None:
                raise NotFound("agent", session.agent_id)
            guidelines = schema.guidelines
            guideline_rows = await conn.execute(
                select(guidelines)
                .where(guidelines.c.agent_id == session.agent_id, guidelines.c.enabled.is_(True))
                .order_by(guidelines.c.created_at_us, guidelines.c.id)
            )
            canned = schema.canned_responses
            canned_rows = await conn.execute(
                select(canned)
                .where(canned.c.agent_id == session.agent_id)
                .order_by(canned.c.created_at_us, canned.c.id)
            )
            history_rows = await conn.execute(
                select(events)
                .where(
                    events.c.session_id == session_id,
                    events.c.kind.in_(sorted(k.value for k in history_kinds)),
                )
                .order_by(events.c.offset.desc())
                .limit(history_limit)
            )
            return TurnSnapshot(
                session=session,
                agent=agent_from_row(agent_row),
                guidelines=[guideline_from_row(r) for r in guideline_rows],
                canned_responses=[canned_response_from_row(r) for r in canned_rows],
                history=[event_from_row(r) for r in reversed(history_rows.all())],
            )

    async def acquire_turn(
        self, session_id: str, owner: str, correlation_id: str, trigger_offset: int, ttl_s: float
    ) -> bool:
        """Takes (or renews) the session's turn lease for the customer message at
        `trigger_offset`. False while another owner holds an unexpired lease, or when a turn
        was already started for that message or a newer one (possibly on another replica)."""
        now = now_us()

        async def job(conn: AsyncConnection) -> tuple[bool, list[Event]]:
            await self._session_in(conn, session_id, lock=True)
            table = schema.session_turns
            holder = (
                await conn.execute(
                    select(table.c.owner, table.c.expires_at_us, table.c.last_trigger_offset).where(
                        table.c.session_id == session_id
                    )
                )
            ).first()
            if holder is not None:
                if holder.last_trigger_offset >= trigger_offset:
                    return False, []
                if holder.owner not in ("", owner) and holder.expires_at_us > now:
                    return False, []
            await conn.execute(delete(table).where(table.c.session_id == session_id))
            await conn.execute(
                table.insert().values(
                    session_id=session_id,
                    owner=owner,
                    correlation_id=correlation_id,
                    expires_at_us=now + int(ttl_s * 1_000_000),
                    last_trigger_offset=trigger_offset,
                )
            )
            return True, []

        return await self.run_write(job)

    async def release_turn(self, session_id: str, owner: str) -> None:
        """Frees the lease; the row stays to remember the newest trigger handled."""

        async def job(conn: AsyncConnection) -> tuple[None, list[Event]]:
            table = schema.session_turns
            await conn.execute(
                update(table)
                .where(table.c.session_id == session_id, table.c.owner == owner)
                .values(owner="", expires_at_us=0)
            )
            return None, []

        await self.run_write(job)

    async def append_turn_events(
        self,
        session_id: str,
        drafts: Sequence[EventDraft],
        guard: TurnGuard,
        *,
        hand_off: InTransaction | None = None,
    ) -> list[Event]:
        """Appends an agent turn's events if the turn still may speak (see TurnGuard), else
        raises TurnAborted and appends nothing. `hand_off` runs in the same transaction right
        after (the handoff a tool asked for)."""

        if hand_off is None:
            # The common case rides the group commit; the guard is checked in that transaction.
            return await self._appender.append(AppendRequest(session_id, list(drafts), guard))

        async def job(conn: AsyncConnection) -> tuple[list[Event], list[Event]]:
            result = await self.append_in(conn, session_id, drafts, guard)
            result += await hand_off(conn)
            return result, result

        return await self.run_write(job)
