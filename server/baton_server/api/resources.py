"""AgentService, CustomerService, SessionService servicers: validate, map, call the repository."""

from __future__ import annotations

from baton_server.api.grpc_types import Context
from baton_server.api.handoff_mapping import policy_from_proto
from baton_server.api.mapping import (
    MODE_FROM_PROTO,
    agent_to_proto,
    check_metadata,
    check_update_mask,
    customer_to_proto,
    mode_from_proto,
    require_id,
    require_name,
    session_to_proto,
)
from baton_server.api.protos import rr, svc_grpc
from baton_server.auth.principal import current_principal
from baton_server.config import InputLimits
from baton_server.domain import AgentChanges, CustomerChanges, SessionMode
from baton_server.errors import InvalidArgument
from baton_server.service.catalog import Catalog
from baton_server.service.sessions import SessionChanges, Sessions


class AgentServicer(svc_grpc.AgentServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def CreateAgent(
        self, request: rr.CreateAgentRequest, context: Context
    ) -> rr.CreateAgentResponse:
        name = require_name(request.agent.name, "agent.name")
        agent = await self._catalog.create_agent(
            name, request.agent.description, policy_from_proto(request.agent.handoff_policy)
        )
        return rr.CreateAgentResponse(agent=agent_to_proto(agent))

    async def GetAgent(self, request: rr.GetAgentRequest, context: Context) -> rr.GetAgentResponse:
        agent = await self._catalog.get_agent(require_id(request.agent_id, "agent_id"))
        return rr.GetAgentResponse(agent=agent_to_proto(agent))

    async def ListAgents(
        self, request: rr.ListAgentsRequest, context: Context
    ) -> rr.ListAgentsResponse:
        page = await self._catalog.list_agents(request.page_size, request.page_token)
        return rr.ListAgentsResponse(
            agents=[agent_to_proto(a) for a in page.items], next_page_token=page.next_page_token
        )

    async def UpdateAgent(
        self, request: rr.UpdateAgentRequest, context: Context
    ) -> rr.UpdateAgentResponse:
        agent_id = require_id(request.agent_id, "agent_id")
        paths = check_update_mask(
            list(request.update_mask.paths), ("name", "description", "handoff_policy")
        )
        draft = request.agent
        changes = AgentChanges(
            name=require_name(draft.name, "agent.name") if "name" in paths else None,
            description=draft.description if "description" in paths else None,
            handoff_policy=(
                policy_from_proto(draft.handoff_policy) if "handoff_policy" in paths else None
            ),
        )
        agent = await self._catalog.update_agent(agent_id, changes)
        return rr.UpdateAgentResponse(agent=agent_to_proto(agent))

    async def DeleteAgent(
        self, request: rr.DeleteAgentRequest, context: Context
    ) -> rr.DeleteAgentResponse:
        await self._catalog.delete_agent(require_id(request.agent_id, "agent_id"))
        return rr.DeleteAgentResponse()


class CustomerServicer(svc_grpc.CustomerServiceServicer):
    def __init__(self, catalog: Catalog, limits: InputLimits) -> None:
        self._catalog = catalog
        self._limits = limits

    async def CreateCustomer(
        self, request: rr.CreateCustomerRequest, context: Context
    ) -> rr.CreateCustomerResponse:
        name = require_name(request.customer.name, "customer.name")
        metadata = check_metadata(request.customer.metadata, "customer.metadata", self._limits)
        customer = await self._catalog.create_customer(name, metadata)
        return rr.CreateCustomerResponse(customer=customer_to_proto(customer))

    async def GetCustomer(
        self, request: rr.GetCustomerRequest, context: Context
    ) -> rr.GetCustomerResponse:
        customer = await self._catalog.get_customer(require_id(request.customer_id, "customer_id"))
        return rr.GetCustomerResponse(customer=customer_to_proto(customer))

    async def ListCustomers(
        self, request: rr.ListCustomersRequest, context: Context
    ) -> rr.ListCustomersResponse:
        page = await self._catalog.list_customers(request.page_size, request.page_token)
        return rr.ListCustomersResponse(
            customers=[customer_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateCustomer(
        self, request: rr.UpdateCustomerRequest, context: Context
    ) -> rr.UpdateCustomerResponse:
        customer_id = require_id(request.customer_id, "customer_id")
        paths = check_update_mask(list(request.update_mask.paths), ("name", "metadata"))
        draft = request.customer
        changes = CustomerChanges(
            name=require_name(draft.name, "customer.name") if "name" in paths else None,
            metadata=(
                check_metadata(draft.metadata, "customer.metadata", self._limits)
                if "metadata" in paths
                else None
            ),
        )
        customer = await self._catalog.update_customer(customer_id, changes)
        return rr.UpdateCustomerResponse(customer=customer_to_proto(customer))

    async def DeleteCustomer(
        self, request: rr.DeleteCustomerRequest, context: Context
    ) -> rr.DeleteCustomerResponse:
        await self._catalog.delete_customer(require_id(request.customer_id, "customer_id"))
        return rr.DeleteCustomerResponse()


class SessionServicer(svc_grpc.SessionServiceServicer):
    def __init__(self, sessions: Sessions, limits: InputLimits) -> None:
        self._sessions = sessions
        self._limits = limits

    async def CreateSession(
        self, request: rr.CreateSessionRequest, context: Context
    ) -> rr.CreateSessionResponse:
        draft = request.session
        agent_id = require_id(draft.agent_id, "session.agent_id")
        customer_id = require_id(draft.customer_id, "session.customer_id")
        mode = mode_from_proto(draft.mode, "session.mode", allow_unspecified=True)
        metadata = check_metadata(draft.metadata, "session.metadata", self._limits)
        session = await self._sessions.create(
            current_principal(),
            agent_id,
            customer_id,
            draft.title,
            mode or SessionMode.AUTO,
            metadata,
        )
        return rr.CreateSessionResponse(session=session_to_proto(session))

    async def GetSession(
        self, request: rr.GetSessionRequest, context: Context
    ) -> rr.GetSessionResponse:
        session = await self._sessions.get(
            current_principal(), require_id(request.session_id, "session_id")
        )
        return rr.GetSessionResponse(session=session_to_proto(session))

    async def ListSessions(
        self, request: rr.ListSessionsRequest, context: Context
    ) -> rr.ListSessionsResponse:
        if request.mode and request.mode not in MODE_FROM_PROTO:
            raise InvalidArgument.single("mode", f"unknown session mode {request.mode}")
        page = await self._sessions.list(
            current_principal(),
            request.page_size,
            request.page_token,
            agent_id=request.agent_id,
            customer_id=request.customer_id,
            mode=mode_from_proto(request.mode, "mode", allow_unspecified=True),
        )
        return rr.ListSessionsResponse(
            sessions=[session_to_proto(s) for s in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateSession(
        self, request: rr.UpdateSessionRequest, context: Context
    ) -> rr.UpdateSessionResponse:
        session_id = require_id(request.session_id, "session_id")
        paths = check_update_mask(list(request.update_mask.paths), ("mode", "title", "metadata"))
        draft = request.session
        changes = SessionChanges(
            title=draft.title if "title" in paths else None,
            metadata=(
                check_metadata(draft.metadata, "session.metadata", self._limits)
                if "metadata" in paths
                else None
            ),
            mode=(
                mode_from_proto(draft.mode, "session.mode", allow_unspecified=False)
                if "mode" in paths
                else None
            ),
        )
        expected = request.expected_epoch if request.HasField("expected_epoch") else None
        session = await self._sessions.update(current_principal(), session_id, changes, expected)
        return rr.UpdateSessionResponse(session=session_to_proto(session))

    async def DeleteSession(
        self, request: rr.DeleteSessionRequest, context: Context
    ) -> rr.DeleteSessionResponse:
        await self._sessions.delete(
            current_principal(), require_id(request.session_id, "session_id")
        )
        return rr.DeleteSessionResponse()
