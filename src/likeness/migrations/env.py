"""Alembic environment: runs with the connection handed over by ``likeness.workspace``."""

from __future__ import annotations

from alembic import context

from likeness.consent.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the product always passes a connection
    raise RuntimeError("likeness migrations run through likeness.workspace.migrate()")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
