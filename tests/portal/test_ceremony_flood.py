"""Unauthenticated ``POST /portal/api/signin/options`` (trial finding 8): each call wrote a
``passkey_challenges`` row, unlimited and never removed (500 calls, 500 rows). Now one client
address gets a few a minute (429 after), and a new ceremony is written over one that expired
(an UPDATE: the PostgreSQL application role may not DELETE portal rows), so the table holds at
most the ceremonies of one ``CEREMONY_TTL``."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from likeness.consent.holder_portal import HolderPortal
from likeness.consent.privileges import TABLE_PRIVILEGES
from tests.portal.softauthn import ORIGIN
from tests.service.conftest import build_service_world

OPTIONS = "/portal/api/signin/options"


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _ceremonies(world) -> int:
    with world.workspace.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM passkey_challenges")).scalar_one())


def _expire_all(world) -> None:
    with world.workspace.engine.begin() as conn:
        conn.execute(text("UPDATE passkey_challenges SET expires_at = '2000-01-01T00:00:00Z'"))


def test_one_address_gets_a_few_sign_in_ceremonies_a_minute(world) -> None:
    client = world.client(base_url=ORIGIN)
    codes = [client.post(OPTIONS, json={}).status_code for _ in range(100)]
    allowed = codes.count(200)
    assert 0 < allowed <= 30 and set(codes[allowed:]) == {429}, codes
    refused = client.post(OPTIONS, json={})
    assert refused.json()["type"].endswith("rate-limited") and int(refused.headers["retry-after"]) >= 1
    assert _ceremonies(world) == allowed


def test_an_expired_ceremony_row_is_reused_not_kept(world) -> None:
    assert "DELETE" not in TABLE_PRIVILEGES["passkey_challenges"]  # why rows are reused, not deleted
    portal = HolderPortal(world.workspace)
    first = [portal.new_ceremony("sign_in") for _ in range(5)]
    assert _ceremonies(world) == 5
    _expire_all(world)  # ten minutes later
    fresh = [portal.new_ceremony("sign_in") for _ in range(7)]
    assert _ceremonies(world) == 7  # five rewritten, two new
    for ceremony in first:  # an expired ceremony stays unusable once its row is reused
        with pytest.raises(Exception, match="unknown, already used or expired"):
            portal.take_ceremony(ceremony.id, "sign_in")
    for ceremony in fresh:
        taken = portal.take_ceremony(ceremony.id, "sign_in")
        assert taken.challenge == ceremony.challenge and taken.used_at is not None


def test_flooding_from_many_addresses_keeps_the_table_bounded(world) -> None:
    """The rate limit is per address; across many addresses (a limiter that lets all through
    here), the rows stay those of the last ten minutes."""
    from likeness.service.security import RateLimiter

    world.app.state.services.ceremony_limiter = RateLimiter(10_000, 60.0)
    client = world.client(base_url=ORIGIN)
    for _ in range(5):
        assert all(client.post(OPTIONS, json={}).status_code == 200 for _ in range(10))
        _expire_all(world)  # ten minutes later
    assert _ceremonies(world) == 10


def test_ceremonies_are_reused_as_the_postgresql_application_role(postgres_server, postgres_url, tmp_path) -> None:
    """The reuse needs only UPDATE, which the application role has on ``passkey_challenges``
    (and DELETE, which it has not, is still refused)."""
    import uuid

    import psycopg
    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError

    from likeness.config import Settings
    from likeness.consent.privileges import app_role_sql
    from likeness.workspace import Workspace

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
        portal = HolderPortal(ws)
        for _ in range(3):
            portal.new_ceremony("sign_in")
        with ws.engine.begin() as conn:
            conn.execute(text("UPDATE passkey_challenges SET expires_at = '2000-01-01T00:00:00Z'"))
        fresh = portal.new_ceremony("sign_in")
        with ws.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM passkey_challenges")).scalar_one() == 3
        assert portal.take_ceremony(fresh.id, "sign_in").challenge == fresh.challenge
        with pytest.raises(DBAPIError, match="permission denied"), ws.engine.begin() as conn:
            conn.execute(text("DELETE FROM passkey_challenges"))
    finally:
        ws.close()
