"""Sessions: create, read, list, update and delete, as the caller may see and do them.

Customers see a session without its title and metadata (staff's); a mode change goes through
the handoff rules (`on_mode_change`, injected: MANUAL opens a handoff, AUTO ends one), in the
transaction that changes the mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from baton_server.auth.principal import Principal, Role
from baton_server.domain import Page, Session, SessionMode
from baton_server.service.visibility import customer_session_view
from baton_server.store import Repository
from baton_server.store.repository import ModeChangeHook


@dataclass(frozen=True, slots=True)
class SessionChanges:
    """A session's fields to change (None: leave as is)."""

    title: str | None = None
    metadata: dict[str, str] | None = None
    mode: SessionMode | None = None


class Sessions:
    def __init__(self, repository: Repository, on_mode_change: ModeChangeHook) -> None:
        self._repo = repository
        self._on_mode_change = on_mode_change

    @staticmethod
    def _shown(caller: Principal | None, session: Session) -> Session:
        if caller is not None and caller.role is Role.CUSTOMER:
            return customer_session_view(session)
        return session

    async def create(
        self,
        caller: Principal | None,
        agent_id: str,
        customer_id: str,
        title: str,
        mode: SessionMode,
        metadata: dict[str, str],
    ) -> Session:
        actor = caller.actor() if caller is not None else None
        session = await self._repo.create_session(
            agent_id, customer_id, title, mode, metadata, actor=actor
        )
        return self._shown(caller, session)

    async def get(self, caller: Principal | None, session_id: str) -> Session:
        return self._shown(caller, await self._repo.get_session(session_id))

    async def list(
        self,
        caller: Principal | None,
        page_size: int,
        page_token: str,
        *,
        agent_id: str = "",
        customer_id: str = "",
        mode: SessionMode | None = None,
    ) -> Page[Session]:
        page = await self._repo.list_sessions(
            page_size, page_token, agent_id=agent_id, customer_id=customer_id, mode=mode
        )
        return Page([self._shown(caller, s) for s in page.items], page.next_page_token)

    async def update(
        self,
        caller: Principal | None,
        session_id: str,
        changes: SessionChanges,
        expected_epoch: int | None = None,
    ) -> Session:
        actor = caller.actor() if caller is not None else None
        session = await self._repo.update_session(
            session_id,
            title=changes.title,
            metadata=changes.metadata,
            mode=changes.mode,
            expected_epoch=expected_epoch,
            on_mode_change=self._on_mode_change,
            actor=actor,
        )
        return self._shown(caller, session)

    async def delete(self, caller: Principal | None, session_id: str) -> None:
        await self._repo.delete_session(session_id)
