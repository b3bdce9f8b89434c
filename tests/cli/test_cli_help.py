"""``--help`` of every command reads at 80 columns: option names whole, help text wrapped to
the terminal (not to a narrow column), and on/off flags shown without a value placeholder."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from likeness.cli import app

WIDTH = 80


def _commands() -> list[tuple[list[str], Any]]:
    """Every command and group of the app, with the words that reach it."""
    root = typer.main.get_command(app)
    found: list[tuple[list[str], Any]] = []

    def walk(words: list[str], command: Any) -> None:
        found.append((words, command))
        if hasattr(command, "commands"):  # a group (Typer ships its own copy of Click)
            for name, sub in command.commands.items():
                walk([*words, name], sub)

    walk([], root)
    return found


COMMANDS = _commands()


@pytest.mark.parametrize("words,command", COMMANDS, ids=[" ".join(w) or "likeness" for w, _ in COMMANDS])
def test_help_reads_at_80_columns(words: list[str], command: Any) -> None:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    text = result.output
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, text
    assert "…" not in text, text  # nothing cut short
    assert "<bool>" not in text, text  # a flag takes no value
    # a repeatable option or argument names what each value is (DIR, FILE, PEM, PATH...), not
    # the Python type (Typer's own help shows ``paths... <list[Path]>`` for an argument)
    assert "<list[" not in text, text
    for param in command.params:
        if param.param_type_name == "option":
            for name in [*param.opts, *param.secondary_opts]:
                assert name in text, (name, text)
    # Help text uses the width: a paragraph of prose is not squeezed into a narrow column.
    prose = [line for line in lines if len(line.split()) >= 4]
    if len(prose) >= 4:
        assert max(len(line) for line in prose) >= WIDTH // 2, text


def test_flags_show_no_value_placeholder() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    flip = next(line for line in result.output.splitlines() if "--flip" in line)
    assert flip.split()[:3] == ["--flip", "/", "--no-flip"], flip


def test_a_repeatable_argument_reads_as_its_metavar() -> None:
    result = CliRunner().invoke(app, ["verify", "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    assert any(line.split()[:2] == ["PATH...", "Image"] for line in result.output.splitlines()), result.output
