"""The learned manipulation detector, measured against shortcut baselines in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/detector.py --media ../shared/media \
        --detector detector-general --scratch detector-scratch [--segments 4] [--frames 32] \
        [--train-minutes 1.5] [--json results.json] [--swap-models df_tiny-64 ...]
    PYTHONPATH=src .venv/bin/python benchmarks/detector.py --agency-example --media ../shared/media \
        [--init CHECKPOINT] [--train-minutes 4] [--segments 6] [--frames 20] [--work DIR]

``--detector`` and ``--scratch`` are folders written by ``scripts/train_detector.py`` (the second
with ``--scratch``: the same network from random initialisation, the "from scratch" baseline),
both trained on ``portraits/congress_pd`` with one identity in seven (by name order) held out.

Table 1 (SBI validation): the held-out identities' portraits, each once pristine and once
self-blended with a fixed seed, scored by every method.

Table 2 (the product's own swaps), one table per footage: swap models are trained with the
product's API (``train_swap_model`` + ``export_model``, as ``benchmarks/render.py`` does: synthetic
idols from ``synthetic_people/seeprettyface_1024`` onto the actor clip's frames and a talking
``grace_hopper``'s) for ``--train-minutes`` each, in recipes the detector never saw (it saw no swap
at all): ``SWAP_MODELS``, df and liae families at 64 and 128 px (``--swap-models`` picks some),
each rendered with its refine options (every colour mode and both blends appear once). Each is
rendered with ``render_media`` onto ``--segments`` segments of two footages at 720p: the
consenting-actor clip (real camera footage) and a generated one (``grace_hopper`` talking,
``likeness.media.synthetic``; the released performer holds a reference face of each, or render
would not swap onto it). Fakes are scored against their own footage's untouched segments, after
re-encoding both at CRF 23, 28 and 35, after a 0.5x rescale at CRF 23 and after a crop of 10 % per
side at CRF 23. Frame AUC over every scored face; video AUC over the segments (mean calibrated
logit per segment). Table 2c: video AUC per swap group (its fakes against their footage's real
segments). ``faces.png`` in the work folder shows a few faces of one fake per swap group and
footage, then of one real segment per footage.

Table 3 (authentic footage): the false-positive rate at each detector's shipped threshold on the
actor segments, the generated segments and animated clips of the held-out portraits, per condition.

``--agency-example`` (instead of the tables; the fine-tune starts from the general model shipped in
the package, or from ``--init``, another detector's ``checkpoint.pt``): the agency fine-tune the way verify uses it. Verify applies a subject's
registered detector to face tracks *recognised as that subject*, so the fakes are the artist's
face swapped onto someone else. The consenting-actor clip is split by time: frames 0-89 are the
swap's source identity (and the actor's enrolment photos), ``--segments`` x ``--frames`` frames
from 96 are the held-out authentic segments, frames 222-298 (every 2nd) the detector's training
frames. A ``preview`` swap model (actor as source, 1 thread, ``--train-minutes``) is trained onto
a talking ``grace_hopper`` clip framed like the actor (a small pane in a grey 1280x720 frame, so
that the face's share of the frame is about the actor's) and renders that clip's held-out half with
``render_media`` unlabelled (the whole clip in one render, then cut); fakes and real segments
are both re-encoded at CRF 23. The pane zooms slowly (+-15 %) so that the fakes' face sizes lie
on both sides of the actor's. The detector
is fine-tuned from the shipped general model (or ``--init``) on the training frames (``train_from_folders``, ``--finetune-steps``),
evaluated for the actor with ``likeness.detector.evaluation.evaluate_detector(subject=...)`` (each
unit recognised as verify recognises a track, against the actor's enrolment as ``mina``; the
gates measured on the units recognised as her, printed unit by unit; refused with
``TooFewUnits`` when fewer than 2 of either class are), registered for the actor in the
throw-away workspace (or refused, with the reason) and every unit is verified: the table
says how many tracks verify recognised as the actor and the manipulation score. ``faces.png`` in
``--work`` shows a few faces of every fake and real unit.

Baselines, side by side: ``face size`` (the face box's share of the frame) and ``high-frequency
energy`` (the share of the aligned crop's spectral energy above a quarter of Nyquist) are single
features scored in whichever direction gives the higher AUC on that very condition: an upper bound
on what the shortcut can do, generous to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from likeness.detector.calibration import roc_auc  # noqa: E402
from likeness.detector.evaluation import UnitFaces, best_direction_auc, high_frequency_energy  # noqa: E402
from likeness.detector.score import DetectorModel, load_detector  # noqa: E402
from likeness.detector.train import align_paths, validation_set  # noqa: E402
from likeness.faces.detect import FaceDetector  # noqa: E402
from likeness.media.images import read_image  # noqa: E402
from likeness.media.video import VideoEncoder, iter_video_frames, probe_video  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
#: Each condition's re-encode: (CRF, scale, crop fraction per side); the crop comes first.
CONDITIONS: dict[str, tuple[int, float, float]] = {
    "crf23": (23, 1.0, 0.0),
    "crf28": (28, 1.0, 0.0),
    "crf35": (35, 1.0, 0.0),
    "half-crf23": (23, 0.5, 0.0),
    "crop10-crf23": (23, 1.0, 0.1),
}
#: The swap models (family, px) and the refine options (colour, blend) each is rendered with:
#: 64 and 128 px, df and liae, every colour mode and both blends at least once.
SWAP_MODELS: dict[str, tuple[str, int, tuple[tuple[str, str], ...]]] = {
    "df_tiny-64": ("df_tiny", 64, (("rct", "alpha"),)),
    "liae_tiny-64": ("liae_tiny", 64, (("lct", "poisson"),)),
    "df_tiny-128": ("df_tiny", 128, (("hist", "alpha"),)),
    "liae_tiny-128": ("liae_tiny", 128, (("none", "poisson"),)),
}
#: The footage swaps are rendered onto and matched against (``portrait`` clips are authentic only).
FOOTAGES = ("actor", "generated")
#: The generated footage: a package portrait, talking, at the actor segments' size and a video frame rate.
GENERATED_FPS = 25


def crop_box(width: int, height: int, crop: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) keeping the middle of the frame, ``crop`` of each side cut, even sizes."""
    dx, dy = int(round(width * crop)), int(round(height * crop))
    return dx, dy, dx + (width - 2 * dx) // 2 * 2, dy + (height - 2 * dy) // 2 * 2


def reencode(source: Path, out: Path, *, crf: int, scale: float = 1.0, crop: float = 0.0) -> Path:
    info = probe_video(source)
    x0, y0, x1, y1 = crop_box(info.width, info.height, crop)
    width, height = int(round((x1 - x0) * scale / 2) * 2), int(round((y1 - y0) * scale / 2) * 2)
    with VideoEncoder(out, width=width, height=height, fps=info.frame_rate or info.fps, crf=crf) as enc:
        for frame in iter_video_frames(source):
            rgb = frame.rgb[y0:y1, x0:x1]
            if scale != 1.0:
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
            enc.write(np.ascontiguousarray(rgb), pts_s=frame.pts_s)
    return out


def condition_copy(clip: Path, condition: str, tmp: Path) -> Path:
    out = tmp / f"{clip.stem}.{condition}.mp4"
    if not out.exists():
        crf, scale, crop = CONDITIONS[condition]
        reencode(clip, out, crf=crf, scale=scale, crop=crop)
    return out


def split_segments(
    source: Path,
    tmp: Path,
    *,
    segments: int,
    frames: int,
    size: tuple[int, int],
    start: int = 0,
    prefix: str = "actor",
) -> list[Path]:
    """``segments * frames`` frames of ``source`` from frame ``start`` at ``size``, as separate
    near-lossless clips of ``frames`` frames each."""
    info = probe_video(source)
    fps = info.frame_rate or info.fps
    paths = [tmp / f"{prefix}_{k}.mp4" for k in range(segments)]
    encoder = None
    for frame in iter_video_frames(source):
        if frame.index < start:
            continue
        k = (frame.index - start) // frames
        if k >= segments:
            break
        if (frame.index - start) % frames == 0:
            if encoder is not None:
                encoder.close()
            encoder = VideoEncoder(paths[k], width=size[0], height=size[1], fps=fps, crf=12)
            encoder.__enter__()
        assert encoder is not None
        encoder.write(
            cv2.resize(frame.rgb, size, interpolation=cv2.INTER_AREA),
            pts_s=((frame.index - start) % frames) / float(fps),
        )
    if encoder is not None:
        encoder.close()
    return paths


class ClipFaces(UnitFaces):
    """Aligned crops and face sizes of one clip (every ``step``-th frame), as ``likeness detector evaluate`` takes them."""

    def __init__(self, detector: FaceDetector, clip: Path, step: int) -> None:
        super().__init__(clip)
        for frame in iter_video_frames(clip, step=step):
            self.add(detector, frame.rgb)


def method_scores(
    models: dict[str, DetectorModel], crops: list[np.ndarray], sizes: list[float]
) -> dict[str, np.ndarray]:
    scores = {name: model.logits(np.stack(crops)) for name, model in models.items()}
    scores["face size"] = np.asarray(sizes, np.float64)
    scores["high-frequency energy"] = np.array([high_frequency_energy(c) for c in crops])
    return scores


def setup_world(home: Path, performer_faces: list[np.ndarray], subject_faces: list[np.ndarray]):
    """``benchmarks/render.py``'s world, with a grant that allows output without the visible label:
    the label would sit under the chin, inside the detector's crop, and the threat is unlabelled
    footage anyway (the invisible watermark stays: it cannot be turned off)."""
    import render as render_bench  # benchmarks/render.py

    return render_bench.setup_world(home, performer_faces, subject_faces, allow_unlabelled=True)


def generated_footage(tmp: Path, *, segments: int, frames: int) -> Path:
    """The generated footage: ``grace_hopper`` talking (``benchmarks/render.py``'s second performer),
    filling a 1280x720 frame, near-lossless, ``segments * frames`` frames."""
    from likeness.media.synthetic import grace_hopper, write_clip

    out = tmp / "generated_source.mp4"
    if out.exists():
        return out
    return write_clip(
        out,
        grace_hopper(),
        seconds=segments * frames / GENERATED_FPS,
        fps=GENERATED_FPS,
        size=(1280, 720),
        with_audio=False,
        seed=3,
        crf=12,
        talking=True,
    )


def swap_name(family: str, resolution: int, colour: str, blend: str) -> str:
    return f"{family} {resolution} px, {colour}, {blend}"


def make_swaps(args: argparse.Namespace, footage: dict[str, list[Path]], tmp: Path) -> dict[str, dict[str, list[Path]]]:
    """Render every segment of each footage with each swap model and refine option through the
    product's own pipeline: ``{footage: {swap group: [rendered segment, ...]}}``."""
    import render as render_bench  # benchmarks/render.py: the same aligned samples and trainer
    from likeness.media.synthetic import animate_portrait, grace_hopper, talking_portrait
    from likeness.render import RefineOptions, RenderOptions, render_media

    idol_dir = args.media / "synthetic_people" / "seeprettyface_1024"
    idols = [read_image(p) for p in sorted(idol_dir.glob("*.png"))[:3]]
    # The released performer's references: a face of each footage, or render would not swap onto it
    # (the generated face stands in for a second consenting performer, as in benchmarks/render.py).
    performer_refs = [next(iter_video_frames(segments[0])).rgb for segments in footage.values()]
    ws = setup_world(tmp / f"home-{time.time_ns()}", performer_refs, idols)
    source_frames = [f for rgb in idols for f in animate_portrait(rgb, n_frames=30, size=(512, 512), seed=7)]
    dfdc = args.media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
    target_frames = [f.rgb for f in iter_video_frames(dfdc, step=3, max_side=1280)]
    if "generated" in footage:  # the swap trains on its target footage, as a deepfake maker would
        target_frames += list(talking_portrait(grace_hopper(), n_frames=60, size=(512, 512), seed=3))
    swaps: dict[str, dict[str, list[Path]]] = {name: {} for name in footage}
    samples: dict[int, tuple] = {}  # aligned (source, target) faces per resolution, aligned once
    for key in args.swap_models:
        family, resolution, refinements = SWAP_MODELS[key]
        model = None
        for colour, blend in refinements:
            name = swap_name(family, resolution, colour, blend)
            for source_name, segments in footage.items():
                outs = [tmp / f"swap_{key}_{colour}_{blend}_{segment.stem}.mp4" for segment in segments]
                swaps[source_name][name] = outs
                if all(out.exists() for out in outs):  # a rerun with --work reuses its renders
                    continue
                if model is None:
                    if resolution not in samples:
                        samples[resolution] = tuple(
                            render_bench.aligned_samples(frames, resolution)
                            for frames in (source_frames, target_frames)
                        )
                    model = train_swap(ws, args, tmp, *samples[resolution], family, resolution)
                options = RenderOptions(
                    refine=RefineOptions(colour=colour, blend=blend), write_report=False, unlabelled=True
                )
                started = time.perf_counter()
                for segment, out in zip(segments, outs):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        render_media(ws, model, segment, out, use="music_video", org="studio", options=options)
                print(
                    f"  rendered {name} onto {len(segments)} {source_name} segments "
                    f"in {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                )
    ws.close()
    return swaps


def train_swap(ws, args: argparse.Namespace, tmp: Path, source, target, family: str, resolution: int) -> Path:
    """One swap model trained for ``--train-minutes`` and exported (``benchmarks/render.py``'s trainer)."""
    import render as render_bench  # benchmarks/render.py

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = render_bench.make_model(
            ws,
            tmp / f"m_{family}{resolution}-{time.time_ns()}",
            source,
            target,
            family=family,
            resolution=resolution,
            iterations=None,
            minutes=args.train_minutes,
        )
    return model


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--detector", type=Path)
    parser.add_argument("--scratch", type=Path)
    parser.add_argument(
        "--agency-example",
        action="store_true",
        help="instead of the tables: the agency fine-tune example (the actor's face swapped onto someone else)",
    )
    parser.add_argument(
        "--init", type=Path, help="fine-tune from this detector checkpoint instead of the shipped general model"
    )
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument(
        "--agency",
        type=Path,
        help="a fine-tune on the actor's own authentic frames (outside the "
        "evaluated segments), from scripts/train_detector.py --train-only ... --init ...",
    )
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--step", type=int, default=2, help="score every this many frames")
    parser.add_argument(
        "--swap-models",
        nargs="+",
        choices=list(SWAP_MODELS),
        default=list(SWAP_MODELS),
        help="the swap models to train and render (default: all)",
    )
    parser.add_argument("--train-minutes", type=float, default=1.5)
    parser.add_argument("--authentic-portraits", type=int, default=6)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, help="keep clips here (default: a temporary folder)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    if args.agency_example:
        if args.work:
            args.work.mkdir(parents=True, exist_ok=True)
            return agency_example(args, args.work)
        with tempfile.TemporaryDirectory(prefix="detector-agency-") as tmp:
            return agency_example(args, Path(tmp))
    if not args.detector or not args.scratch:
        parser.error("--detector and --scratch are required (except with --agency-example)")
    models = {
        "SBI, ImageNet MobileNetV2": load_detector(args.detector),
        "SBI, MobileNetV2 from scratch": load_detector(args.scratch),
    }
    if args.agency:
        models["SBI, ImageNet, fine-tuned on the actor"] = load_detector(args.agency)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        return run(args, models, args.work)
    with tempfile.TemporaryDirectory(prefix="detector-bench-") as tmp:
        return run(args, models, Path(tmp))


def run(args: argparse.Namespace, models: dict[str, DetectorModel], tmp: Path) -> int:
    results: dict = {
        "models": {
            name: {k: m.card[k] for k in ("model", "sha256", "calibration", "validation")} for name, m in models.items()
        }
    }
    methods = [*models, "face size", "high-frequency energy"]
    results["ms_per_face"] = {}
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    for name, model in models.items():
        model.logits(one)
        times = []
        for _ in range(50):
            started = time.perf_counter()
            model.logits(one)
            times.append(time.perf_counter() - started)
        results["ms_per_face"][name] = 1000 * float(np.median(times))
    table(
        "Table 0: ONNX Runtime, one face per call, 1 thread, median of 50 (ms per face)",
        ["model", "ms"],
        [[name, f"{ms:.1f}"] for name, ms in results["ms_per_face"].items()],
    )
    # Table 1: SBI validation on the held-out identities (the training script's split).
    portraits = sorted(
        p for p in (args.media / "portraits" / "congress_pd").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )
    held_out = portraits[::7]
    faces = align_paths(held_out)
    crops, labels = validation_set(faces)
    sizes = [float("nan")] * len(crops)  # portraits: the blend does not change the face box
    scores = method_scores(models, list(crops), sizes)
    sbi_rows = []
    results["sbi_validation"] = {}
    for method in methods:
        auc = (
            float("nan")
            if method == "face size"
            else (
                best_direction_auc(labels, scores[method]) if method not in models else roc_auc(labels, scores[method])
            )
        )
        results["sbi_validation"][method] = auc
        sbi_rows.append([method, f"{auc:.3f}"])
    table(
        f"Table 1: SBI validation, {len(faces)} held-out identities (each pristine and self-blended), frame AUC",
        ["method", "AUC"],
        sbi_rows,
    )

    # Footage: the actor's segments and the generated clip's, each the real side of its own fakes.
    dfdc = args.media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
    generated = generated_footage(tmp, segments=args.segments, frames=args.frames)
    footage = {
        "actor": split_segments(dfdc, tmp, segments=args.segments, frames=args.frames, size=(1280, 720)),
        "generated": split_segments(
            generated, tmp, segments=args.segments, frames=args.frames, size=(1280, 720), prefix="generated"
        ),
    }
    from likeness.media.synthetic import write_clip

    animated = [
        write_clip(
            tmp / f"portrait_{k}.mp4",
            read_image(p),
            seconds=args.frames / 25,
            fps=25,
            size=(640, 480),
            seed=k,
            with_audio=False,
        )
        for k, p in enumerate(held_out[: args.authentic_portraits])
    ]
    started = time.perf_counter()
    swaps = make_swaps(args, footage, tmp)
    print(f"  swaps made in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    sheet = [paths[0] for groups in swaps.values() for paths in groups.values()]
    sheet += [segments[0] for segments in footage.values()]
    print(
        f"face sheet (rows: each swap group's first fake per footage, then the real ones): "
        f"{face_sheet(sheet, tmp / 'faces.png')}"
    )

    # Each scored clip: (footage, group, label, scores); group "real" for untouched clips.
    per_condition: dict[str, list[tuple[str, str, int, dict[str, np.ndarray]]]] = {}
    with FaceDetector(mode="image") as detector:
        for condition in CONDITIONS:
            clips: list[tuple[str, str, int, ClipFaces]] = []
            for source_name, segments in footage.items():
                for segment in segments:
                    clip = condition_copy(segment, condition, tmp)
                    clips.append((source_name, "real", 0, ClipFaces(detector, clip, args.step)))
                for name, paths in swaps[source_name].items():
                    for path in paths:
                        clip = condition_copy(path, condition, tmp)
                        clips.append((source_name, name, 1, ClipFaces(detector, clip, args.step)))
            for clip in animated:
                faces = ClipFaces(detector, condition_copy(clip, condition, tmp), args.step)
                clips.append(("portrait", "real", 0, faces))
            clips = [c for c in clips if c[3].crops]
            per_condition[condition] = [
                (source_name, group, label, method_scores(models, faces.crops, faces.sizes))
                for source_name, group, label, faces in clips
            ]
            print(
                f"  scored {condition}: {sum(len(c[3].crops) for c in clips)} faces in {len(clips)} clips",
                file=sys.stderr,
            )

    results["footage"] = {
        "actor": f"{args.segments} segments of {args.frames} frames of {dfdc.name}, 1280x720",
        "generated": f"{args.segments} segments of {args.frames} frames of grace_hopper talking "
        f"(likeness.media.synthetic), 1280x720, {GENERATED_FPS} fps",
        "swap_models": {key: SWAP_MODELS[key] for key in args.swap_models},
    }
    results["swaps"] = {}
    for source_name in footage:
        rows = []
        for condition in CONDITIONS:
            # Fakes against their own untouched sources.
            matched = [c for c in per_condition[condition] if c[0] == source_name]
            entry = {method: swap_aucs(matched, method, learned=method in models) for method in methods}
            results["swaps"].setdefault(condition, {})[source_name] = entry
            rows.append([condition] + [f"{entry[m]['video_auc']:.3f} / {entry[m]['frame_auc']:.3f}" for m in methods])
        groups = list(swaps[source_name])
        n_real = sum(1 for c in per_condition["crf23"] if c[0] == source_name and c[2] == 0)
        n_fake = sum(1 for c in per_condition["crf23"] if c[0] == source_name and c[2] == 1)
        table(
            f"Table 2 ({source_name} footage): the product's swaps ({'; '.join(groups)}) on {args.segments} "
            f"{source_name} segments of {args.frames} frames ({n_fake} fake and {n_real} real clips per condition), "
            "video AUC / frame AUC",
            ["condition", *methods],
            rows,
        )

    # Per swap group: that group's fakes against their footage's real clips, for the learned models.
    results["swaps_per_group"] = {}
    rows = []
    for source_name in footage:
        for group in swaps[source_name]:
            cells = []
            for condition in CONDITIONS:
                matched = [c for c in per_condition[condition] if c[0] == source_name and c[1] in ("real", group)]
                entry = {name: swap_aucs(matched, name, learned=True) for name in models}
                results["swaps_per_group"].setdefault(source_name, {}).setdefault(group, {})[condition] = entry
                cells.append(" / ".join(f"{entry[name]['video_auc']:.2f}" for name in models))
            rows.append([source_name, group, *cells])
    table(
        f"Table 2c: video AUC per swap group against its footage's real segments ({' / '.join(models)})",
        ["footage", "swap group", *CONDITIONS],
        rows,
    )

    results["authentic_fpr"] = {}
    rows = []
    groups = [*footage, "portrait"]
    for condition in CONDITIONS:
        entry: dict = {}
        cells = []
        for source_name in groups:
            authentic = [c for c in per_condition[condition] if c[2] == 0 and c[0] == source_name]
            for name, model in models.items():
                frames = np.concatenate([s[name] for *_, s in authentic])
                videos = np.array([float(np.mean(s[name])) for *_, s in authentic])
                frame_fpr = float((frames >= model.threshold_logit).mean())
                video_fpr = float((videos >= model.threshold_logit).mean())
                entry.setdefault(source_name, {})[name] = {
                    "frame_fpr": frame_fpr,
                    "video_fpr": video_fpr,
                    "frames": int(len(frames)),
                    "videos": int(len(videos)),
                }
                cells.append(f"{frame_fpr:.2f} / {video_fpr:.2f}")
        results["authentic_fpr"][condition] = entry
        rows.append([condition, *cells])
    target = next(iter(models.values())).card["calibration"]["target_false_positive_rate"]
    table(
        f"Table 3: false-positive rate on authentic footage at each model's shipped threshold (target {target:.2f}), "
        f"frame / video; actor = the {args.segments} untouched actor segments, generated = the {args.segments} "
        f"untouched generated segments, portrait = {len(animated)} animated held-out portraits (the identities the "
        "threshold was set on, as stills)",
        ["condition", *[f"{g}: {m}" for g in groups for m in models]],
        rows,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


def swap_aucs(clips: list, method: str, *, learned: bool) -> dict[str, float]:
    """Frame and video AUC of ``method`` over ``clips`` ((footage, group, label, scores)): a learned
    model's logits as they are, a baseline's feature in whichever direction is higher."""
    auc = roc_auc if learned else best_direction_auc
    frame_labels = np.concatenate([np.full(len(s[method]), label) for _, _, label, s in clips])
    frame_values = np.concatenate([s[method] for *_, s in clips])
    video_labels = np.array([label for _, _, label, _ in clips])
    video_values = np.array([float(np.mean(s[method])) for *_, s in clips])
    return {"frame_auc": auc(frame_labels, frame_values), "video_auc": auc(video_labels, video_values)}


# --- The agency example (``--agency-example``): the artist's face swapped onto someone else. ---

#: Frames of the consenting-actor clip (300 frames, 29.97 fps) by use, disjoint in time, with a
#: few frames between parts so that no held-out frame is a near-copy of a training one.
SWAP_SOURCE_FRAMES = range(0, 90)  # the actor as the swap's source identity (and the enrolment photos)
HELD_OUT_REAL_START = 96  # then ``--segments`` segments of ``--frames`` frames: authentic, held out
DETECTOR_TRAIN_FRAMES = range(222, 300, 2)  # the detector fine-tune's authentic frames
#: The actor's face box covers about 2 % of a 1280x720 frame; the performer's clip is scaled into
#: a grey frame to match, with a slow zoom (+-15 % over 80 frames) so that the fakes' face sizes
#: lie on both sides of the actor's: with one fixed framing, face size alone told every fake segment
#: from every real one (video AUC 1.00), and the detector could not be told from that shortcut.
FRAME_SIZE = (1280, 720)
PERFORMER_PANE = (350, 198)
ZOOM, ZOOM_PERIOD = 0.15, 80


def actor_frames(dfdc: Path, frames: range, *, max_side: int = 1280) -> list[np.ndarray]:
    wanted = set(frames)
    return [f.rgb for f in iter_video_frames(dfdc, max_side=max_side) if f.index in wanted]


def performer_clip(out: Path, *, n_frames: int, fps: float) -> Path:
    """Someone else (``grace_hopper``, talking), framed like the actor: a small pane in a grey frame."""
    from likeness.media.synthetic import grace_hopper, talking_portrait

    if out.exists():
        return out
    w, h = FRAME_SIZE
    with VideoEncoder(out, width=w, height=h, fps=fps, crf=12) as enc:
        for k, rgb in enumerate(talking_portrait(grace_hopper(), n_frames=n_frames, size=FRAME_SIZE, seed=3)):
            zoom = 1 + ZOOM * np.sin(2 * np.pi * k / ZOOM_PERIOD)
            px, py = (int(round(v * zoom / 2) * 2) for v in PERFORMER_PANE)
            x0, y0 = (w - px) // 2, (h - py) // 3
            frame = np.full((h, w, 3), 118, np.uint8)
            frame[y0 : y0 + py, x0 : x0 + px] = cv2.resize(rgb, (px, py), interpolation=cv2.INTER_AREA)
            enc.write(frame, pts_s=k / fps)
    return out


def swapped_frames(original: Path, rendered: Path, frames: range) -> str:
    """How many of ``frames`` the render changed (a face it did not swap is left untouched)."""
    changed = [
        float(np.abs(a.rgb.astype(np.int16) - b.rgb.astype(np.int16)).max(axis=2).mean()) > 1.0
        for a, b in zip(iter_video_frames(original), iter_video_frames(rendered))
        if a.index in frames
    ]
    return f"{sum(changed)} of {len(changed)}"


def render_fakes(args: argparse.Namespace, ws, performer: Path, tmp: Path) -> tuple[list[Path], dict]:
    """Train a swap model with the actor as the SOURCE identity onto the performer's first half,
    render the performer's clip unlabelled, and cut its held-out half into segments re-encoded at
    CRF 23 (a re-upload)."""
    import render as render_bench  # benchmarks/render.py: the same aligned samples and trainer
    from likeness.render import RenderOptions, render_media

    dfdc = args.media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
    n = args.segments * args.frames
    model = tmp / "swap-actor-onto-performer"
    info: dict = {"recipe": "preview", "minutes": args.train_minutes}
    if not model.exists():
        source = render_bench.aligned_samples(actor_frames(dfdc, SWAP_SOURCE_FRAMES), 64)
        target_frames = [f.rgb for f in iter_video_frames(performer) if f.index < n]
        target = render_bench.aligned_samples(target_frames, 64)
        partial = tmp / "swap-training"
        shutil.rmtree(partial, ignore_errors=True)
        _, iterations = render_bench.train_recipe(
            ws, partial, source, target, recipe="preview", minutes=args.train_minutes
        )
        partial.rename(model)
        info.update(iterations=iterations, source_faces=len(source.images), target_faces=len(target.images))
    # One render of the whole performer clip, then cut: the video-mode face detector needs a few
    # frames to find a face this small, so rendering each short segment alone would leave its
    # first frames (in one case all 20) untouched.
    rendered = tmp / "performer.swapped.mp4"
    if not rendered.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = render_media(
                ws,
                model,
                performer,
                rendered,
                use="music_video",
                org="studio",
                options=RenderOptions(write_report=False, unlabelled=True),
            )
        info.update(frames_rendered=report.frames_rendered, frames_with_swaps=report.frames_with_swaps)
    info["held_out_frames_swapped"] = swapped_frames(performer, rendered, range(n, 2 * n))
    fakes = [
        condition_copy(p, "crf23", tmp)
        for p in split_segments(
            rendered, tmp, segments=args.segments, frames=args.frames, size=FRAME_SIZE, start=n, prefix="fake"
        )
    ]
    return fakes, info


def face_sheet(clips: list[Path], out: Path, *, per_clip: int = 3) -> Path:
    """The largest face of a few frames of each clip, side by side, to look at."""
    rows = []
    with FaceDetector(mode="image") as detector:
        for clip in clips:
            frames = list(iter_video_frames(clip))
            tiles = []
            for frame in frames[:: max(1, len(frames) // per_clip)][:per_clip]:
                faces = detector.detect(frame.rgb)
                tile = np.zeros((192, 192, 3), np.uint8)
                if faces:
                    x0, y0, x1, y1 = (int(v) for v in max(faces, key=lambda f: f.bbox[2] - f.bbox[0]).bbox)
                    m = (x1 - x0) // 3
                    crop = frame.rgb[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m]
                    tile = cv2.resize(crop, (192, 192), interpolation=cv2.INTER_CUBIC)
                tiles.append(tile)
            rows.append(np.concatenate(tiles, axis=1))
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return out


def fine_tune(args: argparse.Namespace, dfdc: Path, tmp: Path) -> Path:
    """The detector fine-tuned on the actor's training frames, from the general model (shipped, or ``--init``)."""
    from likeness.detector.train import CARD_FILE, MODEL_FILE, DetectorTrainConfig, train_from_folders

    folder = tmp / "detector-agency"
    if (folder / CARD_FILE).exists():
        return folder
    frames_dir = tmp / "actor_train_frames"
    frames_dir.mkdir(exist_ok=True)
    for k, rgb in zip(DETECTOR_TRAIN_FRAMES, actor_frames(dfdc, DETECTOR_TRAIN_FRAMES, max_side=1920)):
        cv2.imwrite(str(frames_dir / f"frame_{k:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    started = time.process_time()
    config = DetectorTrainConfig(
        steps=args.finetune_steps, threads=1, init_checkpoint=str(args.init) if args.init else None
    )
    train_from_folders(
        [args.media / "portraits" / "congress_pd"], tmp / "detector-work", train_only=[frames_dir], config=config
    )
    print(f"  detector fine-tune: {time.process_time() - started:.0f} CPU s", file=sys.stderr)
    folder.mkdir(exist_ok=True)
    for name in (MODEL_FILE, CARD_FILE):
        shutil.copyfile(tmp / "detector-work" / name, folder / name)
    return folder


def verify_row(ws, clip: Path, slug: str) -> tuple[list[str], dict]:
    from likeness.verify import verify_path

    result = json.loads(verify_path(ws, clip, record=False).to_json())
    faces = (result.get("faces") or {}).get("faces") or []
    matched = [f for f in faces if (f.get("match") or {}).get("slug") == slug]
    nearest = [f["nearest"] for f in faces if f.get("nearest")]
    manipulation = result["manipulation"]
    score = (
        f"{manipulation['score']:.2f} (threshold {manipulation['threshold']['calibrated_logit']:.2f}), "
        f"suspected: {manipulation['suspected']}"
        if manipulation.get("status") == "analysed"
        else manipulation["status"]
    )
    distances = ", ".join(f"{n['slug']} {n['distance']:.3f}/{n.get('threshold') or 0:.3f}" for n in nearest)
    row = [clip.name, result["verdict"], f"{len(matched)} of {len(faces)}", distances or "-", score]
    return row, result


def recognition_table(recognition: list[dict]) -> None:
    """Each evaluation unit as verify recognises it: only those recognised as the actor count."""
    table(
        "Recognition of each evaluation unit (verify's gallery and track rule; only units recognised as mina are measured)",
        ["unit", "class", "recognised as", "distance to mina / threshold", "measured"],
        [
            [
                Path(seen["unit"]).name,
                seen["class"],
                seen["recognised_as"] or "no enrolled match",
                "-" if seen["distance"] is None else f"{seen['distance']:.3f} / {seen['threshold']:.3f}",
                "yes" if seen["analysed_by_verify"] else "no",
            ]
            for seen in recognition
        ],
    )


def evaluation_tables(evaluation: dict) -> None:
    """The evaluation's figures and gates, on the units recognised as the actor."""
    figures = evaluation["figures"]
    table(
        f"Evaluation ({figures['units']['real']} real and {figures['units']['fake']} fake units, "
        f"{figures['faces']['real']} and {figures['faces']['fake']} faces)",
        ["method", "frame AUC", "video AUC"],
        [
            ["fine-tuned detector", f"{figures['frame_auc']:.3f}", f"{figures['video_auc']:.3f}"],
            *[
                [name.replace("_", " "), f"{b['frame_auc']:.3f}", f"{b['video_auc']:.3f}"]
                for name, b in figures["baselines"].items()
            ],
        ],
    )
    fpr = figures["authentic_false_positive_rate"]
    print(
        f"\nauthentic FPR at the card's threshold {figures['threshold_logit']:.3f}: frames {fpr['frame']:.3f}, "
        f"videos {fpr['video']:.3f}; fake videos at or over it: {figures['fake_recall_at_threshold']['video']:.3f}"
    )
    table(
        "Gates",
        ["gate", "figure", "limit", "holds"],
        [
            [g["gate"], f"{g['figure']:.3f}", f"{g['limit']:.3f}", "yes" if g["holds"] else "**no**"]
            for g in evaluation["gates"]
        ],
    )


def agency_example(args: argparse.Namespace, tmp: Path) -> int:
    """The artist's face swapped onto someone else, a fine-tune on the artist's own frames, its
    evaluation on held-out real segments and those fakes, registration, and verify."""
    import render as render_bench  # benchmarks/render.py
    from likeness.detector.evaluation import TooFewUnits, evaluate_detector, evaluation_subject
    from likeness.detector.registered import register_detector
    from likeness.errors import ModelError

    dfdc = args.media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
    fps = probe_video(dfdc).frame_rate or probe_video(dfdc).fps
    n = args.segments * args.frames
    real_end = HELD_OUT_REAL_START + n - 1
    if real_end >= DETECTOR_TRAIN_FRAMES.start - 2:
        raise SystemExit(f"--segments x --frames reaches frame {real_end}: the detector's frames start at 222")
    print(
        f"actor clip frames: swap source {SWAP_SOURCE_FRAMES.start}-{SWAP_SOURCE_FRAMES.stop - 1}; held-out real "
        f"{HELD_OUT_REAL_START}-{real_end} ({args.segments} x {args.frames}); detector training "
        f"{DETECTOR_TRAIN_FRAMES.start}-{DETECTOR_TRAIN_FRAMES[-1]} every {DETECTOR_TRAIN_FRAMES.step} "
        f"({len(DETECTOR_TRAIN_FRAMES)} frames); performer frames 0-{n - 1} train the swap, {n}-{2 * n - 1} are faked"
    )
    reals = [
        condition_copy(p, "crf23", tmp)
        for p in split_segments(
            dfdc, tmp, segments=args.segments, frames=args.frames, size=FRAME_SIZE, start=HELD_OUT_REAL_START
        )
    ]
    performer = performer_clip(tmp / "performer.mp4", n_frames=2 * n, fps=fps)
    enrolment = actor_frames(dfdc, SWAP_SOURCE_FRAMES[::10])
    home = tmp / "home"  # throw-away, kept with the swap model whose grant it holds (a rerun reuses both)
    if home.exists():
        from likeness.config import Settings
        from likeness.workspace import Workspace

        ws = Workspace.open(Settings(home=home))
    else:
        # The performer is released with faces from the frames the swap trains on (one is not enough
        # for the render to know her in every held-out segment).
        performer_refs = [f.rgb for f in iter_video_frames(performer) if f.index < n and f.index % 20 == 0]
        ws = render_bench.setup_world(home, performer_refs, enrolment, allow_unlabelled=True)
    started = time.perf_counter()
    fakes, swap_info = render_fakes(args, ws, performer, tmp)
    print(f"  swap model and {len(fakes)} fakes in {time.perf_counter() - started:.0f} s: {swap_info}", file=sys.stderr)
    print(f"face sheet (rows: fakes, then real segments): {face_sheet(fakes + reals, tmp / 'faces.png')}")

    detector = fine_tune(args, dfdc, tmp)
    try:
        evaluation = evaluate_detector(detector, reals, fakes, subject=evaluation_subject(ws, "mina"))
    except TooFewUnits as exc:
        recognition_table(exc.recognition)
        print(f"\nevaluate refused: {exc}")
    else:
        recognition_table(evaluation["recognition"])
        evaluation_tables(evaluation)
    try:
        registered = register_detector(ws, detector, "mina")
        print(
            f"\nregistered for mina: {registered.model} {registered.onnx_sha256[:16]} (ledger #{registered.ledger_seq})"
        )
    except ModelError as exc:
        from likeness.detector.registered import registered_detectors

        mina = ws.registry.get_subject("mina").id
        earlier = next((r for r in registered_detectors(ws) if r.subject_id == mina), None)
        print(f"\nregister refused: {exc}")
        print(
            "verify below uses "
            + (f"the registration this workspace already held (ledger #{earlier.ledger_seq})" if earlier else "none")
        )
    rows, shown = [], {}
    for clip in [*fakes, *reals]:
        row, result = verify_row(ws, clip, "mina")
        rows.append(row)
        shown.setdefault("fake" if clip in fakes else "real", result)
    table(
        "verify on every unit (the actor is enrolled as `mina`)",
        ["file", "verdict", "tracks recognised as the actor", "nearest (distance / threshold)", "manipulation"],
        rows,
    )
    for kind, result in shown.items():
        print(f"\n{kind} {Path(result['path']).name}: verdict {result['verdict']} ({result['verdict_rule']})")
        print(json.dumps(result["manipulation"], indent=2))
    ws.close()
    return 0


if __name__ == "__main__":
    from likeness.cli.native_logs import filter_native_stderr

    filter_native_stderr()  # MediaPipe's TFLite/absl lines, as the CLI drops them
    raise SystemExit(main())
