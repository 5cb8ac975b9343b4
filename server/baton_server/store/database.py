"""Engine creation, SQLite tuning, Alembic migrations, and the probes readiness and metrics use."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from baton_server.store.pg_notify import asyncpg_dsn

MIGRATIONS_DIR = pathlib.Path(__file__).with_name("migrations")
# Arbitrary, fixed key of the PostgreSQL advisory lock held while migrating.
MIGRATION_LOCK = 0x62A70E


@dataclass(frozen=True, slots=True)
class Database:
    """An engine for reads and one whose transactions take the write lock up front.

    On SQLite a deferred BEGIN that later writes can fail with "database is locked" (the lock
    upgrade is not covered by busy_timeout), so writers BEGIN IMMEDIATE. On PostgreSQL both are
    the same engine.
    """

    reader: AsyncEngine
    writer: AsyncEngine
    is_sqlite: bool
    # SQLite in a file: its path and `synchronous` setting, for the plain sqlite3 event log
    # (sqlite_log.py). None for PostgreSQL and in-memory SQLite.
    sqlite_file: str | None = None
    sqlite_synchronous: str = "FULL"
    # PostgreSQL: the database as an asyncpg DSN, for the direct append path (pg_log.py).
    postgres_dsn: str | None = None

    async def dispose(self) -> None:
        await self.reader.dispose()

    async def ping(self) -> None:
        """Raises unless the database answers a query now (readiness)."""
        async with self.reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def pool_usage(self) -> tuple[int, int, int]:
        """(connections open, connections in use, pool size) of the SQLAlchemy pool."""
        pool = self.reader.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return (0, 0, 0)
        in_use = pool.checkedout()
        return (in_use + pool.checkedin(), in_use, pool.size())


def lost_connection(error: BaseException) -> bool:
    """Whether a driver error says the connection is gone or could not be made (not that a
    statement was refused, nor a misuse of a connection)."""
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)  # a pooled connection the server dropped
    return isinstance(
        error,
        ConnectionError | asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError,
    )


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached (rather than refused a statement)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        return error.orig is not None and lost_connection(error.orig)
    return lost_connection(error)


class SchemaBehind(RuntimeError):
    """The database's schema is not the one this server's code needs (and it may not migrate)."""


def _install_sqlite_hooks(engine: AsyncEngine, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN, instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _ensure_parent_folder(path: str) -> None:
    pathlib.Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def create_engines(url: str, *, sqlite_synchronous: str = "FULL") -> Database:
    """The engines, without touching the schema (see open_database)."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        if parsed.database and parsed.database != ":memory:":
            _ensure_parent_folder(parsed.database)
        engine = create_async_engine(url, pool_size=8, max_overflow=8)
        _install_sqlite_hooks(engine, sqlite_synchronous)
        writer = engine.execution_options(sqlite_begin="IMMEDIATE")
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        writer = engine
    sqlite_file = (
        parsed.database if is_sqlite and parsed.database not in (None, "", ":memory:") else None
    )
    return Database(
        reader=engine,
        writer=writer,
        is_sqlite=is_sqlite,
        sqlite_file=sqlite_file,
        sqlite_synchronous=sqlite_synchronous,
        postgres_dsn=None if is_sqlite else asyncpg_dsn(url),
    )


async def open_database(
    url: str, *, sqlite_synchronous: str = "FULL", migrate_schema: bool = True
) -> Database:
    """Creates the engines and brings the schema to the latest migration (`migrate_schema`
    False: checks it is there instead, raising SchemaBehind if not)."""
    database = create_engines(url, sqlite_synchronous=sqlite_synchronous)
    try:
        if migrate_schema:
            await migrate(database)
            return database
        current, head = await schema_revisions(database)
    except BaseException:
        await database.dispose()
        raise
    if current != head:
        await database.dispose()
        raise SchemaBehind(
            f"the database schema is at revision {current or 'none (empty database)'}, "
            f"this server needs {head}: run `baton migrate` first (or serve without "
            "--no-migrate)"
        )
    return database


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


async def schema_revisions(database: Database) -> tuple[str | None, str]:
    """(the database's current revision or None, the code's head revision)."""

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.reader.connect() as conn:
        return await conn.run_sync(current), head_revision()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


async def migrate(database: Database) -> None:
    def upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.writer.begin() as conn:
        if not database.is_sqlite:
            # Replicas starting together: one migrates, the others wait and find it done.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(upgrade)
