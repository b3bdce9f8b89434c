"""Shared plumbing for CLI commands: settings from the root callback, one console, error mapping."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn, TextIO

import typer
from rich.console import Console
from rich.text import Text
from typer import _click as click
from typer._click.globals import get_current_context
from typer.core import TyperCommand

from likeness.config import Settings
from likeness.durable import write_atomic
from likeness.errors import ConfigError, ConsentError, LikenessError, OptionError
from likeness.report_text import printable

# soft_wrap: never break printed paths and ids across lines (tables still fit the terminal).
# markup=False: what the commands print carries paths, names and library text, where "[/x]"
# would be read as Rich markup (and crash); styles are given as Text.assemble parts instead.
console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class ReadableHelpCommand(TyperCommand):
    """Typer's help shows a repeatable argument's Python type (``paths... <list[Path]>``); this
    shows its metavar instead (``PATH...``), as options with a metavar already read. A Ctrl-C
    that a command does not answer itself gets one line, not Typer's bare exit status 130."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Commands that keep work (extract, train, render, verify, scan) say what they kept
            # and exit 130 themselves; this is every other command's line.
            note = f": {ctx.command_path} stopped before it finished; run the same command again to finish it"
            err_console.print(Text.assemble(("interrupted", "yellow"), note))
            raise typer.Exit(130) from None

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "option":
                options.append(record)
                continue
            if param.nargs != 1:
                record = (f"{param.metavar or (param.name or 'value').upper()}...", record[1])
            arguments.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def read_input(path: Path, what: str) -> bytes:
    """The bytes of a file the user named (a public key, evidence), or a ConfigError naming it and
    why not (missing, a folder, unreadable) instead of the OS error's traceback."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def read_trust_anchors(paths: list[Path] | None) -> list[str]:
    """The PEM text of each ``--anchor`` file, checked to hold X.509 certificates before any
    file is verified: a file that holds none is refused naming it (it used to be a note on
    every file's C2PA, each then "could not be read")."""
    from likeness.provenance.certificates import parse_trust_anchor

    anchors = []
    for path in paths or []:
        try:
            text = read_input(path, "trust anchor").decode("ascii")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a PEM trust anchor (not ASCII text)") from None
        parse_trust_anchor(text, source=str(path))
        anchors.append(text)
    return anchors


def new_output_file(path: Path) -> Path:
    """``path`` if a new file can go there: refused (before any work, so nothing is drafted
    for a file that cannot be written) when it exists or its folder does not."""
    if path.exists():
        raise ConfigError(f"{path}: already exists; refusing to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: its folder {path.parent} does not exist")
    return path


def write_new_json(path: Path, data: object) -> None:
    """Write ``data`` as indented UTF-8 JSON to a new file, whole (never over an existing one)."""
    import json

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        write_atomic(new_output_file(path), text.encode("utf-8"), overwrite=False)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write it ({exc.strerror or exc})") from None


def settings_from(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def open_workspace(ctx: typer.Context, *, read_only: bool = False):  # -> Workspace (import kept lazy for fast --help)
    """The workspace of ``--home``; ``read_only`` for commands that only read the database (they
    then read a workspace on a read-only mount or copy; see ``Workspace.open``)."""
    from likeness.workspace import Workspace

    return Workspace.open(settings_from(ctx), read_only=read_only)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("error:", "bold red"), f" {printable(message)}"))
    raise typer.Exit(code)


def interrupted_training(checkpoint: Path | None, resume_command: str, *, iteration: int | None = None) -> NoReturn:
    """Say what a Ctrl-C of a training run kept and how to go on from it, and exit 130: with
    ``iteration``, the stop saved ``checkpoint`` there; without, it came before a checkpoint
    could be saved, and ``checkpoint`` is the last one saved before, when there is one.
    ``resume_command``: the command line that continues the run from ``checkpoint``."""
    if iteration is not None and checkpoint is not None:
        note = (
            f" at iteration {iteration}: checkpoint saved to {printable(checkpoint)}\n  continue with: {resume_command}"
        )
    elif checkpoint is not None and checkpoint.is_file():
        note = f" before a checkpoint could be saved; the last one is {printable(checkpoint)} ({resume_command})"
    else:
        note = " before a checkpoint could be saved; nothing was kept"
    err_console.print(Text.assemble(("interrupted", "yellow"), note))
    raise typer.Exit(130)


def notice(message: str) -> None:
    """One line on stderr for something the user should know that is not a failure."""
    err_console.print(Text.assemble(("notice:", "yellow"), f" {printable(message)}"))


def _warning_as_notice(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    # ``warnings.showwarning`` signature. Python's own format adds the library's file, line and
    # source text, which means nothing to a user; the message alone does.
    notice(" ".join(str(message).split()))


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Turn product errors, and OS errors naming a file, into a one-line message and exit code 1
    (a consent refusal too, as ``refused (reason): message``; exit code 2 is Click's, for usage
    errors; an option refused by its API field is named by the command's own flag), and warnings
    shown meanwhile (by the filters in force) into one-line notices."""
    with warnings.catch_warnings():
        warnings.showwarning = _warning_as_notice
        try:
            yield
        except ConsentError as exc:
            err_console.print(Text.assemble(("refused", "bold red"), f" ({exc.reason}): {printable(exc)}"))
            raise typer.Exit(1) from None
        except OptionError as exc:
            fail(exc.naming(option_names()))
        except LikenessError as exc:
            fail(str(exc))
        except OSError as exc:
            # A path the system refuses (unreadable, a name too long, a file where a folder
            # should be): one line naming it. An error naming no file is no user's path; it stays
            # a traceback.
            if exc.filename is None:
                raise
            fail(f"{exc.filename}: {exc.strerror or exc}")
        except Exception as exc:
            from likeness.consent.ledger import database_busy

            if not database_busy(exc):
                raise
            fail(
                "the workspace database is busy: another command or the service held its write lock "
                "past the 30 s wait; try again"
            )


def option_names() -> dict[str, str]:
    """The running command's options by parameter name (``thin_rims`` -> ``--thin-rims``): the
    one mapping from the library's field names to what the user typed."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return {}
    return {
        param.name: param.opts[0]
        for param in ctx.command.params
        if param.param_type_name == "option" and param.name is not None
    }
