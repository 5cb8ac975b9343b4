"""Repository layer: SQLAlchemy async over SQLite (default) or PostgreSQL.

The only room that speaks SQL. Other rooms hold a `Transaction` only as an opaque handle: they
receive one in a write job (`Repository.run_write`) and hand it back to the store's functions.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from baton_server.store.append_plan import EventEncoding
from baton_server.store.database import Database, open_database
from baton_server.store.repository import Repository

# A write job's open transaction (opaque outside the store).
Transaction = AsyncConnection

__all__ = ["Database", "EventEncoding", "Repository", "Transaction", "open_database"]
