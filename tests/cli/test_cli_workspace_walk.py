"""A new user's workspace, trial 9: commands run from inside the workspace folder, and two
``init`` at once. Each failed before: the first said "no workspace here (create one with:
likeness init)", and that init made a second, empty workspace inside the first; of two inits at
once, one stopped with "cannot open the database (table ... already exists)"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LIKENESS_HOME", raising=False)
    folder = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(folder), "init", "--org", "acme"]).exit_code == 0
    return folder


def test_a_command_run_inside_the_workspace_folder_names_the_home_to_give(home, monkeypatch):
    monkeypatch.chdir(home / "outputs")
    result = runner.invoke(app, ["org", "list"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert f"inside the workspace {home}" in said and f"--home {home}" in said, said
    assert "likeness init" not in said  # the hint that led to a workspace inside the workspace
    assert not (home / "outputs" / "likeness-home").exists()


def test_init_inside_a_workspace_is_refused(home, monkeypatch):
    monkeypatch.chdir(home)
    result = runner.invoke(app, ["init", "--org", "other"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert f"inside the workspace {home}" in said, said
    assert not (home / "likeness-home").exists()
    # Re-running init on the workspace itself (an upgrade) still works.
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0


# Each child imports first, says it is ready and waits for the other, so both migrate at once.
INIT_TOGETHER = """
import sys, time
from pathlib import Path
from likeness.config import Settings
from likeness.workspace import Workspace
home, me = Path(sys.argv[1]), sys.argv[2]
(home.parent / f"{home.name}.ready{me}").touch()
while len(list(home.parent.glob(f"{home.name}.ready*"))) < 2:
    time.sleep(0.001)
Workspace.init(Settings(home=home)).close()
"""


def test_two_inits_at_once_both_succeed(tmp_path):
    for attempt in range(2):
        home = str(tmp_path / f"home{attempt}")
        children = [
            subprocess.Popen([sys.executable, "-c", INIT_TOGETHER, home, str(me)], stderr=subprocess.PIPE, text=True)
            for me in range(2)
        ]
        errors = [child.communicate(timeout=120)[1] for child in children]
        failures = [error for child, error in zip(children, errors, strict=True) if child.returncode != 0]
        assert not failures, failures


@pytest.mark.parametrize("stray", ["empty file", "text file", "fifo", "folder"])
def test_a_stray_likeness_db_beside_a_keys_folder_does_not_block_init_below(tmp_path, monkeypatch, stray):
    """Trial 10: an empty likeness.db and a keys folder left in a parent (/tmp, say) counted as
    a workspace, so init refused every folder below it. Only a SQLite file counts."""
    monkeypatch.delenv("LIKENESS_HOME", raising=False)
    (tmp_path / "keys").mkdir()
    database = tmp_path / "likeness.db"
    if stray == "fifo":
        os.mkfifo(database)
    elif stray == "folder":
        database.mkdir()
    else:
        database.write_text("" if stray == "empty file" else "notes\n")
    result = runner.invoke(app, ["--home", str(tmp_path / "project" / "home"), "init", "--org", "acme"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "project" / "home" / "likeness.db").is_file()


def test_a_database_another_writer_holds_is_one_line_to_retry(home, monkeypatch):
    """Trial 10: ``org add`` while another connection held the write lock past SQLite's busy
    timeout (30 s; 0.1 s here) ended in SQLAlchemy's traceback."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def short_wait(connection, _record) -> None:
        connection.execute("PRAGMA busy_timeout=100")

    event.listen(Engine, "connect", short_wait)
    holder = sqlite3.connect(home / "likeness.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = runner.invoke(app, ["--home", str(home), "org", "add", "rival"])
    finally:
        holder.rollback()
        holder.close()
        event.remove(Engine, "connect", short_wait)
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert "the workspace database is busy" in said and "Traceback" not in said, said
    # Nothing was left half-made: the same command succeeds once the lock is gone.
    assert runner.invoke(app, ["--home", str(home), "org", "add", "rival"]).exit_code == 0
