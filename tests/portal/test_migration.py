"""Migration 0005_portal: an existing workspace (at 0003) gains the portal's tables, exactly as
the models declare them, and the downgrade removes them again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from likeness import workspace as workspace_module
from likeness.consent.tables import Base

PORTAL_TABLES = {"holder_passkeys", "holder_invitations", "grant_requests", "holder_sessions", "passkey_challenges"}


def _to(engine, revision: str, *, down: bool = False) -> None:
    config = workspace_module._alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_an_existing_workspace_gains_the_portal_tables(settings) -> None:
    settings.resolved_home.mkdir(parents=True)
    engine = workspace_module._engine(settings.resolved_database_url)
    _to(engine, "0003_service")
    assert not PORTAL_TABLES & set(inspect(engine).get_table_names())
    workspace = workspace_module.Workspace.init(settings)  # what `likeness init` does
    try:
        assert set(inspect(workspace.engine).get_table_names()) >= PORTAL_TABLES
        with workspace.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        portal = [d for d in differences if PORTAL_TABLES & {getattr(x, "name", None) for x in _tables(d)}]
        assert portal == []
        _to(workspace.engine, "0003_service", down=True)
        assert not PORTAL_TABLES & set(inspect(workspace.engine).get_table_names())
    finally:
        workspace.close()


def _tables(difference) -> list:
    """The tables an autogenerate difference is about (tuples nest for column changes)."""
    items = difference if isinstance(difference, list) else [difference]
    found = []
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):
            table = getattr(part, "table", None)
            if table is not None:
                found.append(table)
            if hasattr(part, "columns") and hasattr(part, "name"):
                found.append(part)
    return found
