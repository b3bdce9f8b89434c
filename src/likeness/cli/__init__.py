"""The ``likeness`` command line: thin commands that parse, call one library function, map errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from likeness.config import Settings

app = typer.Typer(
    name="likeness",
    help="Consent-first synthetic media: make it, label it, verify it.",
    no_args_is_help=True,
    # Plain Click help: it wraps to the terminal (80 columns included) without cutting option
    # names, and shows no value placeholder for on/off flags.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Workspace folder (default ./likeness-home, env LIKENESS_HOME)."),
    ] = None,
) -> None:
    """likeness: consent registry, synthesis, labelling and verification."""
    ctx.obj = Settings(home=home) if home is not None else Settings()


def _register_all() -> None:
    # Each area owns one module with a ``register(app)`` function.
    from likeness.cli import (
        assets,
        cases,
        consent,
        db,
        demo,
        detector,
        faceset,
        holder,
        provenance,
        render,
        scan,
        service,
        train,
        verify,
    )

    for module in (
        consent,
        holder,
        faceset,
        train,
        render,
        provenance,
        verify,
        scan,
        cases,
        db,
        demo,
        service,
        assets,
        detector,
    ):
        module.register(app)
    _readable_help(app)


def _readable_help(group: typer.Typer) -> None:
    """Every command's help through ``ReadableHelpCommand`` (repeatable arguments by metavar)."""
    from typer.core import TyperCommand

    from likeness.cli.common import ReadableHelpCommand

    for command in group.registered_commands:
        if command.cls in (None, TyperCommand):  # Typer's default; a command's own class stays
            command.cls = ReadableHelpCommand
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _readable_help(sub.typer_instance)


_register_all()


def _quiet_third_party_logs() -> None:
    """Native face-model logs (TFLite/absl) and a protobuf deprecation notice are noise to users
    (the CLI's settings, not the library's). The ONNX exporter's notices are the library's to
    keep quiet (``likeness.onnx_export``)."""
    import os
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
    # Worker processes (folder scans) start fresh interpreters: pass the same filter on.
    quiet = "ignore:SymbolDatabase.GetPrototype:UserWarning"
    inherited = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = f"{inherited},{quiet}" if inherited else quiet


def configure_logging(level: int = logging.WARNING) -> None:
    """The library logs through ``logging.getLogger(__name__)`` and configures nothing; the CLI
    shows its warnings and errors on stderr, as one line each (the root logger is left alone)."""
    from rich.logging import RichHandler

    from likeness.cli.common import err_console, printable

    class PrintableMessages(logging.Formatter):
        """A record's message escaped as every printed path is (it quotes file names)."""

        def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
            return printable(super().formatMessage(record))

    library = logging.getLogger("likeness")
    if any(getattr(handler, "likeness_cli", False) for handler in library.handlers):
        return
    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    handler.setFormatter(PrintableMessages())
    handler.likeness_cli = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    library.addHandler(handler)
    library.setLevel(level)


def main() -> None:
    from likeness.cli.native_logs import filter_native_stderr

    _quiet_third_party_logs()
    configure_logging()
    filter_native_stderr()
    app()
