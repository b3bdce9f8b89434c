"""Ctrl-C in a command that has no answer of its own: one line and exit status 130."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from likeness.cli import app


def test_ctrl_c_in_model_export_says_it_stopped_and_what_to_do(workspace, monkeypatch, tmp_path: Path) -> None:
    # Typer turned the KeyboardInterrupt into exit status 130 with not a word on the terminal.
    import likeness.train

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(likeness.train, "export_from_folder", interrupted)
    result = CliRunner().invoke(app, ["--home", str(workspace.home), "model", "export", str(tmp_path / "model")])
    assert result.exit_code == 130, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "interrupted: likeness model export stopped before it finished; run the same command again to finish it"
    ]
