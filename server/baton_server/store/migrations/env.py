"""Alembic environment: runs on the connection Baton passes in at start-up."""

from alembic import context

from baton_server.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Baton runs migrations itself at start-up (baton serve / baton migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
