"""Paths the system refuses: a name longer than the file system takes, a symbolic link loop, a
database file that cannot be opened. Each is one line naming the path and the system's reason,
exit 1; before, an ``OSError``, ``RuntimeError`` or SQLAlchemy traceback (trial 8). Permission
errors take the same route (tried as an unprivileged user; these tests may run as root)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from typer.testing import CliRunner

import likeness.workspace
from likeness.cli import app
from likeness.media import write_image
from likeness.media.synthetic import astronaut

runner = CliRunner()


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, (args, result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, (OSError, RuntimeError)), result.exception
    return " ".join(result.output.split())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(folder), "init"]).exit_code == 0
    return folder


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "astronaut.png"
    write_image(path, astronaut())
    return path


def test_a_name_too_long_is_one_line_naming_it(home: Path, picture: Path, tmp_path: Path) -> None:
    long = tmp_path / ("a" * 300)
    for args in (
        ["verify", str(long)],
        ["verify", str(picture), "--report", str(long)],
        ["faceset", "report", str(long)],
        ["scan", str(long), "--out", str(tmp_path / "scan")],
        ["scan", str(picture.parent), "--out", str(long)],
    ):
        said = refused("--home", str(home), *args)
        assert said.startswith(f"error: {long}") and "File name too long" in said, (args, said)
    said = refused("--home", str(long), "org", "list")
    assert "File name too long" in said, said


def test_a_symbolic_link_loop_is_one_line(home: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for command in (["init"], ["org", "list"]):
        said = refused("--home", str(loop), *command)
        assert said == f"error: {loop}: a symbolic link loop; give --home a folder", said
    said = refused("--home", str(home), "holder", "keygen", "--out", str(loop))
    assert said == f"error: {loop}: a symbolic link loop; give the private key's folder", said
    # verify checked ``exists``, which is False for a loop: it said "not found".
    for path in (loop, loop / "inside.png"):
        said = refused("--home", str(home), "verify", str(path))
        assert said == f"error: {path}: a symbolic link loop; give an image, a video or a folder", said
    # scan checked ``exists`` as verify did: "not found (a folder, a file, ...)".
    for path in (loop, loop / "inside.png"):
        said = refused("--home", str(home), "scan", str(path), "--out", str(tmp_path / "results"))
        hint = "give a folder, a file, a CSV/Parquet manifest or an fsspec URL"
        assert said == f"error: {path}: a symbolic link loop; {hint}", said
    # ``--out`` was found a loop only when the first results were written, every file verified
    # for nothing: "error: LOOP: File exists", "error: LOOP/results: Too many levels of symbolic links".
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "notes.txt").write_text("no media: the loop is refused before any file is read")
    for path in (loop, loop / "results"):
        said = refused("--home", str(home), "scan", str(sources), "--out", str(path))
        assert said == f"error: {path}: a symbolic link loop; scan results are a folder of Parquet parts", said


def test_a_database_that_cannot_be_opened_is_one_line(home: Path) -> None:
    (home / "likeness.db").unlink()
    (home / "likeness.db").mkdir()  # what root's tests can make of "cannot open"; a 0000 file is the same
    said = refused("--home", str(home), "org", "list")
    assert said.startswith(f"error: sqlite:///{home / 'likeness.db'}: cannot open the database"), said


def test_a_database_that_cannot_be_written_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 0444 file or a read-only folder as an unprivileged user; root writes those, so SQLite's
    # query_only (the same "attempt to write a readonly database") stands in for them here.
    opened = likeness.workspace._engine

    def read_only(url: str):
        engine = opened(url)

        @sqlalchemy.event.listens_for(engine, "connect")
        def _query_only(connection, _record) -> None:
            connection.execute("PRAGMA query_only=ON")

        return engine

    with monkeypatch.context() as patch:
        patch.setattr(likeness.workspace, "_engine", read_only)
        said = refused("--home", str(home), "org", "add", "acme")
    assert said == f"error: {home / 'likeness.db'}: cannot write the database (attempt to write a readonly database)"
    # Its new key went with the refused row: once the database is writable the same command works.
    result = runner.invoke(app, ["--home", str(home), "org", "add", "acme"])
    assert result.exit_code == 0, result.output
