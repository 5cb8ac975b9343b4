"""Which errors mean "the database cannot be reached" (UNAVAILABLE, retry) and which do not
(a bug, or a refused statement: never disguised as an outage)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from baton_server.store.database import is_unreachable


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.InterfaceError("connection is closed"),
        OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
    ],
)
def test_lost_connections_are_unreachable(error: BaseException) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        OSError("a file the handler could not open"),
        TimeoutError(),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.UniqueViolationError("duplicate key"),
        IntegrityError("INSERT", {}, asyncpg.UniqueViolationError("duplicate key")),
        ValueError("a bug"),
    ],
)
def test_other_errors_are_not(error: BaseException) -> None:
    assert not is_unreachable(error)
