"""CLI commands for the render area: ``likeness render MODEL TARGET --use USE --out OUT``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from likeness.cli.common import console, err_console, fail, mapped_errors, open_workspace, printable, settings_from
from likeness.consent.vocabulary import FINAL_MEDIA_USES

# One vocabulary: the uses render accepts are the consent package's final-media uses.
USE_HELP = (
    f"Granted final-media use: {', '.join(FINAL_MEDIA_USES)}. "
    "('training' authorizes extraction and training only; it renders nothing.)"
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("render", help="Swap the model's subject onto the released performer in a video, image or folder.")(
        render
    )


def render(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="Exported model folder (model.onnx + model_card.json).")],
    target: Annotated[
        Path, typer.Argument(help="Target video, image, or folder of images showing the released performer.")
    ],
    use: Annotated[str, typer.Option("--use", help=USE_HELP)],
    out: Annotated[
        Path, typer.Option("--out", help="Output file (.mp4 for video, .png/.jpg/.webp for an image) or folder.")
    ],
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="Grantee organisation slug (default: the configured org, else the workspace's only one)."
        ),
    ] = None,
    colour: Annotated[str, typer.Option("--colour", help="Colour transfer: rct, lct, hist or none.")] = "rct",
    blend: Annotated[str, typer.Option("--blend", help="Blending: alpha (feathered) or poisson (seamless).")] = "alpha",
    smoothing: Annotated[
        bool,
        typer.Option(
            "--smoothing/--no-smoothing",
            help="Temporal smoothing of landmarks, colour and the swap model's frame-to-frame noise.",
        ),
    ] = True,
    mouth: Annotated[
        bool,
        typer.Option(
            "--mouth/--no-mouth",
            help="Keep the performer's open inner mouth (teeth, tongue) through the swap: for speech and singing when the source photos show few open mouths.",
        ),
    ] = False,
    eyes: Annotated[
        bool,
        typer.Option(
            "--eyes/--no-eyes",
            help="Let the performer's own eyelids show through the swap while the eyes close, so the output blinks: for models whose source photos show few closed eyes. Open eyes stay the swap's; video only: each face's own open eyes are learnt from its first 8 frames, so stills and those frames are never cut.",
        ),
    ] = False,
    occlusion: Annotated[
        bool,
        typer.Option(
            "--occlusion/--no-occlusion",
            help="Keep what covers the face (glasses frames, hands, microphones, hair) in front of the swap.",
        ),
    ] = True,
    thin_rims: Annotated[
        bool,
        typer.Option(
            "--thin-rims/--no-thin-rims",
            help="Also keep thin metal and light spectacle rims in front of the swap, which the occlusion mask misses on large faces: models of 128 px and more only. Costs a ring of the swap round each rim, some wrinkle lines inside the lenses kept from the performer, and about 4x the mask's time per face.",
        ),
    ] = False,
    unlabelled: Annotated[
        bool,
        typer.Option(
            "--unlabelled", help="Ask for no visible label (only if the grant allows it; the watermark and C2PA stay)."
        ),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="Swap model: auto (the int8 copy made at export on a CPU when there is one, 2-3.5x faster per face; else float), float or int8.",
        ),
    ] = "auto",
) -> None:
    """Render authorized synthetic media; output is always watermarked, C2PA-signed and on the ledger."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from likeness.render import RefineOptions, RenderOptions, render_media
    from likeness.render.blend import BLEND_METHODS
    from likeness.render.colour import COLOUR_MODES
    from likeness.render.report import track_line, track_verdict_line
    from likeness.render.smoothing import SmoothingOptions

    if colour not in COLOUR_MODES:
        fail(f"--colour must be one of {', '.join(COLOUR_MODES)}, got {colour!r}")
    if blend not in BLEND_METHODS:
        fail(f"--blend must be one of {', '.join(BLEND_METHODS)}, got {blend!r}")
    from likeness.train.swap_model import PRECISIONS

    if precision not in PRECISIONS:
        fail(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    with mapped_errors():
        options = RenderOptions(
            refine=RefineOptions(
                colour=colour,
                blend=blend,
                mouth=mouth,
                eyes=eyes,
                occlusion=occlusion,
                thin_rims=thin_rims,
                smoothing=SmoothingOptions(enabled=smoothing),
            ),
            unlabelled=unlabelled,
            precision=precision,
        )
        workspace = open_workspace(ctx)
        # As `likeness train`: --org, else the configured org, else the workspace's only one.
        grantee = org or settings_from(ctx).org or workspace.registry.default_org().slug
        with Progress(
            TextColumn("render", style="bold"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} frames"),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("render", total=None, fps=0.0)
            started = time.perf_counter()

            def progress(done: int, total: int | None) -> None:
                elapsed = max(time.perf_counter() - started, 1e-6)
                bar.update(task, completed=done, total=total, fps=done / elapsed)

            try:
                report = render_media(
                    workspace, model, target, out, use=use, org=grantee, options=options, progress=progress
                )
            except KeyboardInterrupt:
                bar.stop()
                err_console.print(
                    Text.assemble(
                        ("interrupted", "yellow"),
                        f": no output written to {printable(out)}; a video's frames are checkpointed every "
                        f"{options.checkpoint_every}: rerun the same command to resume",
                    )
                )
                raise typer.Exit(130) from None
    skipped = ", ".join(f"{k} {v}" for k, v in report.faces.items() if k != "swapped") or "none"
    console.print(
        Text.assemble(
            ("rendered", "green"),
            f" {report.frames_rendered}/{report.frames_total} frames at {report.fps:.1f} fps; "
            f"faces swapped {report.faces.get('swapped', 0)}, skipped: {skipped}; "
            f"swap model {report.model_precision.get('used', 'float')}",
        )
    )
    for output in report.outputs:
        console.print(
            f"  {printable(output['path'])}  (job {output['job_id']}, watermark {output['watermark_payload']})"
        )
    for shot in report.shots:
        line = track_verdict_line(shot)
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(shot.get("verdict", ""), "white")
        console.print(Text.assemble(("quality", colour), f" {printable(line)}"))
    left_alone = [track for track in report.tracks if not track["swapped"]]
    for track in left_alone[:10]:
        console.print(Text.assemble(("faces", "cyan"), f" {track_line(track)}"))
    if len(left_alone) > 10:
        console.print(
            Text.assemble(
                ("faces", "cyan"), f" and {len(left_alone) - 10} more tracks left alone (the report lists them)"
            )
        )
    if report.decode_error:
        console.print(
            Text.assemble(("warning:", "yellow"), f" {printable(report.decode_error)}; rendered what decoded")
        )
    if report.audio_note:
        console.print(Text.assemble(("warning:", "yellow"), f" {report.audio_note}"))
    if report.interlaced_note:
        # Deinterlaced footage is rendered cleanly; woven frames (no deinterlacer in this FFmpeg) need the user.
        heading = ("interlacing", "cyan") if report.deinterlaced else ("warning:", "yellow")
        console.print(Text.assemble(heading, f" {report.interlaced_note}"))
    for skipped_input in report.skipped_inputs:
        said = f" {printable(skipped_input['path'])}: {printable(skipped_input['reason'])}"
        console.print(Text.assemble(("skipped", "yellow"), said))
    if report.report_html:
        console.print(f"report: {printable(report.report_html)}")
