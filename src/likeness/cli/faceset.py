"""CLI for the faceset area: ``extract``, ``faceset report|show`` and ``subject photos add|attest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from likeness.cli.common import console, err_console, fail, mapped_errors, open_workspace, printable

#: Near-duplicates named one per line after an extraction; the rest are counted.
_DUPLICATES_SHOWN = 20

faceset_app = typer.Typer(help="Facesets: coverage reports and contents.", no_args_is_help=True)
photos_app = typer.Typer(help="Reference photos that identify a subject.", no_args_is_help=True)
_SIGNER_HELP = "Organisation whose key seals the references: the one that enrolled the subject (the default)."


def extract(
    ctx: typer.Context,
    subject: Annotated[
        str, typer.Argument(help="Subject slug whose faces to extract (artist, virtual idol or performer).")
    ],
    inputs: Annotated[list[Path], typer.Argument(metavar="PATH", help="Image files, folders and videos, in any mix.")],
    out: Annotated[Path, typer.Option("--out", help="New faceset folder (rerun with the same folder to resume).")],
    org: Annotated[
        str | None, typer.Option("--org", help="Grantee organisation (default: settings or the only org).")
    ] = None,
    size: Annotated[
        int, typer.Option("--size", min=32, max=2048, help="Side of the aligned square crops in pixels.")
    ] = 256,
    min_face: Annotated[int, typer.Option("--min-face", min=0, help="Smallest face kept, in source pixels.")] = 64,
    min_sharpness: Annotated[
        float, typer.Option("--min-sharpness", help="Blur limit: least variance of the Laplacian.")
    ] = 10.0,
    max_yaw: Annotated[float, typer.Option("--max-yaw", help="Most head turn kept, in degrees.")] = 75.0,
    max_pitch: Annotated[float, typer.Option("--max-pitch", help="Most head tilt kept, in degrees.")] = 50.0,
    dedup: Annotated[
        int,
        typer.Option(
            "--dedup", min=-1, max=64, help="Near-duplicate limit in perceptual-hash bits (-1 keeps duplicates)."
        ),
    ] = 3,
    every: Annotated[int, typer.Option("--every", min=1, help="Use every n-th video frame.")] = 1,
    crop_format: Annotated[str, typer.Option("--format", help="Crop format: png (lossless) or jpg.")] = "png",
) -> None:
    """Extract a subject's faces from consented footage into an aligned, identity-filtered faceset."""
    from likeness.faceset import ExtractOptions, authorize_extraction, extract_faceset

    with mapped_errors():
        options = ExtractOptions(
            size=size,
            min_face=min_face,
            min_sharpness=min_sharpness,
            max_yaw=max_yaw,
            max_pitch=max_pitch,
            dedup_hamming=None if dedup < 0 else dedup,
            frame_step=every,
            crop_format=crop_format,
        )
        workspace = open_workspace(ctx)
        authz = authorize_extraction(workspace, subject, org)
        columns = (
            TextColumn("{task.fields[name]}", style="bold", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[faces]} faces · {task.fields[rate]:.1f} faces/s"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("extract", total=None, name="starting", faces=0, rate=0.0)

            def show(event) -> None:
                # Videos: frames of the current clip; photos: inputs done out of all inputs.
                is_clip = event.frame_total is None or event.frame_total > 1
                bar.update(
                    task,
                    total=event.frame_total if is_clip else event.input_total,
                    completed=event.frame_index + 1 if is_clip else event.input_number,
                    name=f"[{event.input_number}/{event.input_total}] {printable(Path(event.input_path).name)}",
                    faces=event.faces_kept,
                    rate=event.faces_seen / event.elapsed_s if event.elapsed_s > 0 else 0.0,
                )

            try:
                report = extract_faceset(workspace, authz, inputs, out, options=options, progress=show)
            except KeyboardInterrupt:
                bar.stop()
                err_console.print(
                    Text.assemble(
                        ("interrupted", "yellow"),
                        ": finished frames are checkpointed; rerun the same command to resume",
                    )
                )
                raise typer.Exit(130) from None
    for skipped in report.skipped_inputs:
        console.print(
            Text.assemble("  ", ("skipped", "yellow"), f" {printable(skipped.path)}: {printable(skipped.reason)}")
        )
    _print_duplicates(report)
    for slug, tally in report.other_holders.items():
        console.print(
            Text.assemble(
                "  ",
                ("dropped", "yellow"),
                f" {tally['faces']} face(s) recognised as {printable(slug)}, a subject of another rights holder "
                f"enrolled by organisation '{printable(tally['org'])}' (the first: {printable(tally['first'])})",
            )
        )
    rejected = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in report.rejected.items() if n)
    console.print(
        Text.assemble(
            f"{report.frames_read} frames, {report.faces_seen} faces seen"
            + (f" ({rejected})" if rejected else "")
            + f", {report.faces_per_s:.1f} faces/s",
            (" (resumed)" if report.resumed else "", "dim"),
        )
    )
    if not report.ok:
        # A mistyped path, a file that is no media or an empty folder gives no frame at all:
        # that, not the faces, is what to fix.
        reason = f"no usable face of {printable(subject)} found"
        if report.frames_read == 0:
            reason = (
                "no input could be read (each is named above with why)"
                if report.skipped_inputs
                else "no image or video file in the inputs"
            ) + "; give image files, folders or videos"
        err_console.print(Text.assemble(("error:", "bold red"), f" {reason}; nothing written"))
        raise typer.Exit(1)
    console.print(
        Text.assemble(
            ("faceset", "green"),
            f" {printable(report.out)}: {report.faces_kept} face{'' if report.faces_kept == 1 else 's'} "
            f"from {report.inputs_used} input(s), sha256 {(report.faceset_sha256 or '?')[:16]}…",
        )
    )


def _print_duplicates(report) -> None:
    """Photos are named one by one (in a small photo set each dropped expression matters); a
    video's frames repeat each other by nature, so each video gets one line with its count. A
    video is what extraction read as a clip (by content: a clip named ``.png`` is one)."""
    clips = set(report.clip_inputs)

    def is_video(path: str) -> bool:
        return path in clips

    videos = [path for path in report.duplicates_by_input if is_video(path)]
    photos = [d for d in report.duplicates_dropped if not any(d["face"].startswith(f"{v} frame ") for v in videos)]
    for dropped in photos[:_DUPLICATES_SHOWN]:
        console.print(
            Text.assemble(
                "  ", ("near-duplicate dropped", "yellow"), f" {printable(dropped['face'])}: {dropped['reason']}"
            )
        )
    photo_total = sum(n for path, n in report.duplicates_by_input.items() if not is_video(path))
    if photo_total > _DUPLICATES_SHOWN:
        console.print(f"  … and {photo_total - _DUPLICATES_SHOWN} more photo near-duplicate(s) dropped")
    for path in videos:
        count = report.duplicates_by_input[path]
        if count:
            example = next((d for d in report.duplicates_dropped if d["face"].startswith(f"{path} frame ")), None)
            detail = f" (e.g. {printable(example['face'][len(path) + 1 :])}: {example['reason']})" if example else ""
            console.print(
                Text.assemble(
                    "  ",
                    ("near-duplicates dropped", "yellow"),
                    f" {printable(Path(path).name)}: {count} frame(s) repeat a kept face in pose and expression{detail}",
                )
            )
    if report.rejected.get("duplicate", 0):
        console.print(Text.assemble("  ", ("--dedup -1 keeps near-duplicates", "dim")))


@faceset_app.command("report")
def faceset_report(
    faceset: Annotated[Path, typer.Argument(help="Faceset folder.")],
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default FACESET/report).")] = None,
) -> None:
    """Write a coverage report (report.html + summary.json): contact sheet, pose, expression, gaps."""
    from likeness.faceset import load_faceset
    from likeness.faceset.report import write_coverage_report

    with mapped_errors():
        report = write_coverage_report(load_faceset(faceset), out or faceset / "report")
    for gap in report.gaps:
        console.print(Text.assemble("  ", ("gap", "yellow"), f" {gap}"))
    said = f" {printable(report.html_path)}  summary {printable(report.summary_path)}"
    console.print(Text.assemble(("report", "green"), said))


@faceset_app.command("show")
def faceset_show(
    faceset: Annotated[Path, typer.Argument(help="Faceset folder.")],
    verify: Annotated[bool, typer.Option("--verify", help="Also re-hash every face image.")] = False,
) -> None:
    """Show a faceset's manifest (subject, consent, counts) after verifying its hash."""
    from likeness.faceset import load_faceset

    with mapped_errors():
        loaded = load_faceset(faceset, verify_images=verify)
    manifest = loaded.manifest
    table = Table(show_header=False, box=None)
    table.add_row("subject", printable(f"{manifest.subject_slug} ({manifest.subject_id})"))  # the file's text
    if manifest.grant_id:
        table.add_row("grant", manifest.grant_id)
    if manifest.release_id:
        table.add_row("release", manifest.release_id)
    table.add_row("faces", str(len(loaded)))
    table.add_row("crop size", f"{manifest.size} px ({manifest.coverage})")
    table.add_row("created", manifest.created_at)
    table.add_row("sha256", manifest.faceset_sha256)
    rejected = manifest.counts.get("rejected", {})
    if rejected:
        table.add_row("rejected", ", ".join(f"{k}={v}" for k, v in rejected.items() if v) or "none")
    table.add_row("integrity", "verified (index and every image)" if verify else "verified (index)")
    console.print(table)


@photos_app.command("add")
def photos_add(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Subject slug.")],
    photos: Annotated[
        list[Path],
        typer.Argument(
            help="Reference photos, each showing only the subject's face, or videos of the subject alone (up to 8 frames spread over each clip are used)."
        ),
    ],
    org: Annotated[str | None, typer.Option("--org", help=_SIGNER_HELP)] = None,
) -> None:
    """Enrol reference photos or videos: store the subject's identity embeddings used to filter footage."""
    from likeness.faceset import enroll_reference_photos

    with mapped_errors():
        workspace = open_workspace(ctx)
        report = enroll_reference_photos(workspace, subject, photos, org=org)
    for path, reason in report.skipped:
        console.print(Text.assemble("  ", ("skipped", "yellow"), f" {printable(path)}: {printable(reason)}"))
    for path in report.already_enrolled:
        console.print(Text.assemble("  ", ("already enrolled", "dim"), f" {printable(path)}"))
    console.print(f"reference photos for {printable(report.subject_slug)}: {report.added} enrolled")
    if not report.ok:
        err_console.print(Text.assemble(("error:", "bold red"), " no usable reference photo"))
        raise typer.Exit(1)


@photos_app.command("attest")
def photos_attest(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Subject slug.")],
    org: Annotated[str | None, typer.Option("--org", help=_SIGNER_HELP)] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Attest without asking (you have looked at each reference listed).")
    ] = False,
) -> None:
    """Seal references enrolled before reference events were sealed, or sealed by another
    organisation before seals were checked against who enrolled the subject, once you recognise
    each face (as the organisation that enrolled it)."""
    from likeness.faceset.reference_faces import reference_faces_dir

    with mapped_errors():
        workspace = open_workspace(ctx)
        record = workspace.registry.get_subject(subject)
        unsigned = workspace.registry.unsigned_references(record.slug)
        if not unsigned:
            console.print(f"{printable(record.slug)}: no unsigned reference to attest")
            return
        console.print(
            f"{printable(record.slug)}: {len(unsigned)} reference(s) enrolled before reference events were "
            "sealed (or by whoever could write the ledger then), or sealed by another organisation before seals "
            "were checked against who enrolled the subject; none is used until attested:"
        )
        for status in unsigned:
            sealed_by_another = f"; {printable(status.detail)}" if status.state == "resealable" else ""
            console.print(
                f"  row {status.row_id}: photo {printable(status.source_name)} "
                f"(sha256 {status.source_sha256[:16]}…, ledger row {status.event_seq}{sealed_by_another})"
            )
        console.print(f"their face pictures: {printable(reference_faces_dir(workspace.home, record.id))}")
        if not yes and not _confirmed(f"Is each of these {printable(record.slug)}'s face? Attest them?"):
            fail("nothing attested", code=1)
        count = workspace.registry.attest_references(record.slug, [s.row_id for s in unsigned], org=org)
    console.print(f"reference photos for {printable(record.slug)}: {count} attested")


def _confirmed(question: str) -> bool:
    """The operator's yes or no; with nothing to read it from, say how to attest instead."""
    import click

    try:
        return typer.confirm(question, default=False)
    except (typer.Abort, click.exceptions.Abort):
        fail("no answer to the question (no terminal?): look at each reference listed, then attest with --yes")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    from likeness.cli.consent import subject_app

    app.command("extract")(extract)
    app.add_typer(faceset_app, name="faceset")
    subject_app.add_typer(photos_app, name="photos")
