"""CLI for the learned manipulation detector: ``likeness detector train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from likeness.cli.common import console, err_console, mapped_errors

detector_app = typer.Typer(
    help="The learned manipulation detector (measured in docs/detector.md; verify does not use it yet).",
    no_args_is_help=True,
)


@detector_app.command("train")
def train(
    real: Annotated[
        list[Path],
        typer.Option(
            "--real",
            help="Folder of authentic face images (repeatable); one identity in seven is held out for calibration.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for detector.onnx, its card and the checkpoint (a rerun resumes).")
    ],
    train_only: Annotated[
        list[Path] | None,
        typer.Option(
            "--train-only", help="Folder of an artist's own authentic frames, for training only (repeatable)."
        ),
    ] = None,
    init: Annotated[Path | None, typer.Option("--init", help="Fine-tune from this detector checkpoint.pt.")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimiser steps.")] = 700,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads for torch.")] = 1,
    target_fpr: Annotated[
        float,
        typer.Option(
            "--target-fpr",
            min=0.001,
            max=0.5,
            help="False-positive rate on held-out authentic faces that sets the threshold.",
        ),
    ] = 0.05,
) -> None:
    """Train a detector on authentic faces only (Self-Blended Images), calibrate it and export ONNX."""
    from likeness.detector.train import DetectorTrainConfig, train_from_folders

    config = DetectorTrainConfig(
        steps=steps, threads=threads, target_fpr=target_fpr, init_checkpoint=str(init) if init else None
    )
    with (
        mapped_errors(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=err_console,
        ) as bar,
    ):
        task = bar.add_task("align", total=None)
        card = train_from_folders(
            real,
            out,
            train_only=train_only or (),
            config=config,
            progress=lambda stage, d, t, loss: bar.update(task, description=stage, completed=d, total=t),
        )
    validation = card["validation"]
    console.print(
        f"{out / card['file']}: SBI AUC {validation['sbi_auc']:.3f} on {validation['faces']} held-out faces; "
        f"threshold {card['calibration']['threshold_probability']:.3f} at "
        f"{card['calibration']['target_false_positive_rate']:.0%} false positives"
    )


def register(app: typer.Typer) -> None:
    """Add ``likeness detector`` to the root app."""
    app.add_typer(detector_app, name="detector")
