"""The catalog an agent is made of: agents, customers, guidelines, canned responses, tools.

Typed, transport-free operations over the store; inputs are already validated field by field
by the caller's transport (required names, ids, limits), the rules that need the server's state
(a guideline's tools must be loaded) are checked here.
"""

from __future__ import annotations

from collections.abc import Sequence

from baton_server.domain import (
    Agent,
    AgentChanges,
    CannedResponse,
    Customer,
    CustomerChanges,
    Guideline,
    GuidelineChanges,
    HandoffPolicy,
    Page,
)
from baton_server.errors import InvalidArgument
from baton_server.store import Repository
from baton_server.tools import Tool, ToolRegistry
from baton_server.tools.workers import WorkerInfo


class Catalog:
    def __init__(self, repository: Repository, tools: ToolRegistry) -> None:
        self._repo = repository
        self._tools = tools

    # ------------------------------------------------------------------ agents

    async def create_agent(self, name: str, description: str, policy: HandoffPolicy) -> Agent:
        return await self._repo.create_agent(name, description, policy)

    async def get_agent(self, agent_id: str) -> Agent:
        return await self._repo.get_agent(agent_id)

    async def list_agents(self, page_size: int, page_token: str) -> Page[Agent]:
        return await self._repo.list_agents(page_size, page_token)

    async def update_agent(self, agent_id: str, changes: AgentChanges) -> Agent:
        return await self._repo.update_agent(agent_id, changes)

    async def delete_agent(self, agent_id: str) -> None:
        await self._repo.delete_agent(agent_id)

    # ------------------------------------------------------------------ customers

    async def create_customer(self, name: str, metadata: dict[str, str]) -> Customer:
        return await self._repo.create_customer(name, metadata)

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._repo.get_customer(customer_id)

    async def list_customers(self, page_size: int, page_token: str) -> Page[Customer]:
        return await self._repo.list_customers(page_size, page_token)

    async def update_customer(self, customer_id: str, changes: CustomerChanges) -> Customer:
        return await self._repo.update_customer(customer_id, changes)

    async def delete_customer(self, customer_id: str) -> None:
        await self._repo.delete_customer(customer_id)

    # ------------------------------------------------------------------ guidelines

    async def check_tool_names(self, names: Sequence[str], field: str) -> list[str]:
        """The names, if every one is a loaded tool; else INVALID_ARGUMENT naming the first
        unknown one (`field[i]`) and the tools there are."""
        await self._tools.resolve(names)
        for i, name in enumerate(names):
            if self._tools.get(name) is None:
                known = ", ".join(t.name for t in self._tools.all()) or "none"
                raise InvalidArgument.single(
                    f"{field}[{i}]",
                    f"unknown tool {name!r}: no tool of that name is loaded into the server or "
                    f"served by a connected tool worker (start the worker first); known tools: "
                    f"{known}",
                )
        return list(names)

    async def create_guideline(
        self, agent_id: str, condition: str, action: str, tool_names: Sequence[str], enabled: bool
    ) -> Guideline:
        names = await self.check_tool_names(tool_names, "guideline.tool_names")
        return await self._repo.create_guideline(agent_id, condition, action, names, enabled)

    async def get_guideline(self, guideline_id: str) -> Guideline:
        return await self._repo.get_guideline(guideline_id)

    async def list_guidelines(
        self, page_size: int, page_token: str, agent_id: str = ""
    ) -> Page[Guideline]:
        return await self._repo.list_guidelines(page_size, page_token, agent_id)

    async def update_guideline(self, guideline_id: str, changes: GuidelineChanges) -> Guideline:
        if changes.tool_names is not None:
            await self.check_tool_names(changes.tool_names, "guideline.tool_names")
        return await self._repo.update_guideline(guideline_id, changes)

    async def delete_guideline(self, guideline_id: str) -> None:
        await self._repo.delete_guideline(guideline_id)

    # ------------------------------------------------------------------ canned responses

    async def create_canned_response(self, agent_id: str, text: str) -> CannedResponse:
        return await self._repo.create_canned_response(agent_id, text)

    async def get_canned_response(self, canned_response_id: str) -> CannedResponse:
        return await self._repo.get_canned_response(canned_response_id)

    async def list_canned_responses(
        self, page_size: int, page_token: str, agent_id: str = ""
    ) -> Page[CannedResponse]:
        return await self._repo.list_canned_responses(page_size, page_token, agent_id)

    async def update_canned_response(self, canned_response_id: str, text: str) -> CannedResponse:
        return await self._repo.update_canned_response(canned_response_id, text=text)

    async def delete_canned_response(self, canned_response_id: str) -> None:
        await self._repo.delete_canned_response(canned_response_id)

    # ------------------------------------------------------------------ tools

    def tools(self) -> list[Tool]:
        return list(self._tools.all())

    def tool_workers(self, name: str) -> list[WorkerInfo]:
        """The connected workers that serve a tool (none for a Python tool)."""
        return self._tools.workers.workers_of(name)
