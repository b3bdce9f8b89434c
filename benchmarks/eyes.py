"""The eyes option's per-frame decision on a clip, as the renderer takes it (docs/render.md).

    .venv/bin/python benchmarks/eyes.py CLIP [--size 1280x720] [--frames 300] [--every-frame]
    .venv/bin/python benchmarks/eyes.py --rerender SCRATCH [--old-eyes RENDER.mp4] [--report-dir DIR]

Runs the renderer's own detection path on ``CLIP`` (FaceMesh in video mode at the renderer's
``detect_max_side``, landmarks interpolated between every-other-frame detections unless
``--every-frame``; with ``--size`` the clip is first cut and encoded as ``benchmarks/render.py``
cuts it, since the encode changes what FaceMesh reads), feeds the largest face's eye samples and head yaw to the renderer's own open-level
tracker (``likeness.render.frame._TrackEyes``) and prints per frame: the (right, left) eye
aspect ratios, the track's open levels, each eye's ratio to its level, the eye mask's weight
per eye (``eye_closures``), and whether the frame's landmarks were interpolated. Then, per
blink (a run of frames under ``BLINK_DEPTH`` of the clip's median openness, grown by 3
frames each side), the deepest ratio and the peak weight per eye, and outside the blinks the
lowest ratio of each eye and of the more open eye (the false-fire margins:
``EYE_CLOSED_FROM`` and ``PAIR_CLOSED_FROM``).

``--rerender``: the scratch folder ``benchmarks/render.py --recipes --recipe-names preview
--keep`` left renders its actor clip again with ``--eyes`` and the same trained model (so a
change to the eyes option is compared on one model), prints table 6's cells, and with
``--report-dir`` writes the blink-frame picture: performer, ``--old-eyes``, this render.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from likeness.faces.detect import FaceDetector
from likeness.faces.pose import head_pose
from likeness.faces.quality import eye_openness_each
from likeness.media.video import iter_video_frames
from likeness.render.frame import _TrackEyes
from likeness.render.keyframes import detect_alternate_frames
from likeness.render.mask import eye_closures
from likeness.render.pipeline import RenderOptions
from likeness.render.quality import BLINK_DEPTH


def blink_runs(openness: np.ndarray, *, grow: int = 3) -> list[tuple[int, int]]:
    """(first, last) frame of each blink: frames under ``1 - BLINK_DEPTH`` of the median, grown."""
    shut = openness < (1.0 - BLINK_DEPTH) * np.nanmedian(openness)
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(shut):
        first, last = max(int(i) - grow, 0), min(int(i) + grow, len(openness) - 1)
        if runs and first <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], last)
        else:
            runs.append((first, last))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path, nargs="?")
    parser.add_argument("--rerender", type=Path, default=None, help="a kept benchmarks/render.py scratch folder")
    parser.add_argument("--old-eyes", type=Path, default=None, help="an earlier --eyes render of the same clip")
    parser.add_argument("--report-dir", type=Path, default=None)
    parser.add_argument(
        "--size", default="", help="first cut the clip to WxH as benchmarks/render.py does (H.264), e.g. 1280x720"
    )
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--every-frame", action="store_true", help="FaceMesh on every frame (no interpolation)")
    args = parser.parse_args()
    if args.rerender is not None:
        return rerender(args.rerender, args.old_eyes, args.report_dir)
    if args.clip is None:
        parser.error("a CLIP or --rerender SCRATCH is needed")
    clip = args.clip
    with tempfile.TemporaryDirectory() as tmp:
        if args.size:
            from render import cut_clip

            width, height = (int(v) for v in args.size.split("x"))
            clip = cut_clip(args.clip, Path(tmp) / "cut.mp4", frames=args.frames, size=(width, height))
        return report(clip, frames=args.frames, every_frame=args.every_frame)


def report(clip: Path, *, frames: int, every_frame: bool) -> int:
    """Print the per-frame table, the per-blink table and the margins outside the blinks."""

    def decoded() -> Iterator[Any]:
        for frame in iter_video_frames(clip):
            if frame.index >= frames:
                return
            yield frame

    detector = FaceDetector(RenderOptions().max_faces, mode="video", max_side=RenderOptions().detect_max_side)
    stream: Iterator[tuple[Any, list[Any], bool]]
    if every_frame:
        stream = ((f, detector.detect(f.rgb), False) for f in decoded())
    else:
        stream = detect_alternate_frames(decoded(), detector.detect)
    track = _TrackEyes()
    rows: list[tuple[tuple[float, float], tuple[float, float] | None, float, bool] | None] = []
    for frame, faces, interpolated in stream:
        if not faces:
            rows.append(None)
            continue
        face = max(faces, key=lambda f: f.bbox[2] - f.bbox[0])
        points = np.asarray(face.landmarks, np.float32)
        yaw = head_pose(points, frame.rgb.shape[:2])[0]
        openness = eye_openness_each(points)
        levels = track.add(openness, yaw=yaw)
        rows.append((openness, levels, yaw, interpolated))

    print("| frame | interp. | yaw | right | left | levels | right/level | left/level | weight right | weight left |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    relative = np.full((len(rows), 2), np.nan)
    weights = np.zeros((len(rows), 2))
    for i, row in enumerate(rows):
        if row is None:
            print(f"| {i} | no face |")
            continue
        (right, left), levels, yaw, interpolated = row
        if levels is None:
            print(f"| {i} | {'y' if interpolated else ''} | {yaw:.0f} | {right:.3f} | {left:.3f} | – |")
            continue
        relative[i] = right / levels[0], left / levels[1]
        weights[i] = eye_closures((right, left), levels)
        print(
            f"| {i} | {'y' if interpolated else ''} | {yaw:.0f} | {right:.3f} | {left:.3f} | "
            f"{levels[0]:.3f}, {levels[1]:.3f} | {relative[i, 0]:.3f} | {relative[i, 1]:.3f} | "
            f"{weights[i, 0]:.2f} | {weights[i, 1]:.2f} |"
        )
    mean_openness = np.array([np.nan if r is None else np.mean(r[0]) for r in rows])
    runs = blink_runs(mean_openness)
    print("\n| blink frames | deepest right/level | deepest left/level | peak weight right | peak weight left |")
    print("|---|---|---|---|---|")
    inside = np.zeros(len(rows), bool)
    for first, last in runs:
        inside[first : last + 1] = True
        span = slice(first, last + 1)
        low, peak = np.nanmin(relative[span], axis=0), weights[span].max(axis=0)
        print(f"| {first}–{last} | {low[0]:.3f} | {low[1]:.3f} | {peak[0]:.2f} | {peak[1]:.2f} |")
    outside = relative[~inside]
    frames_outside = np.flatnonzero(~inside)
    each, more_open = np.nanmin(outside, axis=1), np.nanmax(outside, axis=1)
    fired = frames_outside[(weights[~inside] > 0).any(axis=1)].tolist()
    print(
        f"\noutside blinks: lowest eye {np.nanmin(each):.3f} (frame {frames_outside[np.nanargmin(each)]}), "
        f"lowest more open eye {np.nanmin(more_open):.3f} (frame {frames_outside[np.nanargmin(more_open)]}); "
        f"frames with any mask: {fired}"
    )
    return 0


def rerender(scratch: Path, old_eyes: Path | None, report_dir: Path | None) -> int:
    """Table 6's ``--eyes`` row again on a kept scratch folder's clip and model."""
    from likeness.config import Settings
    from likeness.render import RefineOptions
    from likeness.workspace import Workspace
    from render import blink_crops, metric_cell, timed_render

    clip, model = scratch / "dfdc720.mp4", scratch / "m_preview"
    out = scratch / "rerender-eyes.mp4"
    ws = Workspace.open(Settings(home=scratch / "home"))
    try:
        fps, _, rep = timed_render(ws, model, clip, out, RenderOptions(refine=RefineOptions(eyes=True)))
    finally:
        ws.close()
    shot = max(rep["shots"], key=lambda s: s["frames_swapped"])
    m = shot["metrics"]
    print(
        f"| dfdc 720p | `--eyes` | {metric_cell(m['identity'])} | {metric_cell(m['mouth'])} | "
        f"{metric_cell(m['eyes'])} | {metric_cell(m['sharpness'])} | {metric_cell(m['occlusion'])} | "
        f"{metric_cell(m['flicker'])} | {fps:.1f} fps |"
    )
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        renders = {"old --eyes": old_eyes} if old_eyes is not None else {}
        blink_crops(clip, {**renders, "--eyes": out}, report_dir / "blinks-rerender.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
