"""CLI: the end-to-end demo."""

from __future__ import annotations

import typer

from likeness.cli.common import console, mapped_errors, settings_from


def demo(ctx: typer.Context) -> None:
    """Run the whole story on generated media: consent, extraction, training, render, verify."""
    import os

    from likeness.train.cpu_threads import prefer_passive_openmp_wait

    # As for `likeness train`: before anything imports PyTorch, whose OpenMP runtime reads it once.
    prefer_passive_openmp_wait(os.environ)
    from likeness.demo import run_demo

    with mapped_errors():
        run_demo(settings_from(ctx), console)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
