"""Long steps show that they are working."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from likeness.cli import app
from likeness.errors import ConfigError


def test_model_export_shows_what_it_is_doing_while_it_works(workspace, monkeypatch, tmp_path: Path) -> None:
    # Tens of seconds on a CPU passed without a word before the result line.
    import likeness.cli.train
    import likeness.train

    terminal = io.StringIO()
    monkeypatch.setattr(likeness.cli.train, "err_console", Console(file=terminal, force_terminal=True, width=120))
    shown: list[str] = []

    def on_screen() -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # the text, not its styles

    def exporting(*_, **__):
        deadline = time.monotonic() + 10  # the status line is drawn by its refresh thread
        while "export ONNX" not in on_screen() and time.monotonic() < deadline:
            time.sleep(0.05)
        shown.append(on_screen())  # what the terminal shows while the export runs
        raise ConfigError("stop here")

    monkeypatch.setattr(likeness.train, "export_from_folder", exporting)
    result = CliRunner().invoke(app, ["--home", str(workspace.home), "model", "export", str(tmp_path / "model")])
    assert result.exit_code == 1 and "stop here" in result.output
    assert "export ONNX, checked against PyTorch, and an int8 copy when it can" in shown[0]
