"""API key rows: what `auth/keys.py` keeps (ids, roles, secret digests), and nothing about what
they mean (roles are plain strings here; the auth room gives them meaning)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select, update

from baton_server.store import schema
from baton_server.store.database import Database


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    name: str
    role: str
    secret_sha256: str
    created_at_us: int
    revoked_at_us: int | None
    operator_id: str


class ApiKeyRows:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(self, key: StoredKey) -> None:
        async with self._db.writer.begin() as conn:
            await conn.execute(
                schema.api_keys.insert().values(
                    id=key.id,
                    name=key.name,
                    role=key.role,
                    secret_sha256=key.secret_sha256,
                    created_at_us=key.created_at_us,
                    operator_id=key.operator_id or None,
                )
            )

    async def revoke(self, key_id: str, at_us: int) -> bool:
        """Marks an unrevoked key revoked; False if there is none with this id."""
        table = schema.api_keys
        async with self._db.writer.begin() as conn:
            result = await conn.execute(
                update(table)
                .where(table.c.id == key_id, table.c.revoked_at_us.is_(None))
                .values(revoked_at_us=at_us)
            )
        return bool(result.rowcount)

    async def all(self) -> list[StoredKey]:
        table = schema.api_keys
        async with self._db.reader.connect() as conn:
            rows = await conn.execute(select(table).order_by(table.c.created_at_us, table.c.id))
            return [_from_row(r) for r in rows]

    async def get(self, key_id: str) -> StoredKey | None:
        table = schema.api_keys
        async with self._db.reader.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == key_id))).first()
        return _from_row(row) if row is not None else None


def _from_row(row: Row[Any]) -> StoredKey:
    return StoredKey(
        id=row.id,
        name=row.name,
        role=row.role,
        secret_sha256=row.secret_sha256,
        created_at_us=row.created_at_us,
        revoked_at_us=row.revoked_at_us,
        operator_id=row.operator_id or "",
    )
