"""Render speed and quality, measured side by side in one run.

    .venv/bin/python benchmarks/render.py [--media ../shared/media] [--frames 90] [--repeats 2]
                                          [--train-minutes 2] [--skip-quality] [--metrics-only]
                                          [--report-dir DIR]

Models: every model is a real exported folder made through the product's own API
(``train_swap_model`` + ``export_model``) and loaded by ``render_media`` through
``load_swap_model``. ``df_tiny`` 64 px is trained for ``--train-minutes`` on faces aligned from
the consenting-actor clip (target performer) and from animated synthetic portraits
(``synthetic_people/seeprettyface_1024``, the stand-in virtual idol). ``df`` 64 px (default
widths; the narrower widths of the first training time-to-quality recipe, ``ae 128``; and of the
best-measured one, ``ae 128, d 32``, whose decoder is twice as wide) and ``df_tiny`` 128 px get
one training iteration: speed does not depend on training.

Table 1 (speed): per clip, the decode+encode transcode (``likeness.media.transcode``, the floor of
any render) and ``render_media`` with each model in float and in its int8 copy (``--precisions``;
every model is exported with the performer's faces, so each has one), in the same run, median fps over
``--repeats``, and the ratio render/transcode. Render fps is wall clock of the whole call
(content check, detection, tracking, identity, swap, refinement, visible label, watermark,
H.264 encode, C2PA signing, ledger, report); ``steady`` (trained ``df_tiny`` 64 and the ``cpu-64``
recipe's widths, first precision) excludes the fixed start/finish cost (the same render on the
first 10 frames is timed and subtracted): what a long clip approaches.

Table 2 (quality, dfdc clip at 720p, trained df_tiny 64 px and the cpu-64 recipe's widths trained
as long): flicker with and without temporal smoothing (and with it but without denoising the swap
model's output, ``SmoothingOptions.swap_damping=0``), with landmarks interpolated between every-other-frame FaceMesh runs (the default) and
with FaceMesh on every frame, border CIEDE2000 per colour-transfer mode, and the float against
the int8 swap model (per face: the report's tracks weighted by the faces each swapped).

Table 5 (with the quality table, or alone with ``--metrics-only``): the render report's per-track
metrics for a default render of the dfdc clip at 720p and 1080p (identity against the
threshold, mouth and blink agreement, sharpness at output resolution, flicker, border colour),
each with its verdict; ``--report-dir`` keeps those reports to look at.

Table 6 (``--recipes``, alone): the quality table per recipe. The ``preview`` (64 px) and
``cpu-overnight-128`` (128 px) recipes, each trained for the same ``--train-minutes`` of wall
clock on the same faces (the synthetic idols' closed-mouth stills as the source; the
consenting actor and the talking generated face as the performers), render the consenting-actor
clip at 720p and a generated 720p clip of a face that talks with its mouth open
(``likeness.media.synthetic.talking_portrait``), with the defaults, ``--mouth`` and ``--eyes``:
identity against the threshold, mouth and blink agreement, sharpness, occlusion damage and flicker,
each with its verdict. The 64 px render with the defaults is the baseline row of each clip. With
``--report-dir``, also a picture per clip and recipe of each blink's deepest frame: the performer
beside each render.
Beside the report's sharpness and mouth verdict, the measures issue 26 replaced, from the same
frames: the high-frequency sharpness ratio (``replaced_sharpness``) and the mouth verdict
without the peak opening. ``--recipe-names`` picks other recipes (e.g. ``preview`` alone, for a
longer training).

Table 7 (``--thin-rims``, alone): ``cpu-overnight-128`` trained for ``--train-minutes`` (as
table 6) renders the talking 720p close-up of Grace Hopper (her frames have light amber lower
rims) and the consenting-actor clip at 720p with the defaults and with ``--thin-rims``,
interleaved over ``--repeats``: identity, the report's occlusion damage (against the mask without
the add-on), the share of the rim pixels the swap changed (CIEDE2000 > 5) where a rim pixel is
one the mask *with* the add-on marks on the input inside the spectacle zone (so it also holds
the wrinkle arcs the add-on marks, docs/benchmarks.md), of them those only the add-on marks, and
median fps. With ``--report-dir``, a picture per clip of the eye band at three frames: input,
defaults, ``--thin-rims``, each grown 3x.

Table 3 (``--ab``, pipeline choices, dfdc clips, the trained df_tiny 64 px and, unless
``--skip-speed``, the ``cpu-64`` recipe's widths): transcode, FaceMesh on every frame
(``interpolate_landmarks=False``), one swap-model call per frame (``swap_batch=1``) and the
current defaults, all with the float model, interleaved in each repeat; medians and ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np

from likeness.config import Settings
from likeness.consent import USES
from likeness.consent.canonical import now_utc
from likeness.consent.holder import HolderMachine
from likeness.faces.align import align_face
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder
from likeness.faces.pose import head_pose
from likeness.media.images import read_image
from likeness.media.synthetic import animate_portrait, grace_hopper, talking_portrait, write_clip
from likeness.media.video import VideoEncoder, iter_video_frames, probe_video, transcode
from likeness.render import RefineOptions, RenderOptions, render_media
from likeness.render.quality import (
    BLINKS_KEPT,
    BORDER_COLOUR,
    EXPRESSION_AMPLITUDE,
    EXPRESSION_CORRELATION,
    FLICKER,
    OCCLUSION_DAMAGE,
    PEAK_OPENING,
    SHARPNESS,
    worst_verdict,
)
from likeness.render.smoothing import SmoothingOptions
from likeness.train import RECIPES, FaceSamples, TrainConfig, export_model, recipe_options, train_swap_model
from likeness.workspace import Workspace


def cut_clip(source: Path, out: Path, *, frames: int, size: tuple[int, int] | None) -> Path:
    info = probe_video(source)
    width, height = size or (info.width, info.height)
    with VideoEncoder(out, width=width, height=height, fps=info.frame_rate or info.fps, audio_source=source) as enc:
        for frame in iter_video_frames(source):
            if frame.index >= frames:
                break
            rgb = frame.rgb if size is None else cv2.resize(frame.rgb, size, interpolation=cv2.INTER_AREA)
            enc.write(rgb, pts_s=frame.pts_s)
    return out


def setup_world(
    home: Path,
    performer_faces: list[np.ndarray],
    subject_faces: list[np.ndarray] = (),
    *,
    allow_unlabelled: bool = False,
) -> Workspace:
    ws = Workspace.init(Settings(home=home))
    registry = ws.registry
    registry.add_org("studio", "Studio")
    holders = HolderMachine.beside(home)  # the rights holders sign on their own machine
    holders.enrol(registry, "mina", "Mina", kind="virtual_idol", owner_org="studio")
    holders.enrol(registry, "jun", "Jun", kind="performer")
    until = now_utc() + timedelta(days=1)
    holders.grant(
        registry, "mina", "studio", USES, valid_until=until, purpose="benchmark", allow_unlabelled=allow_unlabelled
    )
    holders.release(registry, "jun", "studio", valid_until=until, purpose="benchmark")
    embedder = FaceEmbedder()
    with FaceDetector(mode="image") as detector:
        # The idol's references let the report measure identity (distance to the subject).
        for slug, photos in (("jun", performer_faces), ("mina", subject_faces)):
            for n, rgb in enumerate(photos):
                faces = detector.detect(rgb)
                if faces:
                    registry.add_reference_embedding(
                        slug,
                        embedder.embed(rgb, faces[0].landmarks),
                        source_name=f"ref{n}",
                        source_sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
                    )
    return ws


def aligned_samples(frames: list[np.ndarray], size: int) -> FaceSamples:
    images, landmarks, yaw = [], [], []
    with FaceDetector(mode="image", max_faces=1) as detector:
        for rgb in frames:
            faces = detector.detect(rgb)
            if not faces:
                continue
            aligned = align_face(rgb, faces[0].landmarks, size=size, coverage="wf")
            images.append(aligned.image)
            landmarks.append(aligned.landmarks)
            yaw.append(head_pose(faces[0].landmarks, rgb.shape[:2])[0])
    return FaceSamples(np.stack(images), np.stack(landmarks).astype(np.float32), np.array(yaw))


RECIPE_64_WIDTHS = {"ae_dims": 128, "d_dims": 16, "d_mask_dims": 8}
# The best-measured recipe for identity on a CPU (docs/training.md): the same with twice the decoder.
BEST_RECIPE_64_WIDTHS = RECIPES["cpu-64"]["model_options"]


def make_model(
    ws: Workspace,
    out: Path,
    source: FaceSamples,
    target: FaceSamples,
    *,
    family: str,
    resolution: int,
    iterations: int | None,
    minutes: float | None,
    model_options: dict[str, int] | None = None,
) -> tuple[Path, float]:
    config = TrainConfig(
        model=family,
        resolution=resolution,
        iterations=iterations,
        minutes=minutes,
        batch_size=8,
        checkpoint_every=10_000,
        preview_every=0,
        log_every=50,
        identity_metrics=False,
        expression_metrics=False,
        threads=2,
        workers=1,
        seed=0,
        learning_rate=5e-4,
        model_options=model_options or {},
    )
    authz = ws.policy.authorize("mina", "training", "studio")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        release = ws.policy.authorize_release("jun", "studio")
        result = train_swap_model(authz, release, source, target, out, config, workspace=ws)
        int8 = export_model(ws, authz, release, out, performer_faces=target).card["int8"]
    print(
        f"  trained {family} {resolution} px: {result.iterations} iterations in {time.perf_counter() - started:.0f} s; "
        f"int8 copy: worst {int8.get('psnr_db_min', float('nan')):.1f} dB, median {int8.get('psnr_db_median', float('nan')):.1f} dB "
        f"to float on {int8.get('check_faces')} held-out faces, {int8.get('ms_per_face_int8', float('nan')):.2f} vs "
        f"{int8.get('ms_per_face_float', float('nan')):.2f} ms per face, kept: {int8.get('passed')}",
        file=sys.stderr,
    )
    return out, float(result.iterations)


def timed_render(
    ws: Workspace, model: Path, clip: Path, out: Path, options: RenderOptions
) -> tuple[float, float, dict]:
    started = time.perf_counter()
    report = render_media(ws, model, clip, out, use="music_video", org="studio", options=options)
    seconds = time.perf_counter() - started
    return report.frames_rendered / seconds, seconds, report.to_json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--frames", type=int, default=90, help="frames per clip")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-minutes", type=float, default=2.0)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--ab", action="store_true", help="also run table 3 (pipeline A/B)")
    parser.add_argument(
        "--profile", action="store_true", help="also print where a 720p render spends wall and CPU time (table 4)"
    )
    parser.add_argument("--only", default="", help="comma-separated clip names to run (default: all)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch folder (clips, models, renders; hundreds of MB) and print its path",
    )
    parser.add_argument(
        "--metrics-only", action="store_true", help="train df_tiny 64 only and print table 5 (per-track report metrics)"
    )
    parser.add_argument(
        "--recipes",
        action="store_true",
        help="train the preview (64 px) and cpu-overnight-128 recipes for --train-minutes each and print table 6",
    )
    parser.add_argument(
        "--thin-rims",
        action="store_true",
        help="train cpu-overnight-128 for --train-minutes and print table 7 (defaults against --thin-rims)",
    )
    parser.add_argument(
        "--recipe-names",
        nargs="+",
        default=list(TABLE6_RECIPES),
        choices=sorted(RECIPES),
        help="the recipes table 6 trains and compares (default: preview and cpu-overnight-128)",
    )
    parser.add_argument(
        "--report-dir", type=Path, default=None, help="copy table 5's render reports (HTML + JSON) here, to look at"
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["float", "int8"],
        choices=["float", "int8"],
        help="swap model precisions timed side by side in table 1",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="likeness-bench-render-"))
    try:
        return run(args, tmp)
    finally:
        if args.keep:
            print(f"scratch folder kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def idol_world(media: Path, dfdc: Path, dfdc_cut: Path, tmp: Path) -> tuple[Workspace, list, list]:
    """The benchmark's workspace (three synthetic idols, enrolled with the performers) and the
    training frames: the idols' stills animated (source), the actor's clip every 2nd frame (target)."""
    first_dfdc = next(iter_video_frames(dfdc_cut)).rgb
    idol_dir = media / "synthetic_people" / "seeprettyface_1024"
    idols = [read_image(p) for p in sorted(idol_dir.glob("*.png"))[:3]]
    ws = setup_world(tmp / "home", [grace_hopper(), first_dfdc], idols)
    source_frames = [f for rgb in idols for f in animate_portrait(rgb, n_frames=40, size=(512, 512), seed=7)]
    target_frames = [f.rgb for f in iter_video_frames(dfdc, step=2, max_side=1280)]
    return ws, source_frames, target_frames


def run(args: argparse.Namespace, tmp: Path) -> int:
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)

    dfdc = args.media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
    if not dfdc.is_file():
        print(f"no {dfdc}: this benchmark needs the consenting-actor clip", file=sys.stderr)
        return 2
    if args.recipes:
        return recipes_run(args, dfdc, tmp)
    if args.thin_rims:
        return thin_rims_run(args, dfdc, tmp)
    clips = {
        "dfdc 720p": cut_clip(dfdc, tmp / "dfdc720.mp4", frames=args.frames, size=(1280, 720)),
        "dfdc 1080p": cut_clip(dfdc, tmp / "dfdc1080.mp4", frames=args.frames, size=None),
        "generated 720p": write_clip(
            tmp / "gen720.mp4", grace_hopper(), seconds=args.frames / 25, fps=25, size=(1280, 720), seed=1
        ),
        "generated 1080p": write_clip(
            tmp / "gen1080.mp4", grace_hopper(), seconds=args.frames / 25, fps=25, size=(1920, 1080), seed=2
        ),
    }
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        clips = {k: v for k, v in clips.items() if k in wanted or k == "dfdc 720p"}
    ws, source_frames, target_frames = idol_world(args.media, dfdc, clips["dfdc 720p"], tmp)
    source64, target64 = aligned_samples(source_frames, 64), aligned_samples(target_frames, 64)
    print(
        f"  training faces: {len(source64.images)} idol (synthetic seeprettyface), {len(target64.images)} performer (dfdc)",
        file=sys.stderr,
    )
    models = {
        "df_tiny 64 (trained)": make_model(
            ws,
            tmp / "m_tiny64",
            source64,
            target64,
            family="df_tiny",
            resolution=64,
            iterations=None,
            minutes=args.train_minutes,
        )[0],
    }
    if args.metrics_only:
        metrics_table(ws, clips, models, tmp, args.report_dir)
        ws.close()
        return 0
    quality_models = {"df_tiny 64 (trained)": models["df_tiny 64 (trained)"]}
    if not args.skip_quality:
        # The cpu-64 recipe's widths, trained as long, for the precision and denoising rows.
        quality_models["df 64 (ae 128, d 32), trained"] = make_model(
            ws,
            tmp / "m_df64_recipe_trained",
            source64,
            target64,
            family="df",
            resolution=64,
            iterations=None,
            minutes=args.train_minutes,
            model_options=BEST_RECIPE_64_WIDTHS,
        )[0]
    if not args.skip_speed:
        models["df 64"] = make_model(
            ws, tmp / "m_df64", source64, target64, family="df", resolution=64, iterations=1, minutes=None
        )[0]
        # The widths of the training time-to-quality recipes (docs/training.md): the README
        # recommends the wider decoder for identity, so users should see what it costs to render.
        models["df 64 (ae 128)"] = make_model(
            ws,
            tmp / "m_df64_ae128",
            source64,
            target64,
            family="df",
            resolution=64,
            iterations=1,
            minutes=None,
            model_options=RECIPE_64_WIDTHS,
        )[0]
        models["df 64 (ae 128, d 32)"] = make_model(
            ws,
            tmp / "m_df64_ae128_d32",
            source64,
            target64,
            family="df",
            resolution=64,
            iterations=1,
            minutes=None,
            model_options=BEST_RECIPE_64_WIDTHS,
        )[0]
        source128, target128 = aligned_samples(source_frames[::4], 128), aligned_samples(target_frames[::8], 128)
        models["df_tiny 128"] = make_model(
            ws, tmp / "m_tiny128", source128, target128, family="df_tiny", resolution=128, iterations=1, minutes=None
        )[0]

    if not args.skip_speed:
        speed_table(args, ws, clips, models, tmp)
    if args.ab:
        ab_models = {m: models[m] for m in ("df_tiny 64 (trained)", "df 64 (ae 128, d 32)") if m in models}
        ab_table(args, ws, clips, ab_models, tmp)
    if args.profile:
        stage_profile(ws, clips["dfdc 720p"], models["df_tiny 64 (trained)"], tmp)
    if not args.skip_quality:
        quality_table(ws, clips, quality_models, tmp)
        metrics_table(ws, clips, quality_models, tmp, args.report_dir)
    ws.close()
    return 0


def ab_table(args, ws: Workspace, clips: dict[str, Path], models: dict[str, Path], tmp: Path) -> None:
    variants = {
        "FaceMesh on every frame": RenderOptions(write_report=False, interpolate_landmarks=False, precision="float"),
        "one swap-model call per frame": RenderOptions(write_report=False, swap_batch=1, precision="float"),
        "current defaults": RenderOptions(write_report=False, precision="float"),
    }
    print("\n## Pipeline A/B (float swap models; median fps over repeats, interleaved)\n")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print("| clip | model | transcode fps | " + " | ".join(f"{v} fps | ratio" for v in variants) + " |")
    print("|---|---|---|" + "---|---|" * len(variants))
    n = 0
    for name in ("dfdc 720p", "dfdc 1080p"):
        if name not in clips:
            continue
        for model_name, model in models.items():
            floor, fps = [], {v: [] for v in variants}
            for _ in range(args.repeats):
                started = time.perf_counter()
                frames = transcode(clips[name], tmp / f"ab-tc-{n}.mp4")
                floor.append(frames / (time.perf_counter() - started))
                for label, options in variants.items():
                    n += 1
                    fps[label].append(timed_render(ws, model, clips[name], tmp / f"ab-{n}.mp4", options)[0])
            base = statistics.median(floor)
            cells = " | ".join(f"{statistics.median(v):.1f} | {statistics.median(v) / base:.2f}" for v in fps.values())
            print(f"| {name} | {model_name} | {base:.1f} | {cells} |")
            sys.stdout.flush()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def speed_table(args, ws: Workspace, clips: dict[str, Path], models: dict[str, Path], tmp: Path) -> None:
    print("\n## Speed (fps, median of repeats; wall clock of render_media incl. content check and signing)\n")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    # Each model with each swap precision, interleaved in every repeat.
    runs = {f"{m} {p}": (path, p) for m, path in models.items() for p in args.precisions}
    # "Steady": without the fixed start/finish cost, for the trained df_tiny and the cpu-64 recipe's widths.
    steady_models = [m for m in ("df_tiny 64 (trained)", "df 64 (ae 128, d 32)") if m in models]
    steady_labels = {f"{m} {args.precisions[0]}": m for m in steady_models}
    header = (
        "| clip | frames | transcode fps | "
        + " | ".join(f"{m} fps | ratio" for m in runs)
        + "".join(f" | {m} steady fps | ratio" for m in steady_models)
        + " |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    n = 0
    for name, clip in clips.items():
        transcode_fps, render_fps = [], {m: [] for m in runs}
        steady: dict[str, list[float]] = {m: [] for m in steady_models}
        for _r in range(args.repeats):
            started = time.perf_counter()
            frames = transcode(clip, tmp / f"tc-{n}.mp4")
            transcode_fps.append(frames / (time.perf_counter() - started))
            n += 1
            for label, (model, precision) in runs.items():
                options = RenderOptions(write_report=False, precision=precision)
                fps, seconds, rep = timed_render(ws, model, clip, tmp / f"r-{n}.mp4", options)
                assert rep["model_precision"]["used"] == precision, rep["model_precision"]
                render_fps[label].append(fps)
                n += 1
                if label in steady_labels:
                    short = cut_clip(clip, tmp / f"short-{n}.mp4", frames=10, size=None)
                    _, short_s, _ = timed_render(ws, model, short, tmp / f"s-{n}.mp4", options)
                    steady[steady_labels[label]].append((rep["frames_rendered"] - 10) / max(seconds - short_s, 1e-6))
                    n += 1
        floor = statistics.median(transcode_fps)
        cells = " | ".join(
            f"{statistics.median(v):.1f} | {statistics.median(v) / floor:.2f}" for v in render_fps.values()
        )
        steady_cells = "".join(
            f" | {statistics.median(v):.1f} | {statistics.median(v) / floor:.2f}" for v in steady.values()
        )
        print(f"| {name} | {rep['frames_rendered']} | {floor:.1f} | {cells}{steady_cells} |")
        sys.stdout.flush()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def stage_profile(ws: Workspace, clip: Path, model: Path, tmp: Path) -> None:
    """Table 4: per-stage call counts, calling-thread CPU and wall time of one render (wrappers
    around the stage functions; stages run on three threads, so wall times overlap)."""
    import collections
    import resource

    import likeness.faces.detect as detect_module
    import likeness.faces.identity as identity_module
    import likeness.provenance.writer as writer_module
    import likeness.render.frame as frame_module
    import likeness.render.pipeline as pipeline_module

    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    patched = []

    def wrap(owner, name: str, key: str) -> None:
        original = getattr(owner, name)

        def timed(*a, **k):
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                entry = totals[key]
                entry[0] += 1
                entry[1] += time.thread_time() - cpu
                entry[2] += time.perf_counter() - wall

        setattr(owner, name, timed)
        patched.append((owner, name, original))

    def process_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    for owner, name, key in (
        (pipeline_module, "_checked_content", "content check (main)"),
        (pipeline_module, "_load_model", "load model (helper thread)"),
        (pipeline_module, "_make_renderer", "build renderer (helper thread)"),
        (detect_module.FaceDetector, "detect", "detect (decode thread)"),
        (frame_module.FrameRenderer, "process_batch", "swap + refine, 4 frames a call (main)"),
        (identity_module.FaceEmbedder, "embed", "dlib embedding"),
        (pipeline_module._QualityTracker, "observe", "quality (main)"),
        (writer_module.LabelledVideo, "write", "label + mark + encode (encode thread)"),
    ):
        wrap(owner, name, key)
    try:
        cpu, wall = process_cpu(), time.perf_counter()
        frames = transcode(clip, tmp / "profile-tc.mp4")
        transcode_cpu, transcode_wall = process_cpu() - cpu, time.perf_counter() - wall
        cpu, wall = process_cpu(), time.perf_counter()
        report = render_media(
            ws,
            model,
            clip,
            tmp / "profile.mp4",
            use="music_video",
            org="studio",
            options=RenderOptions(write_report=False),
        )
        render_cpu, render_wall = process_cpu() - cpu, time.perf_counter() - wall
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)
    print(f"\n## Where the time goes ({clip.name}, {frames} frames, df_tiny 64 px; load {os.getloadavg()[0]:.2f})\n")
    print(
        f"transcode: {transcode_wall:.2f} s wall, {transcode_cpu:.2f} s CPU (all threads); "
        f"render: {render_wall:.2f} s wall, {render_cpu:.2f} s CPU, {report.frames_rendered / render_wall:.1f} fps\n"
    )
    print("| stage | calls | calling-thread CPU s | wall s |")
    print("|---|---|---|---|")
    for key, (calls, cpu_s, wall_s) in totals.items():
        print(f"| {key} | {int(calls)} | {cpu_s:.2f} | {wall_s:.2f} |")


def quality_table(ws: Workspace, clips: dict[str, Path], models: dict[str, Path], tmp: Path) -> None:
    print("\n## Quality (dfdc 720p; per face: tracks weighted by the faces they swapped)\n")
    print(
        "| model | colour | smoothing | landmarks | swap model | flicker (1.0 = as steady as the source) | "
        "border CIEDE2000 | faces swapped | tracks |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    clip = clips["dfdc 720p"]
    on, no_denoise, off = SmoothingOptions(), SmoothingOptions(swap_damping=0.0), SmoothingOptions(enabled=False)
    rows = [
        ("rct", on, True, "float"),
        ("rct", on, True, "int8"),
        ("rct", no_denoise, True, "float"),
        ("rct", no_denoise, True, "int8"),
        ("rct", on, False, "float"),
        ("rct", off, True, "float"),
        ("lct", on, True, "float"),
        ("hist", on, True, "float"),
        ("none", on, True, "float"),
    ]
    for n, (model_name, model) in enumerate(models.items()):
        # The other models get the rows that compare precision and denoising only.
        for r, (colour, smoothing, interpolate, precision) in enumerate(rows if n == 0 else rows[:4]):
            options = RenderOptions(
                refine=RefineOptions(colour=colour, smoothing=smoothing),
                interpolate_landmarks=interpolate,
                write_report=False,
                precision=precision,
            )
            _, _, rep = timed_render(ws, model, clip, tmp / f"q-{n}-{r}.mp4", options)
            landmarks = (
                f"{rep['landmark_frames_interpolated']} interpolated" if interpolate else "FaceMesh on every frame"
            )
            smoothed = (
                "off" if not smoothing.enabled else "on" if smoothing.swap_damping else "landmarks and colour only"
            )
            print(
                f"| {model_name} | {colour} | {smoothed} | {landmarks} | {precision} | "
                f"{per_face(rep['shots'], 'flicker'):.3f} | {per_face(rep['shots'], 'colour_difference_ciede2000'):.2f} | "
                f"{rep['faces_swapped']} | {len(rep['shots'])} |"
            )
            sys.stdout.flush()


def metric_cell(line: dict) -> str:
    """``value (verdict)`` of one report metric line; correlations with the spread ratio."""
    value = line.get("value")
    if value is None:
        return f"– ({line['verdict']})"
    if "amplitude_ratio" in line:
        text = f"r {value:.2f}, ×{line['amplitude_ratio']:.2f}"
        if line.get("peak_opening_ratio") is not None:
            text += f", peak ×{line['peak_opening_ratio']:.2f}"
        if "performer_blinks" in line:
            text += f", blinks {line['performer_blinks']}→{line['output_blinks']}"
        return f"{text} ({line['verdict']})"
    return f"{value:.3f} ({line['verdict']})"


def metrics_table(
    ws: Workspace, clips: dict[str, Path], models: dict[str, Path], tmp: Path, report_dir: Path | None
) -> None:
    """Table 5: the render report's per-track metrics, as a reader sees them, for the default
    options, the mouth option, the eyes option and the renderer without its occlusion mask."""
    print(
        "\n## Report metrics per track (defaults, --mouth, --eyes, --no-occlusion; verdicts against the report's thresholds)\n"
    )
    print(
        f"| clip | model | options | track | faces | identity: distance to the idol (≤ {IDENTITY_THRESHOLD:.2f}) | "
        f"mouth (r ≥ {EXPRESSION_CORRELATION.pass_at}, ×≥ {EXPRESSION_AMPLITUDE.pass_at}) | "
        f"eyes (same, and ≥ {BLINKS_KEPT.pass_at:.0%} of the blinks) | sharpness (≥ {SHARPNESS.pass_at}) | "
        f"occlusion damage (≤ {OCCLUSION_DAMAGE.pass_at:.0%}) | flicker (≤ {FLICKER.pass_at}) | "
        f"border CIEDE2000 (≤ {BORDER_COLOUR.pass_at:g}) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    # The defaults, the mouth and eyes options and the renderer without its occlusion mask, side by side.
    variants = {
        "defaults": RefineOptions(),
        "--mouth": RefineOptions(mouth=True),
        "--eyes": RefineOptions(eyes=True),
        "--no-occlusion": RefineOptions(occlusion=False),
    }
    runs = [
        (model_name, model, name, label, refine)
        for model_name, model in models.items()
        for name in ("dfdc 720p", "dfdc 1080p")
        if name in clips
        for label, refine in variants.items()
    ]
    for n, (model_name, model, name, label, refine) in enumerate(runs):
        out = tmp / f"metrics-{n}-{name.replace(' ', '')}.mp4"
        _, _, rep = timed_render(ws, model, clips[name], out, RenderOptions(precision="float", refine=refine))
        for shot in rep["shots"]:
            m = shot["metrics"]
            print(
                f"| {name} | {model_name} | {label} | {shot['track_id']} | {shot['frames_swapped']} | "
                f"{metric_cell(m['identity'])} | {metric_cell(m['mouth'])} | {metric_cell(m['eyes'])} | "
                f"{metric_cell(m['sharpness'])} | {metric_cell(m['occlusion'])} | {metric_cell(m['flicker'])} | "
                f"{metric_cell(m['border_colour'])} |"
            )
        sys.stdout.flush()
        if report_dir is not None:
            report_dir.mkdir(parents=True, exist_ok=True)
            for path in (rep["report_html"], rep["report_json"]):
                shutil.copy2(path, report_dir / f"{n}-{Path(path).name}")


#: The recipes table 6 compares, each trained for the same wall-clock budget.
TABLE6_RECIPES = ("preview", "cpu-overnight-128")
#: The sharpness bound before issue 26 replaced the measure (high-frequency energy ratio).
REPLACED_SHARPNESS_PASS = 0.8


def replaced_sharpness(performer_region: np.ndarray, output_region: np.ndarray, mask: np.ndarray) -> float | None:
    """The sharpness measure the report used before issue 26, printed beside the new one only:
    RMS of the grey face minus its 1 px Gaussian blur, output over performer (an upscaled 64 px
    face's pixel grid counted as detail)."""

    def energy(rgb: np.ndarray) -> float:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.sqrt(np.mean((grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[mask > 0.5] ** 2)))

    if int((mask > 0.5).sum()) < 16 or energy(performer_region) < 0.25:
        return None
    return energy(output_region) / energy(performer_region)


class ReplacedMeasures:
    """While active, every sharpness sample the render takes is also measured the old way
    (:func:`replaced_sharpness`), so table 6 prints old and new from the same frames."""

    def __init__(self) -> None:
        self.sharpness: list[float] = []

    def __enter__(self) -> ReplacedMeasures:
        import likeness.render.track_quality as track_quality

        self._module, self._new = track_quality, track_quality.sharpness_ratio

        def both(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> float | None:
            old = replaced_sharpness(before, after, mask)
            if old is not None:
                self.sharpness.append(old)
            return self._new(before, after, mask)

        track_quality.sharpness_ratio = both
        return self

    def __exit__(self, *exc: object) -> None:
        self._module.sharpness_ratio = self._new

    def sharpness_cell(self) -> str:
        if not self.sharpness:
            return "–"
        value = statistics.median(self.sharpness)
        return f"{value:.3f} ({'pass' if value >= REPLACED_SHARPNESS_PASS else 'not pass'})"


def replaced_mouth_verdict(line: dict) -> str:
    """The mouth verdict before issue 26 added the peak opening: correlation and spread only."""
    if line.get("value") is None:
        return line["verdict"]
    return worst_verdict(
        [EXPRESSION_CORRELATION.verdict(line["value"]), EXPRESSION_AMPLITUDE.verdict(line["amplitude_ratio"])]
    )


def talking_clip(tmp: Path, *, frames: int) -> Path:
    """The generated talking close-up (Grace Hopper at 720p, open-mouth speech) tables 6 and 7 use."""
    return write_clip(
        tmp / "talk720.mp4", grace_hopper(), seconds=frames / 25, fps=25, size=(1280, 720), seed=1, talking=True
    )


def recipes_run(args: argparse.Namespace, dfdc: Path, tmp: Path) -> int:
    """Table 6: quality per recipe (64 vs 128 px for the same training minutes), the defaults,
    ``--mouth`` and ``--eyes``, on the consenting-actor clip and a generated talking face, side by
    side in one run."""
    clips = {
        "dfdc 720p": cut_clip(dfdc, tmp / "dfdc720.mp4", frames=args.frames, size=(1280, 720)),
        "talking 720p": talking_clip(tmp, frames=args.frames),
    }
    ws, source_frames, target_frames = idol_world(args.media, dfdc, clips["dfdc 720p"], tmp)
    # The idols are stills: closed mouths only, as in the issue's 7-photo case. The performers'
    # footage (the training target) talks: the actor's clip and the generated speech.
    target_frames += list(talking_portrait(grace_hopper(), n_frames=120, size=(512, 512), seed=3))
    models: dict[str, tuple[Path, int]] = {}
    for recipe in args.recipe_names:
        resolution = int(RECIPES[recipe]["resolution"])
        source, target = aligned_samples(source_frames, resolution), aligned_samples(target_frames, resolution)
        models[recipe] = train_recipe(
            ws, tmp / f"m_{recipe}", source, target, recipe=recipe, minutes=args.train_minutes
        )
    print(
        f"\n## Quality per recipe (each trained {args.train_minutes:g} min wall clock; "
        f"load {os.getloadavg()[0]:.2f} at the first render)\n"
    )
    print(
        f"| clip | recipe (px, iterations) | options | faces | identity (≤ {IDENTITY_THRESHOLD:.2f}) | "
        f"mouth (r ≥ {EXPRESSION_CORRELATION.pass_at}, ×≥ {EXPRESSION_AMPLITUDE.pass_at}, "
        f"peak ×≥ {PEAK_OPENING.pass_at}) | mouth verdict before the peak | "
        f"eyes (same, ≥ {BLINKS_KEPT.pass_at:.0%} of blinks) | sharpness: effective resolution (≥ {SHARPNESS.pass_at}) | "
        f"old sharpness: high-frequency ratio (≥ {REPLACED_SHARPNESS_PASS}) | "
        f"occlusion damage (≤ {OCCLUSION_DAMAGE.pass_at:.0%}) | flicker (≤ {FLICKER.pass_at}) | track verdict | fps |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    n = 0
    for clip_name, clip in clips.items():
        for recipe, (model, iterations) in models.items():
            renders = {}
            for variant, refine in TABLE6_VARIANTS.items():
                n += 1
                out = tmp / f"recipe-{n}.mp4"
                renders[variant] = out
                options = RenderOptions(refine=refine)
                with ReplacedMeasures() as replaced:
                    fps, _, rep = timed_render(ws, model, clip, out, options)
                label = f"{recipe} ({RECIPES[recipe]['resolution']} px, {iterations} it)"
                for shot in sorted(rep["shots"], key=lambda s: -s["frames_swapped"])[:1]:  # the shot, not strays
                    m = shot["metrics"]
                    print(
                        f"| {clip_name} | {label} | {variant} | {shot['frames_swapped']} | "
                        f"{metric_cell(m['identity'])} | {metric_cell(m['mouth'])} | "
                        f"{replaced_mouth_verdict(m['mouth'])} | {metric_cell(m['eyes'])} | "
                        f"{metric_cell(m['sharpness'])} | {replaced.sharpness_cell()} | {metric_cell(m['occlusion'])} | "
                        f"{metric_cell(m['flicker'])} | {shot['verdict']} | {fps:.1f} |"
                    )
                sys.stdout.flush()
                if args.report_dir is not None:
                    args.report_dir.mkdir(parents=True, exist_ok=True)
                    for path in (rep["report_html"], rep["report_json"]):
                        shutil.copy2(path, args.report_dir / f"{n}-{Path(path).name}")
            if args.report_dir is not None:
                blink_crops(clip, renders, args.report_dir / f"blinks-{clip_name.replace(' ', '')}-{recipe}.png")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    ws.close()
    return 0


#: Table 6's renders per clip and recipe: the defaults, then each expression option alone.
TABLE6_VARIANTS = {
    "defaults": RefineOptions(),
    "--mouth": RefineOptions(mouth=True),
    "--eyes": RefineOptions(eyes=True),
}


THIN_RIMS_RECIPE = "cpu-overnight-128"
#: Table 7 measures every this many frames, and pictures these frames' eye bands.
THIN_RIMS_EVERY = 5
THIN_RIMS_PICTURED = (10, 30, 50)


def thin_rims_run(args: argparse.Namespace, dfdc: Path, tmp: Path) -> int:
    """Table 7: the defaults against ``--thin-rims`` with one 128 px model, interleaved."""
    clips = {
        "talking 720p close-up": talking_clip(tmp, frames=args.frames),
        "dfdc 720p": cut_clip(dfdc, tmp / "dfdc720.mp4", frames=args.frames, size=(1280, 720)),
    }
    ws, source_frames, target_frames = idol_world(args.media, dfdc, clips["dfdc 720p"], tmp)
    target_frames += list(talking_portrait(grace_hopper(), n_frames=120, size=(512, 512), seed=3))
    resolution = int(RECIPES[THIN_RIMS_RECIPE]["resolution"])
    source, target = aligned_samples(source_frames, resolution), aligned_samples(target_frames, resolution)
    model, iterations = train_recipe(
        ws, tmp / "m_thin", source, target, recipe=THIN_RIMS_RECIPE, minutes=args.train_minutes
    )
    variants = {"defaults": RefineOptions(), "--thin-rims": RefineOptions(thin_rims=True)}
    print(
        f"\n## --thin-rims against the defaults ({THIN_RIMS_RECIPE}, {resolution} px, {iterations} iterations; "
        f"load {os.getloadavg()[0]:.2f} at the first render)\n"
    )
    print(
        f"| clip | options | faces | identity (≤ {IDENTITY_THRESHOLD:.2f}) | "
        f"occlusion damage, report (≤ {OCCLUSION_DAMAGE.pass_at:.0%}) | rim pixels changed | "
        "of them only the add-on's | rim pixels measured (add-on's) | fps (median of repeats) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for clip_name, clip in clips.items():
        fps: dict[str, list[float]] = {v: [] for v in variants}
        reports, outs = {}, {}
        for repeat in range(args.repeats):
            for variant, refine in variants.items():  # interleaved: load drifts alike
                out = tmp / f"thin-{clip_name.replace(' ', '')}-{variant.strip('-')}-{repeat}.mp4"
                rate, _, reports[variant] = timed_render(ws, model, clip, out, RenderOptions(refine=refine))
                fps[variant].append(rate)
                outs[variant] = out
        for variant in variants:
            shot = max(reports[variant]["shots"], key=lambda s: s["frames_swapped"])
            m = shot["metrics"]
            rims, changed, added, added_changed = rim_pixels_changed(clip, outs[variant], resolution)
            print(
                f"| {clip_name} | {variant} | {shot['frames_swapped']} | {metric_cell(m['identity'])} | "
                f"{metric_cell(m['occlusion'])} | {changed / max(rims, 1):.1%} | "
                f"{added_changed / max(added, 1):.1%} | {rims} ({added}) | "
                f"{statistics.median(fps[variant]):.2f} |"
            )
            sys.stdout.flush()
        if args.report_dir is not None:
            args.report_dir.mkdir(parents=True, exist_ok=True)
            eye_band_sheet(clip, list(outs.values()), args.report_dir / f"thin-rims-{clip_name.replace(' ', '')}.png")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    ws.close()
    return 0


def _aligned_pairs(clip: Path, render: Path, size: int):
    """(frame index, input crop, output crop, crop landmarks) every THIN_RIMS_EVERY frames: both
    frames aligned with the input face's transform, as the renderer aligns it (``wf``)."""
    detector = FaceDetector(mode="video", max_faces=1)
    for before, after in zip(iter_video_frames(clip), iter_video_frames(render)):
        if before.index % THIN_RIMS_EVERY:
            continue
        faces = detector.detect(before.rgb)
        if not faces:
            continue
        aligned = align_face(before.rgb, faces[0].landmarks, size=size, coverage="wf")
        out = cv2.warpAffine(
            after.rgb, aligned.affine, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        )
        yield before.index, aligned.image, out, aligned.landmarks


def rim_pixels_changed(clip: Path, render: Path, size: int) -> tuple[int, int, int, int]:
    """(rim pixels, of them changed, rim pixels only the add-on marks, of them changed) over the
    measured frames: a rim pixel is one the occlusion mask with the thin add-on marks (>= 0.5) on
    the input crop inside the spectacle zone; changed is CIEDE2000 > OCCLUDER_TOLERANCE."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    from likeness.faces.occlusion import spectacle_zone
    from likeness.render.frame import occlusion_segmenter
    from likeness.render.quality import OCCLUDER_TOLERANCE

    totals = np.zeros(4, np.int64)
    for _, before, after, points in _aligned_pairs(clip, render, size):
        with_addon = occlusion_segmenter(thin_rims=True).occluders(before[None], points[None])[0] >= 0.5
        alone = occlusion_segmenter().occluders(before[None], points[None])[0] >= 0.5
        rims = with_addon & (spectacle_zone(points, size) > 0.5)
        changed = deltaE_ciede2000(rgb2lab(before), rgb2lab(after)) > OCCLUDER_TOLERANCE
        added = rims & ~alone
        totals += [rims.sum(), (rims & changed).sum(), added.sum(), (added & changed).sum()]
    return tuple(int(v) for v in totals)  # type: ignore[return-value]


def eye_band_sheet(clip: Path, renders: list[Path], out: Path) -> None:
    """The eye band (brows to below the eyes) of THIN_RIMS_PICTURED frames, input then each
    render, grown 3x: one row per frame."""
    from likeness.faces.canonical import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER

    size = 256
    rows = []
    pairs = {i: (b, p) for i, b, _, p in _aligned_pairs(clip, clip, size) if i in THIN_RIMS_PICTURED}
    outs = [{i: a for i, _, a, _ in _aligned_pairs(clip, r, size) if i in THIN_RIMS_PICTURED} for r in renders]
    for index, (before, points) in sorted(pairs.items()):
        eyes_y = int((points[RIGHT_IRIS_CENTER][1] + points[LEFT_IRIS_CENTER][1]) / 2)
        top, bottom = max(0, eyes_y - size // 6), min(size, eyes_y + size // 8)
        band = [before[top:bottom]] + [o[index][top:bottom] for o in outs if index in o]
        rows.append(np.hstack([cv2.resize(b, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST) for b in band]))
    if rows:
        cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
        print(f"  eye bands (frames {sorted(pairs)}; input, then {len(renders)} renders): {out}", file=sys.stderr)


def blink_crops(clip: Path, renders: dict[str, Path], out: Path) -> None:
    """A picture to look at: the performer's face at the deepest frame of each blink (eye
    openness below ``BLINK_DEPTH`` of the clip's median, ``likeness.render.quality``) beside the
    same region of each render, one row per blink, columns in ``renders`` order."""
    from likeness.faces.quality import eye_openness
    from likeness.render.quality import BLINK_DEPTH

    detector = FaceDetector(mode="video")
    frames, boxes, openness = [], [], []
    for frame in iter_video_frames(clip):
        faces = detector.detect(frame.rgb)
        face = max(faces, key=lambda f: f.bbox[2] - f.bbox[0]) if faces else None
        frames.append(frame.index)
        boxes.append(None if face is None else face.bbox)
        openness.append(np.nan if face is None else eye_openness(np.asarray(face.landmarks, np.float32)))
    level = np.asarray(openness)
    closed = level < (1.0 - BLINK_DEPTH) * np.nanmedian(level)
    deepest, run = [], []
    for i, shut in enumerate(closed):  # the deepest frame of each run of closed frames
        if shut:
            run.append(i)
        elif run:
            deepest.append(min(run, key=lambda j: level[j]))
            run = []
    if run:
        deepest.append(min(run, key=lambda j: level[j]))
    wanted = {frames[i]: boxes[i] for i in deepest}
    columns = {"performer": clip, **renders}
    crops: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    for path in columns.values():
        for frame in iter_video_frames(path):
            if frame.index in wanted:
                x0, y0, x1, y1 = (int(v) for v in wanted[frame.index])
                crop = frame.rgb[max(y0, 0) : y1, max(x0, 0) : x1]
                crops[frame.index].append(cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA))
    rows = [np.hstack(c) for i, c in sorted(crops.items()) if len(c) == len(columns)]
    if not rows:
        print(f"  no blink frames in {clip.name}", file=sys.stderr)
        return
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(f"  blink crops (frames {sorted(wanted)}; columns {', '.join(columns)}): {out}", file=sys.stderr)


def train_recipe(
    ws: Workspace, out: Path, source: FaceSamples, target: FaceSamples, *, recipe: str, minutes: float
) -> tuple[Path, int]:
    """A model of ``recipe`` trained for ``minutes`` of wall clock with one torch thread (the
    fastest on a loaded 2-core machine, docs/training.md) and exported; returns (folder, iterations)."""
    config = TrainConfig(
        **recipe_options(recipe),
        iterations=None,
        minutes=minutes,
        checkpoint_every=10_000,
        preview_every=0,
        log_every=50,
        identity_metrics=False,
        expression_metrics=False,
        threads=1,
        workers=1,
        seed=0,
    )
    authz = ws.policy.authorize("mina", "training", "studio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        release = ws.policy.authorize_release("jun", "studio")
        result = train_swap_model(authz, release, source, target, out, config, workspace=ws)
        export_model(ws, authz, release, out, performer_faces=target)
    print(
        f"  trained {recipe}: {result.iterations} iterations in {minutes:g} min "
        f"({len(source.images)} idol faces, {len(target.images)} performer faces)",
        file=sys.stderr,
    )
    return out, int(result.iterations)


def per_face(shots: list[dict], key: str) -> float:
    """The tracks' ``key`` weighted by the faces each swapped: a one-frame track (a stray detection)
    must not count as much as the shot it sits in, as it did in a plain median over tracks."""
    pairs = [(s[key], s["frames_swapped"]) for s in shots if s[key] is not None]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
