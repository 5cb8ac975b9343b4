"""SQL text shared by the store's plain-driver paths (sqlite_log.py, pg_log.py)."""

from __future__ import annotations

from collections.abc import Sequence

from baton_server.domain import EventKind, EventSource
from baton_server.store import schema
from baton_server.store.append_plan import HUMAN_SOURCES

# Every column of an event row, in the order the inserts bind them.
INSERT_COLUMNS = tuple(c.name for c in schema.events.columns)
MESSAGE_KIND = EventKind.MESSAGE.value
# Whose newest message the turn guards look at.
WATCHED_SOURCES = (EventSource.CUSTOMER.value, *(s.value for s in HUMAN_SOURCES))


def quoted(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def numbered_insert(table: str, columns: Sequence[str]) -> str:
    """INSERT with PostgreSQL's numbered placeholders ($1, $2, ...)."""
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({quoted(columns)}) VALUES ({marks})"


def qmark_insert(table: str, columns: Sequence[str]) -> str:
    """INSERT with sqlite3's `?` placeholders."""
    return f"INSERT INTO {table} ({quoted(columns)}) VALUES ({', '.join('?' for _ in columns)})"
