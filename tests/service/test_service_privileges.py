"""The service as PostgreSQL's application role (SELECT and INSERT everywhere, UPDATE only on
users, sessions, tokens and jobs): sign-in, tokens and the job queue work, and still nothing
can be deleted."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from likeness.config import Settings
from likeness.consent.privileges import app_role_sql
from likeness.service.accounts import Accounts
from likeness.service.jobs import JobQueue
from likeness.service.roles import Role
from likeness.workspace import Workspace

from .conftest import PASSWORD, cheap_hasher


def test_service_runs_as_the_application_role(postgres_server, postgres_url, tmp_path):
    database = make_url(postgres_url).database
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"owner_{suffix}", f"app_{suffix}"
    postgres_server.execute(
        f"CREATE ROLE {owner} LOGIN", f"CREATE ROLE {app} LOGIN", f"ALTER DATABASE {database} OWNER TO {owner}"
    )
    postgres_server.execute(f"ALTER SCHEMA public OWNER TO {owner}", database=database)
    home = tmp_path / "home"
    Workspace.init(Settings(home=home, database_url=postgres_server.url(database, user=owner))).close()
    with psycopg.connect(
        host=str(postgres_server.sock), port=postgres_server.port, user=owner, dbname=database, autocommit=True
    ) as conn:
        conn.execute(app_role_sql(app))

    ws = Workspace.open(Settings(home=home, database_url=postgres_server.url(database, user=app)))
    try:
        org = ws.registry.add_org("studio")
        accounts = Accounts(ws, hasher=cheap_hasher())
        admin = accounts.add_user("admin", PASSWORD, Role.ADMIN)
        accounts.add_user("jiwoo", PASSWORD, Role.LEGAL)
        user = accounts.authenticate("jiwoo", PASSWORD, client="test")
        secret, _ = accounts.start_session(user)
        accounts.end_session(secret)
        token, info = accounts.create_token(user, "script")
        assert accounts.token_principal(token) is not None
        accounts.revoke_token(info.id, actor=user)
        accounts.set_role("jiwoo", Role.VIEWER, actor=admin)

        queue = JobQueue(ws.engine)
        job = queue.enqueue("verify", {}, org_id=org.id)
        assert queue.claim("w1").id == job.id  # FOR UPDATE SKIP LOCKED needs UPDATE on jobs only
        queue.heartbeat(job.id, "w1", progress=0.5)
        assert queue.finish(job.id, "w1", state="succeeded", result={})
        assert ws.ledger.verify().ok

        for attack in (
            "DELETE FROM jobs",
            "DELETE FROM service_users",
            "TRUNCATE jobs",
            "UPDATE ledger SET payload = '{}'",
            "DELETE FROM service_api_tokens",
        ):
            with pytest.raises(DBAPIError, match="permission denied|append-only"), ws.engine.begin() as conn:
                conn.execute(text(attack))
    finally:
        ws.close()
