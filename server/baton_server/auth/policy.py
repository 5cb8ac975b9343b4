"""Authorization, decided here and only here: which role may call which RPC, and per-resource
checks for the roles that are limited to some resources.

`POLICY` maps each full method name to its Rule. A method missing from it is admin-only, so a
new RPC is closed until someone decides who may call it. Admin keys may call everything.
Checks run after the request is decoded and before the servicer sees it; they may narrow the
request (ListSessions for a customer is filtered to that customer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import Message

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton_server.auth.principal import Principal, Role
from baton_server.errors import InvalidArgument, NotFound, PermissionDenied
from baton_server.store import Repository

# A per-resource check: raises PermissionDenied, or returns (possibly after narrowing the request).
# Each check is written for the request type of the RPCs it guards; the table pairs them by method
# name, which the type system cannot follow, so the request is Any here.
Check = Callable[[Principal, Any, Repository], Awaitable[None]]


class _SessionScoped(Protocol):
    """A request about one session (GetSession, ListEvents, CreateEvent)."""

    @property
    def session_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[Role]
    # Extra checks for some of those roles (roles without one may use the RPC on anything).
    checks: Mapping[Role, Check] = field(default_factory=dict)


# ---------------------------------------------------------------- per-resource checks


def _denied(principal: Principal, what: str) -> PermissionDenied:
    return PermissionDenied(
        f"a {principal.role.value} credential may not {what}",
        metadata={"role": principal.role.value},
    )


async def _own_session(
    principal: Principal, request: _SessionScoped, repository: Repository
) -> None:
    # A missing session answers like someone else's: a token must not probe which ids exist.
    try:
        session = await repository.get_session(request.session_id)
    except NotFound:
        session = None
    if session is None or session.customer_id != principal.customer_id:
        raise _denied(principal, f"access session {request.session_id!r}: not this customer's")


async def _create_own_session(
    principal: Principal, request: rr.CreateSessionRequest, _: Repository
) -> None:
    customer_id = request.session.customer_id
    if customer_id and customer_id != principal.customer_id:
        raise _denied(principal, "create sessions for another customer")
    # Metadata is the integration's (CRM notes, routing) and the mode is staff's to set.
    if request.session.metadata or request.session.mode:
        raise _denied(principal, "set a session's metadata or mode")
    request.session.customer_id = principal.customer_id


async def _list_own_sessions(
    principal: Principal, request: rr.ListSessionsRequest, _: Repository
) -> None:
    if request.customer_id and request.customer_id != principal.customer_id:
        raise _denied(principal, "list another customer's sessions")
    request.customer_id = principal.customer_id


def _sources(*allowed: pb.EventSource.ValueType) -> str:
    return ", ".join(pb.EventSource.Name(s) for s in allowed)


_HUMAN_SOURCES = (pb.EVENT_SOURCE_HUMAN_AGENT, pb.EVENT_SOURCE_HUMAN_AGENT_ON_BEHALF_OF_AI_AGENT)


_MESSAGE_ONLY = f"post events of kind other than {pb.EventKind.Name(pb.EVENT_KIND_MESSAGE)}"


async def _customer_event(
    principal: Principal, request: rr.CreateEventRequest, repository: Repository
) -> None:
    """Customers post messages, as the customer, and nothing else: tool results, statuses and
    custom events are written by the server or by staff, and a model must never read a
    customer's words as any of those. Who wrote the message is the server's to say (the actor),
    so a participant the customer names is dropped."""
    if request.source != pb.EVENT_SOURCE_CUSTOMER:
        only = _sources(pb.EVENT_SOURCE_CUSTOMER)
        raise _denied(principal, f"post events with source other than {only}")
    if request.kind != pb.EVENT_KIND_MESSAGE:
        raise _denied(principal, _MESSAGE_ONLY)
    await _own_session(principal, request, repository)
    if request.WhichOneof("data") == "message":
        request.message.ClearField("participant")


async def _operator_event(
    principal: Principal, request: rr.CreateEventRequest, _: Repository
) -> None:
    """Operators post messages as a human agent (or on behalf of the AI agent), always as a
    named operator, so the handoff's holder check applies to every one of their writes. A key
    bound to an operator writes as that operator: the server fills the id in."""
    if request.source not in _HUMAN_SOURCES:
        raise _denied(principal, f"post events with source other than {_sources(*_HUMAN_SOURCES)}")
    if request.kind != pb.EVENT_KIND_MESSAGE:
        raise _denied(principal, _MESSAGE_ONLY)
    if request.WhichOneof("data") != "message":
        return  # the servicer names the missing message
    participant = request.message.participant
    _act_as(principal, participant.id, "message.participant.id")
    if principal.operator_id:
        participant.id = principal.operator_id
    elif not participant.id.strip():
        raise InvalidArgument.single(
            "message.participant.id",
            "required for operator keys: name the operator writing (or use a key made with "
            "`baton keys create --role operator --operator-id ...`, which fills it in)",
        )


def _act_as(principal: Principal, operator_id: str, field: str) -> None:
    """A key bound to an operator acts only as that operator (an empty id is left to the
    servicer: required fields are its business)."""
    if principal.operator_id and operator_id and operator_id != principal.operator_id:
        raise PermissionDenied(
            f"this key acts for operator {principal.operator_id!r}, not {operator_id!r} ({field})",
            metadata={"operator_id": principal.operator_id, "field": field},
        )


def _as_operator(field: str, *, required: bool) -> Check:
    """A check that the operator named at `field` (a dotted path) is the key's operator. A key
    bound to an operator acts as it whether or not the request names it (the server fills it
    in); an unbound operator key must name the operator when `required` (writes)."""
    *path, leaf = field.split(".")

    async def check(principal: Principal, request: Message, _: Repository) -> None:
        holder: object = request
        for part in path:
            holder = getattr(holder, part)
        _act_as(principal, getattr(holder, leaf), field)
        if principal.operator_id and required:
            setattr(holder, leaf, principal.operator_id)
        elif required and not getattr(holder, leaf).strip():
            raise InvalidArgument.single(
                field, "required for operator keys: name the operator acting"
            )

    return check


# Where each operator control names the operator acting.
_OPERATOR_FIELDS = {
    "ClaimHandoff": "operator.id",
    "RespondToOffer": "operator.id",
    "ReleaseHandoff": "operator_id",
    "TransferHandoff": "from_operator_id",
    "WatchHandoffs": "operator.id",
}


# ---------------------------------------------------------------- the table

ADMIN, INTEGRATION, OPERATOR, CUSTOMER = Role.ADMIN, Role.INTEGRATION, Role.OPERATOR, Role.CUSTOMER


def _service(service: str, methods: Mapping[str, Rule]) -> dict[str, Rule]:
    return {f"/baton.v1.{service}/{name}": rule for name, rule in methods.items()}


def _roles(*roles: Role, checks: Mapping[Role, Check] | None = None) -> Rule:
    return Rule(frozenset(roles), checks or {})


_BACKEND = _roles(INTEGRATION)

POLICY: dict[str, Rule] = {
    **_service(
        "AgentService",
        {
            m: _BACKEND
            for m in ("CreateAgent", "GetAgent", "ListAgents", "UpdateAgent", "DeleteAgent")
        },
    ),
    **_service(
        "CustomerService",
        {
            m: _BACKEND
            for m in (
                "CreateCustomer",
                "GetCustomer",
                "ListCustomers",
                "UpdateCustomer",
                "DeleteCustomer",
            )
        },
    ),
    **_service(
        "SessionService",
        {
            "CreateSession": _roles(INTEGRATION, CUSTOMER, checks={CUSTOMER: _create_own_session}),
            "GetSession": _roles(INTEGRATION, OPERATOR, CUSTOMER, checks={CUSTOMER: _own_session}),
            "ListSessions": _roles(
                INTEGRATION, OPERATOR, CUSTOMER, checks={CUSTOMER: _list_own_sessions}
            ),
            "UpdateSession": _BACKEND,
            "DeleteSession": _BACKEND,
        },
    ),
    **_service(
        "EventService",
        {
            "CreateEvent": _roles(
                INTEGRATION,
                OPERATOR,
                CUSTOMER,
                checks={OPERATOR: _operator_event, CUSTOMER: _customer_event},
            ),
            "ListEvents": _roles(INTEGRATION, OPERATOR, CUSTOMER, checks={CUSTOMER: _own_session}),
        },
    ),
    **_service(
        "GuidelineService",
        {
            m: _BACKEND
            for m in (
                "CreateGuideline",
                "GetGuideline",
                "ListGuidelines",
                "UpdateGuideline",
                "DeleteGuideline",
            )
        },
    ),
    **_service(
        "CannedResponseService",
        {
            m: _BACKEND
            for m in (
                "CreateCannedResponse",
                "GetCannedResponse",
                "ListCannedResponses",
                "UpdateCannedResponse",
                "DeleteCannedResponse",
            )
        },
    ),
    **_service("ToolService", {"ListTools": _BACKEND}),
    # A tool worker's key serves tools and nothing else.
    **_service("ToolWorkerService", {"ServeTools": _roles(Role.TOOL_WORKER)}),
    **_service("AuthService", {"IssueCustomerToken": _BACKEND}),
    # Customers get none of the handoff API; operators act only as themselves when their key
    # is bound to an operator id.
    **_service(
        "HandoffService",
        {"RequestHandoff": _BACKEND, "OfferHandoff": _BACKEND}
        | {
            m: _roles(INTEGRATION, OPERATOR)
            for m in ("GetHandoff", "ListHandoffs", "GetHandoffStats")
        }
        | {
            m: _roles(
                INTEGRATION,
                OPERATOR,
                checks={OPERATOR: _as_operator(field, required=m != "WatchHandoffs")},
            )
            for m, field in _OPERATOR_FIELDS.items()
        },
    ),
}

ADMIN_ONLY = Rule(frozenset())


class Authorizer:
    """Applies POLICY (or another table, in tests) to a principal and a request."""

    def __init__(self, repository: Repository, policy: Mapping[str, Rule] = POLICY) -> None:
        self._repo = repository
        self._policy = policy

    def rule(self, method: str) -> Rule:
        return self._policy.get(method, ADMIN_ONLY)

    def check_role(self, principal: Principal, method: str) -> Rule:
        """The method's rule if the principal's role may call it at all, else PermissionDenied."""
        rule = self.rule(method)
        if principal.role is not ADMIN and principal.role not in rule.roles:
            allowed = ", ".join(sorted(r.value for r in {ADMIN, *rule.roles}))
            raise PermissionDenied(
                f"a {principal.role.value} credential may not call {method.lstrip('/')} "
                f"(allowed: {allowed})",
                metadata={"role": principal.role.value, "method": method.lstrip("/")},
            )
        return rule

    async def check_request(self, principal: Principal, rule: Rule, request: Message) -> None:
        check = rule.checks.get(principal.role)
        if check is not None:
            await check(principal, request, self._repo)
