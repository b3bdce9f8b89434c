"""How much of what covers a face the swap paints over, with and without the occlusion mask.

    .venv/bin/python benchmarks/occlusion.py --faces ../shared/media/portraits/congress_pd \
        --glasses-list GLASSES.txt --clip ../shared/media/video/dfdc_consenting_actor_lynaeydofd.mp4

The swap replaces a pixel where its blend mask is >= 0.5, so "overwritten" is the share of
occluder pixels inside the face (landmark hull) where the renderer's mask reaches 0.5; "face
lost" is the share of clear face pixels the occlusion mask takes away from the swap. The
baseline is the renderer's mask without the occlusion mask (landmark hull, eroded and feathered
as ``FrameRenderer`` does; no learned mask, so no model is needed), side by side in one run.

Three sets:
* synthetic occluders (ground truth exact) on faces the network never saw: the held-out
  portraits (every seventh, as in training) and the package portraits;
* real glasses (never in training): the portraits of people wearing glasses
  (``--glasses-list``), the rims taken as the dark pixels (luma < 70) of the band around the
  eyes, minus the irises: an approximation, looked at in ``--sheet``;
* the consenting-actor clip's glasses, the same approximation, every 5th frame.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np

from likeness.faces.align import align_face
from likeness.faces.canonical import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER
from likeness.faces.detect import FaceDetector
from likeness.faces.occluders import OCCLUDERS, occlude
from likeness.faces.occlusion import OcclusionSegmenter
from likeness.media.images import read_image
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.render.mask import blend_mask, keep_occluders, landmark_hull

SIZES = (64, 128)


def renderer_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The blend mask FrameRenderer uses (default erode 3 %, feather 8 % of R), hull only."""
    return blend_mask(
        None, landmarks, size=size, erode_px=max(1, round(0.03 * size)), feather_px=max(1, round(0.08 * size))
    )


def hull(landmarks: np.ndarray, size: int) -> np.ndarray:
    return landmark_hull(landmarks, size=size) > 0


def dark_rims(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Approximate glasses rims: dark pixels in the band around the eyes, irises excluded."""
    size = image.shape[0]
    right, left = landmarks[RIGHT_IRIS_CENTER], landmarks[LEFT_IRIS_CENTER]
    span = float(np.linalg.norm(left - right))
    y = float((right[1] + left[1]) / 2)
    band = np.zeros((size, size), bool)
    band[
        max(0, int(y - 0.45 * span)) : int(y + 0.45 * span),
        max(0, int(right[0] - 0.75 * span)) : int(left[0] + 0.75 * span),
    ] = True
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    irises = np.zeros((size, size), np.uint8)
    for centre in (right, left):
        cv2.circle(irises, (int(centre[0]), int(centre[1])), max(1, int(0.16 * span)), 1, -1)
    return band & (luma < 70) & ~irises.astype(bool)


def measure(image: np.ndarray, landmarks: np.ndarray, occluder: np.ndarray, segmenter: OcclusionSegmenter) -> tuple:
    """(overwritten without, overwritten with, face lost) for one crop."""
    size = image.shape[0]
    face = hull(landmarks, size)
    target = occluder & face
    base = renderer_mask(landmarks, size)
    masked = keep_occluders(base, segmenter.occluders(image[None])[0])
    swapped_base, swapped = base >= 0.5, masked >= 0.5
    clear = face & ~occluder & swapped_base
    return (
        float(swapped_base[target].mean()),
        float(swapped[target].mean()),
        float((swapped_base & ~swapped)[clear].mean()) if clear.any() else 0.0,
    )


def speed_table(segmenter: OcclusionSegmenter, rgb: np.ndarray, detector: FaceDetector, repeats: int = 200) -> str:
    """Per-face cost of the renderer's mask without and with the occlusion mask, interleaved."""
    import time

    face = detector.detect(rgb)[0]
    lines = [
        "| crop px | blend mask alone (ms, median) | blend mask + occlusion mask (ms, median) | ratio |",
        "|---|---|---|---|",
    ]
    for size in SIZES:
        crop = align_face(rgb, face.landmarks, size=size, coverage="wf")
        alone, both = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            renderer_mask(crop.landmarks, size)
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            keep_occluders(renderer_mask(crop.landmarks, size), segmenter.occluders(crop.image[None])[0])
            both.append(time.perf_counter() - started)
        a, b = statistics.median(alone) * 1e3, statistics.median(both) * 1e3
        lines.append(f"| {size} | {a:.2f} | {b:.2f} | {b / a:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, required=True, help="the portraits folder the mask was trained from")
    parser.add_argument("--glasses-list", type=Path, required=True, help="file names of its people wearing glasses")
    parser.add_argument("--clip", type=Path, help="a clip of a person wearing glasses")
    parser.add_argument("--sheet", type=Path, help="write a picture of the real-glasses cases here")
    args = parser.parse_args(argv)
    detector = FaceDetector(mode="image")
    segmenter = OcclusionSegmenter()
    glasses = set(args.glasses_list.read_text().split())
    portraits = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    plain = [p for p in portraits if p.name not in glasses]
    unseen = [read_image(p) for p in plain[::7]] + [astronaut()]
    real_glasses = [read_image(p) for p in portraits if p.name in glasses] + [grace_hopper()]

    def aligned_faces(images, size):
        for rgb in images:
            faces = detector.detect(rgb)
            if faces:
                yield align_face(rgb, faces[0].landmarks, size=size, coverage="wf")

    rows = []
    sheet = []
    for size in SIZES:
        crops = list(aligned_faces(unseen, size))
        for kind in OCCLUDERS:
            rng = np.random.default_rng(7)
            results = []
            for crop in crops:
                for _ in range(3):
                    image, drawn = occlude(crop.image, crop.landmarks, rng, kind=kind)
                    if (drawn >= 0.5).sum() >= 10:
                        results.append(measure(image, crop.landmarks, drawn >= 0.5, segmenter))
            rows.append((f"synthetic {kind}", size, len(results), results))
        results = []
        for crop in aligned_faces(real_glasses, size):
            rims = dark_rims(crop.image, crop.landmarks)
            if rims.sum() >= 5:
                results.append(measure(crop.image, crop.landmarks, rims, segmenter))
                if args.sheet and size == 128 and len(sheet) < 16:
                    covered = segmenter.occluders(crop.image[None])[0]
                    sheet.append(
                        np.concatenate(
                            [
                                crop.image,
                                np.repeat((rims * 255).astype(np.uint8)[..., None], 3, 2),
                                np.repeat((covered * 255).astype(np.uint8)[..., None], 3, 2),
                            ],
                            1,
                        )
                    )
        rows.append(("real glasses (portraits)", size, len(results), results))
        if args.clip:
            import av

            results = []
            video = FaceDetector(mode="image")
            with av.open(str(args.clip)) as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index % 5:
                        continue
                    rgb = frame.to_ndarray(format="rgb24")
                    faces = video.detect(rgb)
                    if not faces:
                        continue
                    crop = align_face(rgb, faces[0].landmarks, size=size, coverage="wf")
                    rims = dark_rims(crop.image, crop.landmarks)
                    if rims.sum() >= 5:
                        results.append(measure(crop.image, crop.landmarks, rims, segmenter))
            rows.append(("consenting actor's glasses (clip)", size, len(results), results))

    print(
        "| occluder | crop px | cases | overwritten, no occlusion mask (median) | overwritten, occlusion mask (median) | ratio | clear face lost (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, size, count, results in rows:
        if not results:
            print(f"| {name} | {size} | 0 | | | | |")
            continue
        before = statistics.median(r[0] for r in results)
        after = statistics.median(r[1] for r in results)
        lost = statistics.median(r[2] for r in results)
        ratio = f"{after / before:.2f}" if before > 0 else "n/a"
        print(f"| {name} | {size} | {count} | {before:.1%} | {after:.1%} | {ratio} | {lost:.1%} |")
    print()
    print(speed_table(segmenter, unseen[-1], detector))
    if args.sheet and sheet:
        cv2.imwrite(str(args.sheet), np.concatenate(sheet, 0)[..., ::-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
