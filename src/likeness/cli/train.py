"""CLI for the train area: ``likeness train`` and ``likeness model export|list``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from likeness.cli.common import (
    console,
    err_console,
    fail,
    interrupted_training,
    mapped_errors,
    open_workspace,
    printable,
)
from likeness.train.recipes import CLEARED, LARGE_FACE_PX, MAX_ITERATIONS, describe_recipe, recipe_names

# Built from the recipe table so the help cannot drift from it (recipes.py is torch-free).
_RECIPE_HELP = (
    f"Start from a named recipe: {', '.join(recipe_names())}; options given explicitly win. "
    f"Without --recipe and --res the performer's median face size chooses: {LARGE_FACE_PX:.0f} px "
    "or more gets cpu-overnight-128 (gpu-256 with a CUDA GPU), smaller faces preview. What each "
    "sets and how long it takes: `likeness model recipes`."
)

model_app = typer.Typer(help="Face-swap models: architectures and export.", no_args_is_help=True)


def train(
    ctx: typer.Context,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source", help="Faceset of the consenting subject (the face to render); required unless --resume."
        ),
    ] = None,
    target: Annotated[
        Path | None,
        typer.Option(
            "--target",
            help="Faceset of the released performer (whose performance to keep); required unless --resume.",
        ),
    ] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help=_RECIPE_HELP)] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Architecture: df or liae (default: df; see `likeness model list`).", show_default=False
        ),
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--res",
            help="Face resolution in pixels: 64, 96, 128 or 256 (default: the recipe's; without --recipe, chosen from the performer's face sizes, and 64 when those are small).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="New model folder (checkpoint, metrics, previews); required unless --resume."),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iters",
            min=1,
            max=MAX_ITERATIONS,
            help="Stop after this many iterations in total (default: the recipe's stop: 480 minutes for cpu-overnight-128, 100000 iterations for gpu-256, else 1000 iterations).",
            show_default=False,
        ),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            "--minutes", help="Stop after this many minutes of this session (default: no time limit but the recipe's)."
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in this model folder from its last checkpoint.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch", help="Batch size (default: chosen for the device).")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--lr", help="AdamW learning rate (default: 0.0002).", show_default=False)
    ] = None,
    ema_decay: Annotated[
        float,
        typer.Option("--ema-decay", help="Decay of the weight average used for metrics, previews and export (0: off)."),
    ] = 0.999,
    lr_decay_iters: Annotated[
        int | None,
        typer.Option(
            "--lr-decay-iters",
            help="Lower the learning rate along a cosine to 0.1x over this many iterations (default: constant).",
        ),
    ] = None,
    true_face_power: Annotated[
        float | None,
        typer.Option(
            "--true-face-power",
            min=0.0,
            max=1.0,
            help="df only: weight of a code discriminator that makes swaps look more like the subject (DeepFaceLab's true face; try 0.01; default: off).",
            show_default=False,
        ),
    ] = None,
    flip: Annotated[
        bool | None,
        typer.Option(
            "--flip/--no-flip",
            help="Mirror training faces at random (default: off; more pose variety, but it also mirrors asymmetric features such as a mole or a hair parting).",
            show_default=False,
        ),
    ] = None,
    warp_until: Annotated[
        str | None,
        typer.Option(
            "--warp-until",
            metavar="ITERATION|never",
            help="Stop the random warp from this iteration on, to sharpen the faces late in training; 'never' warps throughout, also over a recipe's stop (default: warp throughout; docs/training.md).",
            show_default=False,
        ),
    ] = None,
    model_option: Annotated[
        list[str] | None,
        typer.Option(
            "--model-option",
            metavar="KEY=VALUE",
            help="Architecture width override, e.g. ae_dims=128 (repeatable; see docs/training.md).",
        ),
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            "--base-model",
            metavar="NAME",
            help="Start from a base model the product pretrained and ships (df-tiny-64-base: df_tiny at 64 px; its card is in likeness/train/weights) instead of random weights; consent is checked as for any run (docs/training.md, 'Base models').",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed reproduces the same weights.")] = 0,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Iterations between checkpoints (consent is rechecked at each).")
    ] = 250,
    preview_every: Annotated[
        int, typer.Option("--preview-every", help="Iterations between preview grids (0: no previews).")
    ] = 250,
    eyes_mouth_priority: Annotated[
        float, typer.Option("--eyes-mouth-priority", help="Extra loss weight on eyes and mouth (0 turns it off).")
    ] = 1.0,
    identity_metrics: Annotated[
        bool,
        typer.Option(
            "--identity-metrics/--no-identity-metrics", help="Measure identity transfer (dlib) at checkpoints."
        ),
    ] = True,
    expression_metrics: Annotated[
        bool,
        typer.Option(
            "--expression-metrics/--no-expression-metrics",
            help="Measure expression fidelity (landmarks) at checkpoints.",
        ),
    ] = True,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads for PyTorch (default: one per core the load average leaves free, at least 1; shown in the progress line).",
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="Arithmetic: auto (float16 on CUDA; bfloat16 on CPUs with native bfloat16, else float32), float32, bfloat16 or float16.",
        ),
    ] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Workers preparing training batches (default: 2 threads on CPU; with CUDA, one process per spare core, up to 8).",
        ),
    ] = None,
    accept_gaps: Annotated[
        bool,
        typer.Option(
            "--accept-gaps",
            help="Train even when the source faceset lacks what the performer does (open mouth, blinks, head turns in at least 10 % of the performer's frames and on fewer than 3 source faces); the gaps are recorded in the model folder and model card (docs/training.md, 'Coverage gate').",
        ),
    ] = False,
    org: Annotated[
        str | None, typer.Option("--org", help="Grantee organisation (default: settings or the only org).")
    ] = None,
) -> None:
    """Train a face-swap model from a consented source faceset to a released performer's faceset."""
    import os

    from likeness.train.cpu_threads import prefer_passive_openmp_wait

    # Before anything imports PyTorch: its OpenMP runtime reads the wait policy once, when it loads.
    prefer_passive_openmp_wait(os.environ)
    from likeness.train import (
        TrainConfig,
        TrainingInterrupted,
        cuda_available,
        recipe_options,
        recipe_stop,
        resolve_recipe,
        resume_training,
        train_from_facesets,
    )

    if iterations is not None and minutes is not None:
        fail("give --iters or --minutes, not both")
    if recipe is not None and resume is not None:
        fail("--recipe applies to new runs; --resume continues with the recipe saved in the model folder")
    model_options = _model_options(model_option or [])  # before the progress bar opens
    with mapped_errors():
        choice = None
        stop: dict[str, Any] = {"iterations": iterations, "minutes": minutes}
        if resume is None:
            if source is None or target is None or out is None:
                fail("--source, --target and --out are required (or --resume MODEL_DIR)")
            choice = resolve_recipe(recipe, resolution=resolution, target_path=target, cuda=cuda_available())
            if not (iterations or minutes):
                stop = recipe_stop(choice.name)
            until = f"{stop['minutes']:g} minutes" if stop["minutes"] else f"{stop['iterations']} iterations"
            given = iterations or minutes
            console.print(
                f"recipe: {choice.name or 'none'} ({printable(choice.reason)}); stops after {until}"
                + (" (as given)" if given else " (the recipe's; --iters or --minutes to change)")
            )
        chosen = recipe_options(
            choice.name if choice else None,
            model=model,
            resolution=resolution,
            batch_size=batch_size,
            learning_rate=learning_rate,
            true_face_power=true_face_power,
            augment={"flip": flip, "warp_until": _warp_until(warp_until)},
            model_options=model_options,
        )
        workspace = open_workspace(ctx)
        try:
            with _TrainProgressBar(iterations) as show:
                if resume is not None:
                    result = resume_training(
                        workspace,
                        resume,
                        iterations=iterations,
                        minutes=minutes,
                        threads=threads,
                        org=org,
                        progress=show,
                    )
                else:
                    if source is None or target is None or out is None:
                        fail("--source, --target and --out are required (or --resume MODEL_DIR)")
                    config = TrainConfig(
                        **chosen,
                        iterations=stop["iterations"],
                        minutes=stop["minutes"],
                        ema_decay=ema_decay,
                        lr_decay_iters=lr_decay_iters,
                        seed=seed,
                        checkpoint_every=checkpoint_every,
                        preview_every=preview_every,
                        eyes_mouth_priority=eyes_mouth_priority,
                        identity_metrics=identity_metrics,
                        expression_metrics=expression_metrics,
                        workers=workers,
                        precision=precision,
                        threads=threads,
                        recipe=choice.to_dict() if choice else None,
                        base_model=base_model,
                    )
                    result = train_from_facesets(
                        workspace, source, target, out, config, org=org, accept_gaps=accept_gaps, progress=show
                    )
        except TrainingInterrupted as stopped:
            model_dir = stopped.checkpoint_path.parent
            resume_with = f"likeness train --resume {printable(model_dir)}"
            interrupted_training(stopped.checkpoint_path, resume_with, iteration=stopped.iteration)
        except KeyboardInterrupt:
            folder = resume or out
            saved = folder / "checkpoint.pt" if folder is not None else None
            interrupted_training(saved, f"likeness train --resume {printable(folder)}")
    stop_words = {"iterations": "its iteration count reached", "minutes": "its time limit reached"}
    console.print(
        f"trained {result.iterations} iterations ({stop_words.get(result.stop_reason, result.stop_reason)}) "
        f"on {result.device}, "
        f"batch {result.batch_size}, {result.training_seconds / 60:.1f} min → {printable(result.model_dir)}"
    )
    checked = result.coverage_check or {}
    for gap in checked.get("gaps", []):
        label = ("gap accepted", "bold yellow") if gap["severe"] else ("gap", "yellow")
        err_console.print(Text.assemble("  ", label, f" {gap['sentence']}"))
    if checked.get("accepted"):
        err_console.print(
            f"  severe coverage gaps were accepted (--accept-gaps); recorded in "
            f"{printable(result.model_dir / 'coverage_check.json')} and the model card"
        )
    metrics = held_out_summary(result.metrics)
    if metrics:
        console.print(f"held-out: {metrics}")


def held_out_summary(metrics: dict[str, object]) -> str:
    """The scalar held-out metrics as ``name=value`` pairs: rates and distances to three places,
    counts (faces still nearer the performer, faces measured) as whole numbers."""
    parts = []
    for name, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{name}={value:.3f}")
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{name}={value}")
    return ", ".join(parts)


def _warp_until(text: str | None) -> object:
    """``--warp-until``: None (not given), ``CLEARED`` for "never", or an iteration number >= 0."""
    if text is None:
        return None
    word = text.strip().lower()
    if word == "never":
        return CLEARED
    if not word.isdigit():
        fail(f"--warp-until {text!r}: expected an iteration number >= 0 or 'never'")
    return int(word)


def _model_options(items: list[str]) -> dict[str, int | bool]:
    """``["ae_dims=128", "double_res=false"]`` -> ``{"ae_dims": 128, "double_res": False}``."""
    options: dict[str, int | bool] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--model-option {item!r}: expected KEY=VALUE")
        text = value.strip().lower()
        if text in ("true", "false"):
            options[key.strip()] = text == "true"
        else:
            try:
                options[key.strip()] = int(text)
            except ValueError:
                fail(f"--model-option {item!r}: value must be an integer, true or false")
    return options


class _TrainProgressBar:
    """Rich progress bar fed by ``TrainProgress`` events: iteration, losses, it/s and ETA.

    Until the first event a transient spinner shows that the facesets are loading, so a run
    refused before training (consent, facesets, options) prints only its error line.
    """

    #: Without a terminal (piped, logged, a service job) a bar cannot redraw and Rich cuts its
    #: final line at 80 columns: print whole lines instead, at most this often, plus every event.
    PLAIN_EVERY_S = 30.0

    def __init__(self, total: int | None) -> None:
        self.plain = not err_console.is_terminal
        self.last_plain = -math.inf
        columns = (
            TextColumn("train", style="bold"),
            BarColumn(),
            TextColumn("{task.completed}/{task.fields[total_text]}"),
            TextColumn("src {task.fields[loss_s]:.3f} dst {task.fields[loss_t]:.3f}"),
            TextColumn("{task.fields[rate]:.2f} it/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[threads]}"),
            TextColumn("{task.fields[note]}"),
        )
        self.bar = Progress(*columns, console=err_console, transient=False)
        self.total = total
        self.status = err_console.status(
            Text.assemble(("train", "bold"), " checking consent, loading facesets, building the model…")
        )
        self.started = False

    def _start(self) -> None:
        self.status.__exit__(None, None, None)
        self.bar.__enter__()
        self.task = self.bar.add_task(
            "train",
            total=self.total,
            total_text=self.total or "?",
            loss_s=0.0,
            loss_t=0.0,
            rate=0.0,
            note="",
            threads="",
        )
        self.started = True

    def __enter__(self):
        self.status.__enter__()

        def show(event) -> None:
            if self.plain:
                self._show_plain(event)
                return
            if not self.started:
                self._start()
            if event.event != "step":
                note = (
                    "interrupted: saving a checkpoint (Ctrl-C again: quit without it)"
                    if event.event == "interrupted"
                    else f"{event.event} @ {event.iteration}"
                )
                self.bar.update(self.task, note=note)
                return
            fields = {
                "loss_s": event.loss_source,
                "loss_t": event.loss_target,
                "rate": event.it_per_s,
                "threads": f"cpu {event.cpu_threads}" if event.cpu_threads else "",
            }
            if event.total is None and event.eta_s is not None and math.isfinite(event.eta_s) and event.it_per_s > 0:
                fields["total_text"] = f"~{event.iteration + int(event.eta_s * event.it_per_s)}"
            self.bar.update(self.task, completed=event.iteration, total=event.total, **fields)

        return show

    def _show_plain(self, event) -> None:
        now = time.monotonic()
        last = event.total is not None and event.iteration >= event.total
        if event.event == "step" and not last and now - self.last_plain < self.PLAIN_EVERY_S:
            return
        self.last_plain = now
        err_console.print(plain_progress_line(event))

    def __exit__(self, *exc) -> None:
        if self.started:
            self.bar.__exit__(*exc)
        else:
            self.status.__exit__(*exc)


def plain_progress_line(event) -> str:
    """One whole line of training progress, for logs and pipes.

    >>> from likeness.train.config import TrainProgress
    >>> plain_progress_line(TrainProgress(250, 1000, 0.1234, 0.2, 3.21, 233.6, cpu_threads="1 thread"))
    'train 250/1000 src 0.123 dst 0.200 3.21 it/s eta 3 min 54 s cpu 1 thread'
    >>> plain_progress_line(TrainProgress(500, None, 0.1, 0.2, 3.0, None, event="checkpoint"))
    'train 500 src 0.100 dst 0.200 3.00 it/s checkpoint saved'
    """
    parts = [f"train {event.iteration}" + (f"/{event.total}" if event.total else "")]
    parts.append(f"src {event.loss_source:.3f} dst {event.loss_target:.3f} {event.it_per_s:.2f} it/s")
    if event.eta_s is not None and math.isfinite(event.eta_s):
        minutes, seconds = divmod(round(event.eta_s), 60)
        parts.append(f"eta {minutes} min {seconds} s" if minutes else f"eta {seconds} s")
    if event.event != "step":
        parts.append({"checkpoint": "checkpoint saved", "preview": "preview written"}.get(event.event, event.event))
    if event.cpu_threads:
        parts.append(f"cpu {event.cpu_threads}")
    return " ".join(parts)


@model_app.command("export")
def export(
    ctx: typer.Context,
    model_dir: Annotated[Path, typer.Argument(help="Model folder written by `likeness train`.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for model.onnx and model_card.json (default: the model folder)."),
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Grantee organisation (default: settings or the only org).")
    ] = None,
) -> None:
    """Export the swap path to ONNX with a model card; records model.exported on the ledger."""
    from likeness.train import export_from_folder
    from likeness.train.quantize import describe_int8

    # Tens of seconds on a CPU (the exporter, its check against PyTorch, the int8 copy's
    # calibration) that used to pass without a word.
    working = Text.assemble(("export", "bold"), " ONNX, checked against PyTorch, and an int8 copy when it can…")
    with mapped_errors(), err_console.status(working):
        result = export_from_folder(open_workspace(ctx), model_dir, out_dir=out, org=org)
    console.print(
        f"exported {printable(result.onnx_path)} (sha256 {result.card['onnx_sha256'][:16]}…, "
        f"max |onnx - torch| {result.max_abs_difference:.1e}) and {printable(result.card_path)}"
    )
    console.print(describe_int8(result.card.get("int8")))


@model_app.command("list")
def list_architectures() -> None:
    """List the registered face-swap architectures."""
    from likeness.models import list_models, model_description

    table = Table("name", "description")
    for name in list_models():
        table.add_row(name, model_description(name))
    console.print(table)


@model_app.command("recipes")
def list_recipes() -> None:
    """List the training recipes: resolution, settings, and measured or extrapolated time."""
    table = Table("recipe", "what it sets and how long it takes")
    for name in recipe_names():
        table.add_row(name, describe_recipe(name))
    console.print(table)
    console.print("likeness train --recipe NAME (docs/training.md, 'Resolution and recipes')")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("train")(train)
    app.add_typer(model_app, name="model")
