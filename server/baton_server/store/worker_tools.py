"""Tools declared by tool workers: the newest declaration of each name, kept so guidelines and
the catalogue know a worker tool while no worker serving it is connected (and after a restart)."""

from __future__ import annotations

import json

from sqlalchemy import delete, select

from baton_server.domain import WorkerToolSpec, now_us
from baton_server.store import schema
from baton_server.store.database import Database


class WorkerToolRows:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def remember(self, specs: list[WorkerToolSpec]) -> None:
        """Stores these declarations, replacing older ones of the same names."""
        table = schema.worker_tools
        declared_at = now_us()
        async with self._db.writer.begin() as conn:
            await conn.execute(delete(table).where(table.c.name.in_([s.name for s in specs])))
            await conn.execute(
                table.insert(),
                [
                    {
                        "name": spec.name,
                        "description": spec.description,
                        "parameters_json": json.dumps(spec.parameters),
                        "timeout_ms": None
                        if spec.timeout_s is None
                        else round(spec.timeout_s * 1000),
                        "retry_safe": spec.retry_safe,
                        "declared_at_us": declared_at,
                    }
                    for spec in specs
                ],
            )

    async def load(self) -> list[WorkerToolSpec]:
        table = schema.worker_tools
        async with self._db.reader.connect() as conn:
            rows = (await conn.execute(select(table).order_by(table.c.name))).all()
        return [
            WorkerToolSpec(
                row.name,
                row.description,
                json.loads(row.parameters_json),
                None if row.timeout_ms is None else row.timeout_ms / 1000,
                bool(row.retry_safe),
            )
            for row in rows
        ]
