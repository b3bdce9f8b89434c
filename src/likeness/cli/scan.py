"""CLI: ``likeness scan SOURCE... --out RESULTS``: verify a large collection into a Parquet dataset."""

from __future__ import annotations

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


def scan(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE", help="Folders, CSV/Parquet manifests of paths, or fsspec URLs (e.g. s3://bucket/crawl/)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Results: a Parquet dataset folder (resumable).")],
    engine: Annotated[str, typer.Option("--engine", help="local (process pool) or dask.")] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Dask scheduler address, e.g. tcp://HOST:8786 (default: a LocalCluster here)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=1024,
            help="Local processes, or LocalCluster workers (default: the workspace setting).",
        ),
    ] = None,
    files_per_task: Annotated[
        int,
        typer.Option(
            "--files-per-task",
            min=1,
            max=1024,
            help="Dask: files per task (fewer, larger tasks for big clusters; a lost worker retries its batch).",
        ),
    ] = 1,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write evidence packs for files that need review into this folder. Temporaries a killed "
            "writer left there are removed first (only those whose process has ended, untouched for "
            f"{ORPHAN_AGE_S // 60} minutes).",
        ),
    ] = None,
    anchors: Annotated[
        list[Path] | None,
        typer.Option("--anchor", metavar="PEM", help="Extra C2PA trust anchor (PEM file); repeatable."),
    ] = None,
) -> None:
    """Scan a media collection: one result row per file in a Parquet dataset; a re-run skips
    files already scanned with the same verifier version. Exit status 1 when a file got verdict
    ``error``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from likeness.scan import scan_collection

    if engine not in ("local", "dask"):
        fail(f"--engine {engine!r}: use 'local' or 'dask'")
    if scheduler and engine != "dask":
        fail("--scheduler needs --engine dask")
    with mapped_errors():
        extra_anchors = read_trust_anchors(anchors)
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = None

    def started(start) -> None:
        nonlocal task
        if start.dashboard_link:
            err_console.print(f"Dask dashboard: {printable(start.dashboard_link)}")
        err_console.print(
            f"{start.total} file(s): {start.skipped} already scanned, {start.to_verify} to verify "
            f"({start.engine} engine)"
        )
        task = progress.add_task("", total=start.total, completed=start.skipped, rate="")
        progress.start()

    def advanced(_row) -> None:
        if task is None:  # on_start always comes first
            return
        progress.advance(task)
        speed = progress.tasks[0].speed
        progress.update(task, rate=f"{speed:.1f} files/s" if speed else "")

    with mapped_errors():
        workspace = open_workspace(ctx)
        try:
            summary = scan_collection(
                workspace,
                sources,
                out,
                engine=engine,
                scheduler=scheduler,
                workers=workers or settings_from(ctx).workers,
                report_dir=report,
                extra_anchors=extra_anchors,
                on_start=started,
                on_file=advanced,
                files_per_task=files_per_task,
            )
        except ValueError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            progress.stop()
            counts = (int(progress.tasks[0].completed), int(progress.tasks[0].total or 0)) if task is not None else None
            _interrupted(counts, out)
        finally:
            progress.stop()
    console.print(
        f"{summary.files} file(s): {summary.verified} verified, {summary.copied} identical to a file "
        f"verified before, {summary.skipped} skipped (already in {printable(out)}); verifier {summary.verifier_version}"
    )
    if summary.errors:
        err_console.print(f"{summary.errors} file(s) could not be verified (verdict 'error'); see the 'errors' column")
        raise typer.Exit(1)


def _interrupted(counts: tuple[int, int] | None, out: Path) -> NoReturn:
    """Say what a Ctrl-C left in the results and exit 130: every row handed on before the stop
    is written by ``scan_collection`` on its way out. ``counts``: (files in the results, those
    of earlier runs included; files in all), None when the stop came before the scan began."""
    rerun = "rerun the same command to scan the rest (files already in the results are skipped)"
    if counts is None:
        note = f"before any file was scanned; {rerun}"
    else:
        note = f"{counts[0]} of {counts[1]} file(s) are in {printable(out)}; {rerun}"
    err_console.print(Text.assemble(("interrupted", "yellow"), f": {note}"))
    raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    """Add ``likeness scan`` to the root app."""
    app.command(
        "scan",
        help="Scan a media collection (folders, manifests, fsspec URLs) on a process pool or "
        "Dask; resumable Parquet results, one row per file.",
    )(scan)
