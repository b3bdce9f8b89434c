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


#: Options whose absence is the plain reading of the help ("Only this subject", "Also write
#: ... to this file"): nothing happens without them, so there is no default to state.
NOTHING_WITHOUT_IT = {
    "init --org",
    "train --recipe",
    "train --resume",
    "train --base-model",
    "verify --report",
    "scan --report",
    "subject add --owner-org",
    "subject add --holder",
    "subject add --holder-public-key",
    "consent list --subject",
    "consent list --org",
    "consent recover-key --evidence",
    "consent recover-passkey --evidence",
    "consent adopt-holder --evidence",
    "release list --performer",
    "audit verify --head",
    "audit head --out",
    "audit log --type",
    "holder sign --previews",
    "detector train --init",
    "detector evaluate --subject",
}


def test_every_option_without_a_value_of_its_own_says_what_happens_without_it() -> None:
    # A new user read `train --help` as if --source, --target and --out were optional, and
    # --holder-kind, --max-renders, --name, --minutes, --days and --org without what they default to.
    unsaid = []
    for words, command in COMMANDS:
        for param in command.params:
            if param.param_type_name != "option" or param.required or param.is_flag or param.multiple:
                continue
            name = " ".join([*words, param.opts[0]])
            help_text = (param.help or "").lower()
            said = "default" in help_text or "required unless" in help_text
            if param.default is None and name not in NOTHING_WITHOUT_IT and not said:
                unsaid.append(name)
    assert unsaid == []
