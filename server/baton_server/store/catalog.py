"""The catalog: agents, customers, guidelines and canned responses (plain rows; no events)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.domain import (
    DEFAULT_POLICY,
    Agent,
    AgentChanges,
    CannedResponse,
    Customer,
    CustomerChanges,
    Event,
    Guideline,
    GuidelineChanges,
    HandoffPolicy,
    Page,
    now_us,
)
from baton_server.errors import NotFound
from baton_server.store import schema
from baton_server.store.base import RowsBase
from baton_server.store.ids import new_id
from baton_server.store.rows import (
    agent_from_row,
    canned_response_from_row,
    customer_from_row,
    guideline_from_row,
)


class CatalogRows(RowsBase):
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

    async def update_agent(self, agent_id: str, changes: AgentChanges) -> Agent:
        values: dict[str, object] = {}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.description is not None:
            values["description"] = changes.description
        if changes.handoff_policy is not None:
            values["handoff_policy_json"] = changes.handoff_policy.to_json()
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

    async def update_customer(self, customer_id: str, changes: CustomerChanges) -> Customer:
        values: dict[str, object] = {}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.metadata is not None:
            values["metadata_json"] = json.dumps(changes.metadata)
        return await self._update(
            schema.customers, "customer", customer_id, values, customer_from_row
        )

    async def delete_customer(self, customer_id: str) -> None:
        await self._delete(schema.customers, "customer", customer_id, schema.sessions.c.customer_id)

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

    async def update_guideline(self, guideline_id: str, changes: GuidelineChanges) -> Guideline:
        values: dict[str, object] = {}
        for name, value in (
            ("condition", changes.condition),
            ("action", changes.action),
            ("enabled", changes.enabled),
        ):
            if value is not None:
                values[name] = value
        if changes.tool_names is not None:
            values["tool_names_json"] = json.dumps(list(changes.tool_names))
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
