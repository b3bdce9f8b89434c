"""CLI for the learned manipulation detector:
``likeness detector train | export-general | evaluate | register | unregister | list``."""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
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

detector_app = typer.Typer(
    help="The learned manipulation detector: train, evaluate on held-out media, register per artist "
    "(verify uses a registered one only while its measured gates hold; docs/detector.md).",
    no_args_is_help=True,
)


@detector_app.command("train")
def train(
    real: Annotated[
        list[Path],
        typer.Option(
            "--real",
            metavar="DIR",
            help="Folder of authentic face images, one person per file: the file name is the identity (repeatable); "
            "one identity in seven is held out for calibration.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for detector.onnx, its card, the checkpoint and, until the card is written, the aligned "
            "faces (a rerun with the same options and files resumes and aligns only images not aligned yet; "
            "with others it is refused).",
        ),
    ],
    train_only: Annotated[
        list[Path] | None,
        typer.Option(
            "--train-only",
            metavar="DIR",
            help="Folder of an artist's own authentic frames, for training only (repeatable).",
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option("--init", help="Fine-tune from this detector checkpoint.pt instead of the shipped general model."),
    ] = None,
    from_imagenet: Annotated[
        bool,
        typer.Option(
            "--from-imagenet",
            help="Start from the ImageNet MobileNetV2 backbone (how the general model is trained) instead of "
            "the shipped general model.",
        ),
    ] = False,
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
    """Train a detector on authentic faces only (Self-Blended Images), calibrate it and export ONNX.

    Starts from the general detector shipped in the package (a fine-tune; its card records the
    start and inherits the general model's training files) unless --init or --from-imagenet says
    otherwise. Ctrl-C keeps what is done (each aligned face, or a checkpoint of the step in
    flight) and prints the command that continues; exit status 130."""
    from likeness.detector.train import (
        CHECKPOINT_FILE,
        AlignmentInterrupted,
        DetectorTrainConfig,
        train_from_folders,
    )
    from likeness.train.loop import TrainingInterrupted

    if init and from_imagenet:
        fail("--init and --from-imagenet each choose where training starts: give one")
    config = DetectorTrainConfig(
        steps=steps,
        threads=threads,
        target_fpr=target_fpr,
        start="imagenet" if from_imagenet else "general",
        init_checkpoint=str(init) if init else None,
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
        # A rerun of the same command with the same files resumes (another is refused).
        resume_with = train_command(real, out, train_only, init, from_imagenet, steps, threads, target_fpr)
        try:
            card = train_from_folders(
                real,
                out,
                train_only=train_only or (),
                config=config,
                progress=lambda stage, d, t, loss: bar.update(task, description=stage, completed=d, total=t),
            )
        except AlignmentInterrupted as stopped:
            bar.stop()
            interrupted_alignment(stopped.done, stopped.total, stopped.folder, resume_with)
        except TrainingInterrupted as stopped:
            bar.stop()
            interrupted_training(stopped.checkpoint_path, resume_with, iteration=stopped.iteration)
        except KeyboardInterrupt:
            bar.stop()
            interrupted_training(out / CHECKPOINT_FILE, resume_with)
    validation = card["validation"]
    console.print(
        f"{printable(out / card['file'])}: SBI AUC {validation['sbi_auc']:.3f} on {validation['faces']} held-out faces; "
        f"threshold {card['calibration']['threshold_probability']:.3f} at "
        f"{card['calibration']['target_false_positive_rate']:.0%} false positives",
    )
    note = threshold_note(card)
    if note:
        err_console.print(Text.assemble(("note", "yellow"), f": {printable(note)}"))


def interrupted_alignment(done: int, total: int, folder: Path | None, resume_command: str) -> NoReturn:
    """Say in one line how many images a Ctrl-C during alignment left aligned and kept, and the
    command that goes on from them; exit 130."""
    kept = f"kept in {printable(folder)}" if folder is not None else "not kept"
    note = f" while aligning faces: {done} of {total} image(s) aligned and {kept}; continue with: {resume_command}"
    err_console.print(Text.assemble(("interrupted", "yellow"), note))
    raise typer.Exit(130)


def train_command(
    real: list[Path],
    out: Path,
    train_only: list[Path] | None,
    init: Path | None,
    from_imagenet: bool,
    steps: int,
    threads: int,
    target_fpr: float,
) -> str:
    """The ``likeness detector train`` command line of these options, to print for a resume."""
    words = ["likeness", "detector", "train"]
    words += [word for folder in real for word in ("--real", str(folder))]
    words += ["--out", str(out)]
    words += [word for folder in train_only or () for word in ("--train-only", str(folder))]
    words += ["--init", str(init)] if init else []
    words += ["--from-imagenet"] if from_imagenet else []
    words += ["--steps", str(steps), "--threads", str(threads), "--target-fpr", f"{target_fpr:g}"]
    return printable(shlex.join(words))


@detector_app.command("export-general")
def export_general_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write detector.onnx and its card into.")],
) -> None:
    """Write the general detector shipped in the package as a detector folder (ONNX and card), to
    evaluate it on your own media with `likeness detector evaluate`. Verify never uses it unless
    it is registered, and register refuses it while its gates fail (docs/detector.md)."""
    from likeness.detector.general import export_general

    with mapped_errors():
        card = export_general(out)
    validation = card["validation"]
    console.print(
        f"{printable(out / card['file'])}: the general detector (weights sha256 {card['exported_from']['weights_sha256'][:12]}); "
        f"SBI AUC {validation['sbi_auc']:.3f} on {validation['faces']} held-out faces; "
        f"threshold {card['calibration']['threshold_probability']:.3f}",
    )


def threshold_note(card: dict) -> str | None:
    """What to say when the held-out faces are too few for the card's false-positive target to
    mean anything (the threshold is then just above the highest of them), or None."""
    faces, target = int(card["validation"]["faces"]), float(card["calibration"]["target_false_positive_rate"])
    if faces * target >= 1:
        return None
    return (
        f"the threshold was set on {faces} held-out faces, too few to resolve a {target:.0%} false-positive rate "
        f"(it lies just above the highest of them; {math.ceil(1 / target)} or more are needed): give --real "
        "more identities (one in seven is held out); evaluate's gates decide whether verify may use it"
    )


@detector_app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    detector: Annotated[Path, typer.Argument(help="Folder with detector.onnx and detector.card.json.")],
    real: Annotated[
        list[Path],
        typer.Option(
            "--real", metavar="PATH", help="Held-out authentic video, or folder of frames of one clip (repeatable)."
        ),
    ],
    fake: Annotated[
        list[Path],
        typer.Option(
            "--fake", metavar="PATH", help="Held-out manipulated video, or folder of frames of one clip (repeatable)."
        ),
    ],
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help="The enrolled subject (slug or id) it is for: only units verify recognises as them are measured "
            "(needed to register it).",
        ),
    ] = None,
) -> None:
    """Measure a detector on held-out media against the shortcut baselines; write the gates into its card.

    With --subject, each unit's faces are recognised as verify recognises a face track, and the
    gates are measured on the units recognised as that subject (the only ones verify gives its
    detector); the others are listed. Exit status 1 when a gate fails (the card still records
    the evaluation).
    """
    from rich.table import Table

    from likeness.detector.evaluation import bound_says, evaluate_detector, evaluation_subject

    with mapped_errors(), units_progress() as progress:
        if subject is None:
            evaluation = evaluate_detector(detector, real, fake, progress=progress)
        else:
            workspace = open_workspace(ctx)
            try:
                evaluation = evaluate_detector(
                    detector, real, fake, subject=evaluation_subject(workspace, subject), progress=progress
                )
            finally:
                workspace.close()
    for seen in evaluation["recognition"]:
        mark = ("analysed", "") if seen["analysed_by_verify"] else ("verify would not analyse", "yellow")
        console.print(Text.assemble(f"{seen['class']:4}  {printable(seen['unit'])}: ", mark, f": {seen['says']}"))
    for unit in evaluation["no_face"]:
        console.print(
            Text.assemble(
                ("not measured", "yellow"), f": {printable(unit)}: no face found in its frames (as verify samples them)"
            )
        )
    figures = evaluation["figures"]
    table = Table(
        title=f"{printable(detector)}: {figures['units']['real']} real and {figures['units']['fake']} fake units"
    )
    for column in ("method", "frame AUC", "video AUC"):
        table.add_column(column)
    table.add_row("detector", f"{figures['frame_auc']:.3f}", f"{figures['video_auc']:.3f}")
    for name, words in (("face_size", "face size"), ("high_frequency_energy", "high-frequency energy")):
        baseline = figures["baselines"][name]
        table.add_row(f"{words} (best direction)", f"{baseline['frame_auc']:.3f}", f"{baseline['video_auc']:.3f}")
    console.print(table)
    fpr = figures["authentic_false_positive_rate"]
    console.print(
        f"false-positive rate on authentic faces at the card's threshold: {fpr['frame']:.3f} of faces, {fpr['video']:.3f} of units"
    )
    console.print(f"false-positive bound: {bound_says(evaluation['false_positive_bound'])}")
    for gate in evaluation["gates"]:
        verdict = ("holds", "green") if gate["holds"] else ("fails", "bold red")
        console.print(Text.assemble(verdict, f"  {gate['gate']}: {printable(gate['says'])}"))
    if evaluation["subject"] is None:
        console.print(
            Text.assemble(
                ("not for a subject", "yellow"),
                ": every unit was measured, whoever is in it; to register it, evaluate with --subject SUBJECT",
            )
        )
    if not evaluation["passed"]:
        fail("the gates do not hold: verify will not use this detector (the card records why)")


@contextmanager
def units_progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar over evaluation units (each video decoded and its faces found: minutes for a
    few clips), as ``evaluate_detector(progress=)`` reports them."""
    with Progress(
        TextColumn("units"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=err_console
    ) as bar:
        task = bar.add_task("units", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@detector_app.command("register")
def register_command(
    ctx: typer.Context,
    detector: Annotated[Path, typer.Argument(help="Folder with detector.onnx and its evaluated card.")],
    subject: Annotated[str, typer.Option("--subject", help="The enrolled subject (slug or id) it is for.")],
) -> None:
    """Copy an evaluated detector into the workspace for one subject and record it on the ledger.

    Refused unless its card's evaluation was made for this subject (evaluate --subject) and passes
    every gate. A later registration for the same subject replaces this one.
    """
    from likeness.detector.registered import register_detector

    with mapped_errors():
        workspace = open_workspace(ctx)
        try:
            registered = register_detector(workspace, detector, subject)
        finally:
            workspace.close()
    console.print(
        f"registered {registered.model} for {registered.subject_slug} (ledger #{registered.ledger_seq}): "
        f"{printable(registered.folder)}",
    )


@detector_app.command("unregister")
def unregister_command(
    ctx: typer.Context,
    subject: Annotated[
        str, typer.Option("--subject", help="The enrolled subject (slug or id) whose detector to withdraw.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why it is withdrawn (recorded on the ledger).")],
) -> None:
    """Withdraw a subject's registered detector: verify stops using it at once.

    Records detector.unregistered on the ledger (subject, reason, who, the detector's sha256) and
    removes its files from the workspace. Register a detector again to resume.
    """
    import os
    import pwd

    from likeness.detector.registered import unregister_detector

    try:
        # the local account, as this machine knows it (no login of its own): the process's user
        # id, not getpass.getuser(), which takes LOGNAME or USER from the environment first
        by: str | None = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a user id with no account entry
        by = None
    with mapped_errors():
        workspace = open_workspace(ctx)
        try:
            withdrawn = unregister_detector(workspace, subject, reason, by=by)
        finally:
            workspace.close()
    console.print(
        f"withdrew {withdrawn.model} (onnx {withdrawn.onnx_sha256[:16]}, registered at ledger "
        f"#{withdrawn.withdraws_seq}) for {withdrawn.subject_slug} (ledger #{withdrawn.ledger_seq}): verify no "
        "longer analyses their faces for manipulation",
    )


@detector_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Show each subject's registered detector and whether verify can use it now, and the withdrawn ones."""
    from likeness.detector.registered import (
        check_registered,
        registered_detectors,
        withdrawal_says,
        withdrawn_detectors,
    )
    from likeness.verify.gallery import open_gallery

    with mapped_errors():
        workspace = open_workspace(ctx, read_only=True)  # an auditor's read-only copy lists too
        try:
            registered_now = registered_detectors(workspace)
            # the gallery verify would recognise faces with (opened once, only when needed; synced
            # in memory, HOME/gallery left as it is: a read-only workspace cannot take it)
            gallery = open_gallery(workspace, save=False) if registered_now else None
            rows = [(r, check_registered(workspace, r, gallery)) for r in registered_now]
            withdrawn = [(w, withdrawal_says(workspace, w)) for w in withdrawn_detectors(workspace)]
        finally:
            workspace.close()
    if not rows and not withdrawn:
        console.print("no detector is registered")
        return
    for registered, checked in rows:
        used = f"NOT used by verify: {printable(checked)}" if isinstance(checked, str) else "used by verify"
        console.print(
            f"{registered.subject_slug}  {registered.model}  onnx {registered.onnx_sha256[:16]}  "
            f"ledger #{registered.ledger_seq} ({registered.registered_at})  {used}",
        )
        if not isinstance(checked, str):
            console.print(f"    false-positive bound: {listed_bound(checked[1])}")
    for entry, says in withdrawn:
        by = f" by {printable(entry.by)}" if entry.by else ""
        console.print(
            f"{entry.subject_slug}  withdrawn{by}: {entry.model}  onnx {entry.onnx_sha256[:16]}  "
            f"NOT used by verify: {printable(says)}",  # the withdrawal's --reason
        )


def listed_bound(card: dict) -> str:
    """The false-positive bound of a registered detector's card, worked out again from its figures."""
    from likeness.detector.evaluation import bound_says, false_positive_bound
    from likeness.errors import ModelError

    target = float(card["calibration"]["target_false_positive_rate"])
    try:
        return bound_says(false_positive_bound(card["evaluation"], target_fpr=target))
    except ModelError as exc:
        return f"not worked out: {exc}"


def register(app: typer.Typer) -> None:
    """Add ``likeness detector`` to the root app."""
    app.add_typer(detector_app, name="detector")
