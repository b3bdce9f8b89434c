"""The same models, migrations and triggers on PostgreSQL (a throwaway local cluster).

The cluster comes from the ``postgres_url`` fixture in ``tests/conftest.py`` (one private
cluster per test session, a fresh database per test).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from likeness.config import Settings
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.workspace import Workspace
from tests.conftest import add_subject, issue_grant


def test_consent_and_ledger_on_postgresql(postgres_url, tmp_path):
    ws = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        reg = ws.registry
        reg.add_org("studio")
        add_subject(reg, "ari", "Ari", kind="artist")
        grant_id = issue_grant(reg, "ari", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
        assert ws.policy.authorize("ari", "training", "studio").grant_id == grant_id
        assert ws.ledger.verify().ok
        with pytest.raises(DatabaseError, match="append-only"):
            with ws.engine.begin() as conn:
                conn.execute(text("UPDATE ledger SET payload = '{}' WHERE seq = 1"))
        with pytest.raises(DatabaseError, match="append-only"):
            with ws.engine.begin() as conn:
                conn.execute(text("DELETE FROM ledger"))
        with ws.engine.begin() as conn:
            conn.execute(text("UPDATE grants SET uses = '[\"advertising\"]' WHERE id = :g"), {"g": grant_id})
        with pytest.raises(ConsentError) as refused:
            ws.policy.authorize("ari", "advertising", "studio")
        assert refused.value.reason == "grant_altered"
        assert ("grant", grant_id) in {(p.kind, p.subject) for p in audit_workspace(ws).problems}
        reopened = Workspace.open(Settings(home=tmp_path / "home", database_url=postgres_url))
        assert reopened.ledger.verify().ok
        reopened.close()
    finally:
        ws.close()


def test_init_does_not_print_the_database_password(postgres_url, tmp_path, monkeypatch):
    """Trial 10: ``init`` printed the database URL whole, password and all, to the terminal (and
    to any CI log that keeps it); it prints the URL with the password hidden, as errors do."""
    from typer.testing import CliRunner

    from likeness.cli import app

    with_password = postgres_url.replace("://likeness@", "://likeness:hunter2-secret@")
    assert with_password != postgres_url  # the cluster trusts local sockets: the password is not checked
    monkeypatch.setenv("LIKENESS_DATABASE_URL", with_password)
    made: list[Workspace] = []
    init = Workspace.init.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Workspace, "init", classmethod(lambda cls, settings: made.append(init(cls, settings)) or made[-1])
    )
    try:
        result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "init"])
    finally:
        for workspace in made:  # the CLI leaves it to the process's end; here it must close
            workspace.close()
    assert result.exit_code == 0, result.output
    assert "hunter2-secret" not in result.output
    assert "likeness:***@" in result.output
