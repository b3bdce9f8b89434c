"""CLI: ``likeness verify PATH...``: verdicts for images and videos found anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.text import Text

from likeness.cli.common import (
    console,
    err_console,
    fail,
    mapped_errors,
    open_workspace,
    printable,
    read_trust_anchors,
    settings_from,
)
from likeness.durable import ORPHAN_AGE_S

_VERDICT_STYLES = {
    "error": "bold white on red",
    "tampered": "bold red",
    "authorized-synthetic": "bold green",
    "synthetic-consent-revoked": "bold yellow",
    "synthetic-other-issuer": "bold blue",
    "no-face": "dim",
    "enrolled-artist-suspected-manipulation": "bold red",
    "suspected-manipulation": "bold red",
    "enrolled-artist-unlabelled": "bold magenta",
    "no-enrolled-artist": "white",
}


def verify(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Image or video files, or folders to scan (no URLs).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per file (schema: docs/verify.md).")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write an evidence pack per file (JSON, HTML, zip) into this folder. Temporaries a killed "
            "writer left there are removed first (only those whose process has ended, untouched for "
            f"{ORPHAN_AGE_S // 60} minutes).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Parallel processes (default: the workspace setting)."),
    ] = None,
    anchors: Annotated[
        list[Path] | None,
        typer.Option("--anchor", metavar="PEM", help="Extra C2PA trust anchor (PEM file); repeatable."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Verify again files already verified with the same hash.")
    ] = False,
) -> None:
    """Verify media: C2PA provenance, likeness watermark, enrolled artists; print a verdict per file.

    Exit status 1 when any file could not be read (verdict ``error``), after every verdict is printed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from likeness.config import resolve_user_path
    from likeness.verify.scan import VerificationInterrupted, iter_media_files, verify_many

    with mapped_errors():
        for path in paths:  # a symbolic link loop is named as one (``exists`` says False for it)
            resolve_user_path(path, "give an image, a video or a folder")
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            fail("not found: " + ", ".join(missing))
        extra_anchors = read_trust_anchors(anchors)
    with mapped_errors():
        workspace = open_workspace(ctx)
        total = sum(1 for _ in iter_media_files(paths))
        worker_count = workers or settings_from(ctx).workers
        progress = Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=err_console,
            transient=True,
            disable=total <= 1,
        )
        with progress:
            task = progress.add_task("", total=total)

            def advance(done: int, _total: int, result) -> None:
                progress.update(task, completed=done, description=Path(result.path).name[:40])

            try:
                results = verify_many(
                    workspace,
                    paths,
                    workers=worker_count,
                    report_dir=report,
                    progress=advance,
                    extra_anchors=extra_anchors,
                    force=force,
                )
            except VerificationInterrupted as stopped:
                progress.stop()
                _interrupted(stopped.done, stopped.total, stopped.summary, report)
    printed = 0
    try:
        for result in results:
            if as_json:
                # JSON Lines on stdout, untouched by Rich (no wrapping or colour inside the JSON).
                typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
            else:
                _print_result(result)
            printed += 1
    except KeyboardInterrupt:
        summary = report / "results.json" if report is not None else None  # verify_many wrote it
        _interrupted(len(results), len(results), summary, report, printed=printed)
    if report is not None and not as_json:
        console.print(f"evidence packs in {report}")
    if total == 0:
        err_console.print("no image or video files found")
    unreadable = sum(result.verdict.code == "error" for result in results)
    if unreadable:
        # Every verdict is printed first; the exit status tells a script that some file got none.
        err_console.print(f"{unreadable} of {len(results)} file(s) could not be verified (verdict 'error')")
        raise typer.Exit(1)


def _interrupted(
    done: int, total: int, summary: Path | None, report: Path | None, *, printed: int | None = None
) -> NoReturn:
    """Say what a Ctrl-C left behind and exit 130. Verdicts are printed only once every file
    is done, after the summary (``--report``) is written: a stop after the last file loses
    only those, and a rerun analyses nothing again. ``printed``: verdicts printed whole before
    a stop while printing (None: printing had not begun)."""
    again = "(files verified unchanged are not analysed again)"
    if done < total:
        note = (
            f"after {done} of {total} file(s): their results are kept; rerun the same command to verify the "
            f"rest {again}"
        )
    else:
        verified = f"after all {total} file(s) were verified"
        if summary is not None:
            verified += f" and the summary {summary} was written"
        when = (
            "before their verdicts were printed"
            if printed is None
            else f"while their verdicts were printed ({printed} of {total} printed in full)"
        )
        todo = "print them"
        if report is not None and summary is None:
            when += f" and the summary {report / 'results.json'} was written"
            todo += " and write it"
        note = f"{verified}, {when}: the results are kept; rerun the same command to {todo} {again}"
    err_console.print(Text.assemble(("interrupted", "yellow"), f" {note}"))
    raise typer.Exit(130)


def _print_result(result) -> None:
    style = _VERDICT_STYLES.get(result.verdict.code, "white")
    suffix = " (unchanged since last verification)" if result.resumed else ""
    # The path and the evidence carry others' text (a file's name, a manifest's signer).
    console.print(Text.assemble((result.verdict.code, style), f"  {printable(result.path)}{suffix}"))
    label = result.visible_label if result.visible_label is not None and result.visible_label.present else None
    label_said = False
    for sentence in result.verdict.evidence[:4]:
        if label is not None and sentence.startswith("a visible AI label"):
            # The verdict's sentence says what the label means; the place is added to it, once.
            sentence = f"{sentence} ({_label_place(label)})"
            label_said = True
        console.print(f"    {printable(sentence)}")
    if label is not None and not label_said:
        console.print(f"    visible AI label: present ({_label_place(label)})")
    for error in result.errors:
        if result.verdict.code != "error":
            console.print(f"    note ({error.stage}): {printable(error.reason)}")


def _label_place(label) -> str:
    """Where the visible label was read: 'match 0.91 at 12, 300, 180, 330 (2.4 s)'."""
    where = f" at {', '.join(map(str, label.where))}" if label.where else ""
    when = f" ({label.frame_timestamp_s:.1f} s)" if label.frame_timestamp_s else ""
    return f"match {label.score:.2f}{where}{when}"


def register(app: typer.Typer) -> None:
    """Add ``likeness verify`` to the root app."""
    app.command(
        "verify",
        help="Verify media: C2PA provenance, likeness watermark, enrolled artists; a verdict "
        "per file (exit status 1 when a file could not be read: verdict 'error').",
    )(verify)
