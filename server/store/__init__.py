"""Repository layer: SQLAlchemy async over SQLite (default) or PostgreSQL."""

from baton_server.store.repository import Repository
from baton_server.store.database import Database, open_database

__all__ = ["Database", "Repository", "open_database"]
