"""Who is calling: the authenticated principal, carried through the call in a contextvar.

The auth interceptor sets it around each handler; code that records writes (the repository
building its append requests) reads it in the caller's context. The store's writer task runs
in another context, so it must never read it there.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar, Token
from dataclasses import dataclass

from baton_server.domain import Actor


class Role(enum.StrEnum):
    ADMIN = "admin"
    INTEGRATION = "integration"
    OPERATOR = "operator"
    CUSTOMER = "customer"
    # Backend services that serve the agent's tools (ToolWorkerService) and may do nothing else.
    TOOL_WORKER = "tool_worker"


# Roles an API key may have (customer principals come from tokens only).
KEY_ROLES = (Role.ADMIN, Role.INTEGRATION, Role.OPERATOR, Role.TOOL_WORKER)


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    # The API key used; for a customer token, the key that issued it.
    key_id: str
    # Customer tokens only.
    customer_id: str = ""
    # Operator keys bound to one operator: the only operator id they may act as.
    operator_id: str = ""

    @property
    def limit_key(self) -> str:
        """What rate and stream limits count against: each customer has their own budget."""
        if self.role is Role.CUSTOMER:
            return f"customer:{self.customer_id}"
        return f"key:{self.key_id}"

    def actor(self) -> Actor:
        return Actor(self.key_id, self.role.value, self.customer_id)


_current: ContextVar[Principal | None] = ContextVar("baton_principal", default=None)


def current_principal() -> Principal | None:
    return _current.get()


def customer_is_calling() -> bool:
    """Whether the running call comes with a customer token (customers get customer views)."""
    principal = _current.get()
    return principal is not None and principal.role is Role.CUSTOMER


def current_actor() -> Actor | None:
    principal = _current.get()
    return principal.actor() if principal is not None else None


def set_principal(principal: Principal | None) -> Token[Principal | None]:
    """Sets the principal for the running call; returns a token for `reset_principal`."""
    return _current.set(principal)


def reset_principal(token: Token[Principal | None]) -> None:
    _current.reset(token)
