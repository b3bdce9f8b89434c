"""What the commands print is printed as written: paths, names and reasons holding "[/x]" or
"[bold]" are not Rich markup. Before, ``init`` in a folder named "[/x] home" ended in a
``MarkupError`` traceback after the workspace was made, and "[bold]" in an organisation's name
vanished from the line that confirmed it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from likeness.cli import app
from likeness.media import write_image
from tests.consent.test_cli_consent import enrol, signed_by_holder

runner = CliRunner()


def run(home: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    return " ".join(result.output.split())


def test_init_in_a_folder_whose_name_looks_like_markup(tmp_path: Path) -> None:
    home = tmp_path / "[/x] home"
    said = run(home, "init")
    assert f"workspace ready at {home}" in said
    assert f"keys {home}" in said


def test_organisation_names_print_as_typed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "init")
    said = run(home, "org", "add", "acme", "--name", "[bold]Acme[/bold] [/x]")
    assert "organisation acme added" in said
    listed = run(home, "org", "list")
    assert "[bold]Acme[/bold] [/x]" in listed


def test_extraction_names_skipped_and_read_files_as_written(tmp_path: Path, astronaut) -> None:
    home = tmp_path / "home"
    run(home, "init", "--org", "studio")
    mina = enrol(home, "mina", "--virtual", "--owner-org", "studio")
    signed_by_holder(
        home, mina, "consent", "request", "mina", "--use", "training", "--until", "+30d", "--purpose", "debut"
    )
    photo = write_image(tmp_path / "[red]mina[/red] [/x].png", astronaut)
    missing = tmp_path / "[/y] gone.jpg"
    added = run(home, "subject", "photos", "add", "mina", str(photo), str(missing))
    assert "1 enrolled" in added and f"skipped {missing}" in added
    said = run(home, "extract", "mina", str(photo), str(missing), "--out", str(tmp_path / "fs"), "--size", "64")
    assert f"skipped {missing}: not found" in said
    assert "faceset " in said and "1 face " in said
