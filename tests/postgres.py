"""Fresh PostgreSQL databases for tests, on the cluster named by BATON_TEST_POSTGRES_URL.

`make test` starts a throwaway cluster (.ci/postgres) and sets the variable together with
BATON_REQUIRE_POSTGRES=1, so there a missing server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    admin_url = os.environ.get("BATON_TEST_POSTGRES_URL", "")
    if not admin_url:
        if os.environ.get("BATON_REQUIRE_POSTGRES") == "1":
            pytest.fail("BATON_TEST_POSTGRES_URL is not set but PostgreSQL tests are required")
        pytest.skip("no PostgreSQL (set BATON_TEST_POSTGRES_URL, or run `make test`)")
    url = make_url(admin_url)
    name = f"baton_test_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
