"""A workspace SQLite can read but not index for writing: a read-only mount or copy (trial 9
left: "cannot open the database (unable to open database file)" for every command, even
``org list``). A WAL database needs its ``-shm`` file to be read with locks, and SQLite cannot
create it there. These tests run as root, whom file modes do not stop, so a symbolic link
stands at ``likeness.db-shm``: SQLite opens that file with ``O_NOFOLLOW``, which fails for root
as creating it fails on a read-only mount (checked by hand on a read-only bind mount, where
the commands below say the same). Commands that only read now read; a write is one line."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.config import Settings
from likeness.errors import DatabaseRefused
from likeness.workspace import Workspace

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert not isinstance(result.exception, (OSError, RuntimeError, sqlite3.Error)), result.exception
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    assert run("--home", str(folder), "init", "--org", "acme")[0] == 0
    return folder


def snapshot(home: Path, to: Path, *, keep_wal: bool = False) -> Path:
    """A copy of the workspace whose -shm SQLite cannot open or create (see the module docstring)."""
    shutil.copytree(home, to, ignore=shutil.ignore_patterns("likeness.db*"))
    shutil.copy2(home / "likeness.db", to / "likeness.db")
    if keep_wal:
        shutil.copy2(home / "likeness.db-wal", to / "likeness.db-wal")
    assert (to / "likeness.db").read_bytes()[18:20] == b"\x02\x02"  # a WAL database
    (to / "likeness.db-shm").symlink_to(to / "nowhere" / "likeness.db-shm")
    return to


@pytest.fixture
def read_only_copy(home: Path, tmp_path: Path) -> Path:
    with sqlite3.connect(home / "likeness.db") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return snapshot(home, tmp_path / "snapshot")


def test_the_commands_that_only_read_read_it(read_only_copy: Path) -> None:
    for command in (
        ["org", "list"],
        ["subject", "list"],
        ["consent", "list"],
        ["release", "list"],
        ["audit", "log"],
        ["audit", "verify"],
        ["user", "list"],
    ):
        code, said = run("--home", str(read_only_copy), *command)
        assert code == 0, (command, said)
        assert "cannot open the database" not in said
    assert "acme" in run("--home", str(read_only_copy), "org", "list")[1]
    # org.created and the four sealing markers its organisation wrote
    assert "ledger intact: 5 rows" in run("--home", str(read_only_copy), "audit", "verify")[1]


def test_a_write_there_is_one_line_before_any_work(read_only_copy: Path, tmp_path: Path) -> None:
    database = read_only_copy / "likeness.db"
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"not read: the workspace is refused first")
    for command in (["org", "add", "beta"], ["verify", str(picture)]):
        code, said = run("--home", str(read_only_copy), *command)
        assert code == 1, (command, said)
        assert said == (
            f"error: {database}: cannot write the database (SQLite cannot open or create its -shm file "
            "beside it: a read-only folder or mount; commands that only read still read it)"
        ), said


def test_a_read_only_workspace_never_writes(home: Path) -> None:
    # Where SQLite could write, a command that only reads still cannot: mode=ro.
    workspace = Workspace.open(Settings(home=home), read_only=True)
    try:
        with pytest.raises(DatabaseRefused, match="cannot write the database .*readonly database"):
            workspace.ledger.append("test.note", {"note": "a read-only command wrote"})
    finally:
        workspace.close()


def test_changes_only_in_the_wal_are_not_read_past(home: Path, tmp_path: Path) -> None:
    # The database file alone lacks the -wal's transactions; reading it as immutable would show
    # an older ledger as if it were the whole one.
    writer = sqlite3.connect(home / "likeness.db")
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        with writer:
            writer.execute("CREATE TABLE house_note (note TEXT)")
            writer.execute("INSERT INTO house_note VALUES ('only in the wal')")
        copy = snapshot(home, tmp_path / "snapshot", keep_wal=True)
    finally:
        writer.close()
    assert (copy / "likeness.db-wal").stat().st_size > 0
    code, said = run("--home", str(copy), "org", "list")
    assert code == 1, said
    assert said == (
        f"error: {copy / 'likeness.db'}: cannot read the database here: SQLite cannot open its -shm "
        "file (a read-only folder or mount), and likeness.db-wal holds changes not yet in the database "
        "file; copy the workspace to a writable folder and give that as --home"
    ), said


def _files(folder: Path) -> dict[str, int]:
    # Less the empty -wal SQLite's mode=ro makes where the folder lets it (never on a read-only mount).
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if not p.is_symlink() and p.name != "likeness.db-wal"
    }


def test_audit_verify_of_a_registered_detector_writes_nothing(home: Path, tmp_path: Path) -> None:
    # With a detector registered, `audit verify` synced the artist gallery into HOME/gallery
    # (its index is derived from the references, so a copy may lack it or hold an older one):
    # a command that only reads wrote the workspace, and on a read-only mount it stopped with
    # "cannot write the artist gallery" instead of auditing.
    import hashlib

    import numpy as np

    from likeness.detector.registered import REGISTERED_EVENT
    from tests.conftest import add_subject

    workspace = Workspace.open(Settings(home=home))
    try:
        subject = add_subject(workspace.registry, "mina", "Mina", kind="artist")
        embedding = np.random.default_rng(12).normal(size=128).astype(np.float32)
        embedding /= np.linalg.norm(embedding)
        workspace.registry.add_reference_embedding("mina", embedding, source_name="mina.png", source_sha256="0" * 64)
        workspace.ledger.append(
            REGISTERED_EVENT,
            {
                "subject_id": subject.id,
                "subject_slug": "mina",
                "model": "test.detector",
                "onnx_sha256": hashlib.sha256(b"onnx").hexdigest(),
                "card_sha256": hashlib.sha256(b"card").hexdigest(),
            },
        )
    finally:
        workspace.close()
    with sqlite3.connect(home / "likeness.db") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = snapshot(home, tmp_path / "snapshot")
    before = _files(copy)
    code, said = run("--home", str(copy), "audit", "verify")
    assert "detector_altered" in said and "cannot write" not in said, said
    assert code == 1, said  # the registration's files are missing: named, not a crash
    assert _files(copy) == before, sorted(set(_files(copy)) - set(before))
    code, said = run("--home", str(copy), "detector", "list")  # before: "cannot write the database"
    assert code == 0 and "mina test.detector" in said and "NOT used by verify" in said, said
    assert _files(copy) == before, sorted(set(_files(copy)) - set(before))


def test_detector_list_reads_it(read_only_copy: Path) -> None:
    """Before: "cannot write the database (SQLite cannot open or create its -shm file ...)", exit 1."""
    code, said = run("--home", str(read_only_copy), "detector", "list")
    assert (code, said) == (0, "no detector is registered"), said
