"""Alembic migrations for the likeness registry and ledger."""
