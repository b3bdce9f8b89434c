"""PostgreSQL least privilege: the owner role migrates, the application role only reads and adds.

On the ``postgres_url`` cluster: an owner role migrates a fresh database and applies
``likeness db app-role-sql``; the application role then runs the normal consent flow and is
refused every UPDATE, DELETE, TRUNCATE and trigger change on the ledger and consent tables.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import inspect, make_url, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from likeness.cli import app as cli_app
from likeness.config import Settings
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import now_utc
from likeness.consent.privileges import (
    PORTAL_STATE_TABLES,
    SERVICE_STATE_TABLES,
    TABLE_PRIVILEGES,
    app_role_sql,
    unlisted_tables,
)
from likeness.workspace import Workspace
from tests.conftest import add_subject, holder_machine, issue_grant, issue_release, revoke_release

GUARDED = (
    "ledger",
    "grants",
    "grant_revocations",
    "releases",
    "release_revocations",
    "rights_holders",
    "subjects",
    "organisations",
    "authorizations",
)


def test_app_role_sql_grants_no_change_or_removal():
    sql = app_role_sql("likeness_app")
    grants = [line for line in sql.splitlines() if line.startswith("GRANT")]
    assert grants and all('TO "likeness_app"' in line for line in grants)
    for word in ("DELETE", "TRUNCATE", "TRIGGER", "ALL PRIVILEGES", "REFERENCES"):
        assert not any(word in line for line in grants), word
    # UPDATE only on the service's and the portal's operational state (users, sessions, tokens,
    # jobs; passkey counters, invitations, requests, holder sessions), never on the ledger or a
    # consent record
    updatable = {line.split('"public"."')[1].split('"')[0] for line in grants if "UPDATE" in line}
    assert updatable == set(SERVICE_STATE_TABLES) | set(PORTAL_STATE_TABLES)
    assert not updatable & set(GUARDED)
    assert 'GRANT SELECT, INSERT ON TABLE "public"."ledger"' in sql
    for bad in ("app; DROP TABLE ledger", 'x"y', "Upper", "1role", ""):
        with pytest.raises(ValueError):
            app_role_sql(bad)


def test_db_app_role_sql_command():
    runner = CliRunner()
    result = runner.invoke(cli_app, ["db", "app-role-sql", "likeness_app"])
    assert result.exit_code == 0 and result.output == app_role_sql("likeness_app")
    refused = runner.invoke(cli_app, ["db", "app-role-sql", "app; DROP TABLE ledger"])
    assert refused.exit_code == 1 and "role name" in refused.output and "Traceback" not in refused.output


@pytest.fixture
def two_roles(postgres_server, postgres_url):
    """(owner_url, app_url, run_as_owner) on a fresh database owned by a fresh owner role."""
    import psycopg

    database = make_url(postgres_url).database
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"owner_{suffix}", f"app_{suffix}"
    postgres_server.execute(
        f"CREATE ROLE {owner} LOGIN", f"CREATE ROLE {app} LOGIN", f"ALTER DATABASE {database} OWNER TO {owner}"
    )
    postgres_server.execute(f"ALTER SCHEMA public OWNER TO {owner}", database=database)

    def run_as_owner(sql: str) -> None:
        with psycopg.connect(
            host=str(postgres_server.sock), port=postgres_server.port, user=owner, dbname=database, autocommit=True
        ) as conn:
            conn.execute(sql)

    return postgres_server.url(database, user=owner), postgres_server.url(database, user=app), app, run_as_owner


def test_app_role_adds_but_cannot_change_remove_or_unguard(two_roles, tmp_path):
    owner_url, app_url, app_role, run_as_owner = two_roles
    home = tmp_path / "home"
    owner_ws = Workspace.init(Settings(home=home, database_url=owner_url))
    assert unlisted_tables(inspect(owner_ws.engine).get_table_names()) == []
    assert set(TABLE_PRIVILEGES) == set(inspect(owner_ws.engine).get_table_names())
    run_as_owner(app_role_sql(app_role))
    assert any("owns the ledger table" in w for w in audit_workspace(owner_ws).warnings)

    ws = Workspace.open(Settings(home=home, database_url=app_url))
    try:
        reg = ws.registry
        reg.add_org("studio")
        add_subject(reg, "ari", "Ari", kind="artist")
        add_subject(reg, "jun", "Jun", kind="performer")
        until = now_utc() + timedelta(days=1)
        grant_id = issue_grant(reg, "ari", "studio", ["music_video"], valid_until=until, max_renders=2)
        release_id = issue_release(reg, "jun", "studio", valid_until=until)
        authz = ws.policy.authorize("ari", "music_video", "studio")
        ws.policy.authorize_release("jun", "studio")
        authz.consume_render("job-1")
        authz.consume_render("job-2")
        assert authz.refund_render("job-2", "failed: test")  # a refund is a ledger event, no DELETE
        authz.consume_render("job-3")
        reg.import_signed(holder_machine(reg).rotate(grant_id, "ari-holder", "ari-2"))
        revoke_release(reg, release_id, reason="ended")
        report = audit_workspace(ws)
        assert report.ok, report.problems
        assert not any("could drop" in w for w in report.warnings)

        attacks = [
            "UPDATE ledger SET payload = '{}' WHERE seq = 1",
            "DELETE FROM ledger WHERE seq > 3",
            "TRUNCATE ledger",
            f"UPDATE grants SET uses = '[\"advertising\"]' WHERE id = '{grant_id}'",
            f"DELETE FROM grants WHERE id = '{grant_id}'",
            "DELETE FROM release_revocations",
            "UPDATE release_revocations SET reason = 'x'",
            "DELETE FROM grant_revocations",
            "UPDATE rights_holders SET public_key = repeat('0', 64)",
            "UPDATE organisations SET public_key = repeat('0', 64)",
            "DELETE FROM render_consumptions",
            "DROP TRIGGER ledger_append_only ON ledger",
            "ALTER TABLE ledger DISABLE TRIGGER ledger_append_only",
            "ALTER TABLE ledger DISABLE TRIGGER ALL",
            "DROP FUNCTION ledger_append_only() CASCADE",
            "CREATE TABLE shadow (id int)",
            "SET session_replication_role = replica",
        ] + [f"TRUNCATE {table} CASCADE" for table in GUARDED]
        for statement in attacks:
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                with ws.engine.begin() as conn:
                    conn.execute(text(statement))
        assert ws.ledger.verify().ok and audit_workspace(ws).ok
    finally:
        ws.close()
        owner_ws.close()
