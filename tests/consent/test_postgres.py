"""The same models, migrations and triggers on PostgreSQL (a throwaway local cluster).

The server binaries ship with this machine image; the test starts a private cluster on a Unix
socket in a temporary folder and removes it afterwards. Where no PostgreSQL server is
installed the test is reported as skipped, never as passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.errors import ConsentError
from likeness.workspace import Workspace


def _pg_bin() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        if (candidate / "initdb").exists():
            return candidate
    return None


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; drop to the postgres account where we are root.
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    root = Path(tempfile.mkdtemp(prefix="likeness-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = "54329"
    run = lambda *a: subprocess.run(_as_postgres(list(a)), check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "likeness", "--auth=trust", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
        f"-k {sock} -p {port} -c listen_addresses=''", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(sock), "-p", port, "-U", "likeness", "likeness")
        yield f"postgresql+psycopg://likeness@/likeness?host={sock}&port={port}"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_consent_and_ledger_on_postgresql(postgres_url, tmp_path):
    ws = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        reg = ws.registry
        reg.add_org("studio")
        reg.add_subject("ari", "Ari", kind="artist")
        grant_id = reg.issue_grant("ari", "studio", ["training"], valid_until=now_utc() + timedelta(days=1))
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
        reopened = Workspace.open(Settings(home=tmp_path / "home", database_url=postgres_url))
        assert reopened.ledger.verify().ok
        reopened.close()
    finally:
        ws.close()
