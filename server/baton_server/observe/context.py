"""What the running RPC is about (method, session, handoff, caller), for logs and the access log.

The outermost interceptor binds a fresh `CallInfo` to each call's context; code deeper in the
call fills in what it learns. Tasks started during the call (an engine turn) inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(slots=True)
class CallInfo:
    method: str = ""
    session_id: str = ""
    handoff_id: str = ""
    # The API key id, or "customer:<id>" for a customer token; never a secret.
    caller: str = ""


_current: ContextVar[CallInfo | None] = ContextVar("baton_call", default=None)


def current_call() -> CallInfo | None:
    return _current.get()


def bind_call(info: CallInfo) -> Token[CallInfo | None]:
    return _current.set(info)


def unbind_call(token: Token[CallInfo | None]) -> None:
    _current.reset(token)


def note_ids(session_id: str = "", handoff_id: str = "") -> None:
    """Records the session and handoff the running call is about (no-op outside a bound call)."""
    info = _current.get()
    if info is not None:
        if session_id:
            info.session_id = session_id
        if handoff_id:
            info.handoff_id = handoff_id


def note_caller(caller: str) -> None:
    info = _current.get()
    if info is not None:
        info.caller = caller
