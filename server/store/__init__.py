"""Repository layer: SQLAlchemy async over SQLite (default) or PostgreSQL."""

from baton_server.store.database import Database, open_database
from baton_server.store.repository import Repository

__all__ = ["Database", "Repository", "open_database"]
