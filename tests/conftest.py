"""Shared fixtures: a fresh workspace per test and a small consented world.

``consent_world``: organisation ``studio``; artist ``mina`` (a virtual idol owned by studio,
whose reference face is scikit-image's astronaut) with a grant to studio for all six uses;
performer ``jun`` (reference face: matplotlib's grace_hopper) with a release to studio.
Reference embeddings are not computed by default (it needs the face models); call
``consent_world.enroll_faces()`` or use the ``enrolled_world`` fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from likeness.config import Settings
from likeness.consent import USES, Authorization, ReleaseAuthorization
from likeness.consent.canonical import now_utc
from likeness.consent.holder import HolderMachine
from likeness.consent.registry import HOLDERS_EVENT, SEALING_MARKERS, SUBJECTS_EVENT, Registry, SubjectRecord
from likeness.consent.tables import RightsHolder
from likeness.media.synthetic import astronaut as astronaut_rgb
from likeness.media.synthetic import grace_hopper as grace_hopper_rgb
from likeness.workspace import Workspace

# The ``browser`` fixture and the browser tests' helpers.
pytest_plugins = ["tests.browser"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    ws = Workspace.init(settings)
    yield ws
    ws.close()


@pytest.fixture
def before_subjects_sealed(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Versions before ``subject.created`` and ``holder.created`` events were signed: no
    ``ledger.subjects_sealed`` or ``ledger.holders_sealed`` marker is written, so an unsigned
    subject or holder event appended now is one such a version wrote. Ask for it before the
    fixtures that add organisations (they write the markers); ``monkeypatch.undo()`` and the
    next ``Workspace.open`` is the upgrade."""
    monkeypatch.delitem(SEALING_MARKERS, SUBJECTS_EVENT)
    monkeypatch.delitem(SEALING_MARKERS, HOLDERS_EVENT)
    return monkeypatch


@pytest.fixture
def two_agencies(workspace: Workspace) -> Workspace:
    """A workspace of two agencies, haneul and byeol (neither the only one to enrol anybody)."""
    workspace.registry.add_org("haneul", "Haneul Entertainment")
    workspace.registry.add_org("byeol", "Byeol Entertainment")
    return workspace


@dataclass
class ConsentWorld:
    workspace: Workspace
    tmp: Path
    org: str = "studio"
    artist: str = "mina"
    performer: str = "jun"
    grant_id: str = ""
    release_id: str = ""
    _enrolled: bool = field(default=False, repr=False)

    def authorize(self, use: str = "training") -> Authorization:
        return self.workspace.policy.authorize(self.artist, use, self.org)

    def authorize_release(self) -> ReleaseAuthorization:
        return self.workspace.policy.authorize_release(self.performer, self.org)

    def revoke_grant(self) -> None:
        revoke_grant(self.workspace.registry, self.grant_id, reason="test revocation")

    def revoke_release(self) -> None:
        revoke_release(self.workspace.registry, self.release_id, reason="test revocation")

    def portrait_path(self, who: str) -> Path:
        """A PNG of the subject's reference portrait inside the test's tmp folder."""
        import cv2

        rgb = astronaut_rgb() if who == self.artist else grace_hopper_rgb()
        path = self.tmp / f"{who}_reference.png"
        if not path.exists():
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return path

    def enroll_faces(self) -> None:
        """Store reference embeddings for mina (astronaut) and jun (grace_hopper)."""
        if self._enrolled:
            return
        from likeness.faceset import enroll_reference_photos

        for who in (self.artist, self.performer):
            report = enroll_reference_photos(self.workspace, who, [self.portrait_path(who)])
            assert report.added == 1, report
        self._enrolled = True


# --- the rights holders' side, played on "their machine": a folder beside the workspace --------
# Tests enrol holders by public key and sign requests there with the same functions as
# ``likeness holder``; the workspace never sees a holder's private key.


def holder_machine(registry: Registry) -> HolderMachine:
    """The holders' machine of the workspace whose registry this is (beside its home)."""
    return HolderMachine.beside(registry.keys_dir.parent)


def add_holder(registry: Registry, slug: str, name: str, *, kind: str) -> RightsHolder:
    return registry.add_holder(slug, name, kind=kind, public_key_pem=holder_machine(registry).public_key(slug))


def flip_entropy_bit(jpeg: bytes, from_end: int = 200) -> bytes:
    """``jpeg`` with one bit flipped in its entropy-coded data near the end (well after a
    manifest's APP11 segments at the start), so the file still decodes and its hash no longer
    matches. The byte is neither 0xFF nor 0xFE (which the flip makes a marker: "broken data
    stream", about one file in 200) nor one after an 0xFF (a stuffed zero or a marker's code)."""
    data = bytearray(jpeg)
    at = len(data) - from_end
    while data[at] in (0xFE, 0xFF) or data[at - 1] == 0xFF:
        at -= 1
    data[at] ^= 0x01
    return bytes(data)


def add_subject(registry: Registry, slug: str, name: str, **options: Any) -> SubjectRecord:
    """Enrol a subject; a new rights holder (``SLUG-holder``) gets a key on the holders' machine."""
    return holder_machine(registry).enrol(registry, slug, name, **options)


def issue_grant(registry: Registry, subject: str, org: str, uses: Iterable[str], **options: Any) -> str:
    """Request a grant, have the holder sign it on their machine, import it; the grant id."""
    return holder_machine(registry).grant(registry, subject, org, uses, **options)


def issue_release(registry: Registry, performer: str, org: str, **options: Any) -> str:
    return holder_machine(registry).release(registry, performer, org, **options)


def revoke_grant(registry: Registry, grant_id: str, *, reason: str = "") -> None:
    """The holder signs the revocation on their machine; the organisation imports it."""
    registry.import_signed(holder_machine(registry).revoke(grant_id, reason=reason))


def revoke_release(registry: Registry, release_id: str, *, reason: str = "") -> None:
    registry.import_signed(holder_machine(registry).revoke(release_id, reason=reason))


def build_consent_world(workspace: Workspace, tmp: Path) -> ConsentWorld:
    registry = workspace.registry
    registry.add_org("studio", "Studio Haneul")
    add_subject(registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
    add_subject(registry, "jun", "Jun", kind="performer")
    until = now_utc() + timedelta(days=30)
    grant_id = issue_grant(registry, "mina", "studio", USES, valid_until=until, purpose="test grant for all uses")
    release_id = issue_release(registry, "jun", "studio", valid_until=until, purpose="test release")
    return ConsentWorld(workspace=workspace, tmp=tmp, grant_id=grant_id, release_id=release_id)


@pytest.fixture
def consent_world(workspace: Workspace, tmp_path: Path) -> ConsentWorld:
    return build_consent_world(workspace, tmp_path)


@pytest.fixture
def enrolled_world(consent_world: ConsentWorld) -> ConsentWorld:
    consent_world.enroll_faces()
    return consent_world


@pytest.fixture
def astronaut() -> np.ndarray:
    return astronaut_rgb()


@pytest.fixture
def grace_hopper() -> np.ndarray:
    return grace_hopper_rgb()


# --- PostgreSQL: one throwaway cluster per session, a fresh database per test ------------------
# .ci/run installs the server where it is missing; without it these tests are reported as
# skipped, never as passed, and in CI (LIKENESS_REQUIRE_POSTGRES=1, set by .ci/run) as failed.


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


@dataclass(frozen=True)
class PostgresServer:
    sock: Path
    port: str

    def url(self, database: str, user: str = "likeness") -> str:
        return f"postgresql+psycopg://{user}@/{database}?host={self.sock}&port={self.port}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the cluster's superuser ``likeness`` (autocommit)."""
        import psycopg

        with psycopg.connect(
            host=str(self.sock), port=self.port, user="likeness", dbname=database, autocommit=True
        ) as conn:
            for statement in statements:
                conn.execute(statement)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("LIKENESS_REQUIRE_POSTGRES") == "1":
            pytest.fail("LIKENESS_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (initdb) on this machine")
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
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-o",
        f"-k {sock} -p {port} -c listen_addresses='' -c max_connections=200",
        "start",
    )
    try:
        yield PostgresServer(sock, port)
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's cluster, as a SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.execute(f"CREATE DATABASE {name}")
    return postgres_server.url(name)
