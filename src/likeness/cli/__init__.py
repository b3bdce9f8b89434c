"""The ``likeness`` command line: thin commands that parse, call one library function, map errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from likeness.config import Settings

app = typer.Typer(
    name="likeness",
    help="Consent-first synthetic media: make it, label it, verify it.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Optional[Path],
        typer.Option("--home", help="Workspace folder (default ./likeness-home, env LIKENESS_HOME)."),
    ] = None,
) -> None:
    """likeness: consent registry, synthesis, labelling and verification."""
    overrides = {"home": home} if home is not None else {}
    ctx.obj = Settings(**overrides)


def _register_all() -> None:
    # Each area owns one module with a ``register(app)`` function.
    from likeness.cli import consent, db, demo, faceset, provenance, render, service, train, verify

    for module in (consent, faceset, train, render, provenance, verify, db, demo, service):
        module.register(app)


_register_all()


def _quiet_third_party_logs() -> None:
    """Native face-model logs (TFLite/absl) and a protobuf deprecation notice are noise to users."""
    import os
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
    # Worker processes (folder scans) start fresh interpreters: pass the same filter on.
    quiet = "ignore:SymbolDatabase.GetPrototype:UserWarning"
    inherited = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = f"{inherited},{quiet}" if inherited else quiet


def main() -> None:
    from likeness.cli.native_logs import filter_native_stderr

    _quiet_third_party_logs()
    filter_native_stderr()
    app()
