"""How much of what covers a face the swap paints over, with and without the occlusion mask.

    .venv/bin/python benchmarks/occlusion.py --faces ../shared/media/portraits/congress_pd \
        --glasses-list GLASSES.txt --clip ../shared/media/video/dfdc_consenting_actor_lynaeydofd.mp4 \
        [--compare-weights OLD_WEIGHTS_FOLDER] [--sheet SHEET.png]

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
* the consenting-actor clip's glasses, the same approximation, every 5th frame;
* the generated talking close-up (``talking_portrait`` of the package's Grace Hopper at 720p,
  as benchmarks/render.py renders it): her glasses, the same approximation, every 5th frame.

* faces with nothing in front of them (the held-out plain portraits and the package astronaut;
  the astronaut as a talking 720p close-up): every pixel a mask takes there is clear face, exactly.

"Clear face lost" is also given farther than RING_PX from the occluder: the mask grows what it
finds on purpose, so the ring around a found rim or strand is lost by design.

``--compare-weights`` names a folder of other weights (an ONNX file and its card, e.g. the
previous release's): both masks are measured on the same crops, side by side, cost included.
``--thin-weights`` (repeatable) names the ONNX file of a thin-structure add-on (its card beside
it, e.g. a training run's ``occlusion_mask.onnx``): the shipped mask with that add-on, zoned to
the spectacles (``likeness.faces.occlusion``), is measured beside the rest.
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
from likeness.faces.occlusion import THIN_FROM, OcclusionSegmenter, spectacle_zone
from likeness.media.images import read_image
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.render.mask import blend_mask, keep_occluders, landmark_hull

SIZES = (64, 128)


def renderer_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The blend mask FrameRenderer uses (default erode 3 %, feather 8 % of R), hull only."""
    return blend_mask(
        None, landmarks, size=size, erode_px=max(1, round(0.03 * size)), feather_px=max(1, round(0.08 * size))
    )


#: The mask grows what it finds by a pixel and feathers it by one, on purpose (an occluder's edge
#: stays): clear face within this many pixels of an occluder is that ring.
RING_PX = 2


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


def measure(image: np.ndarray, landmarks: np.ndarray, occluder: np.ndarray, masks: list[np.ndarray]) -> tuple:
    """(overwritten without, then per occlusion mask: overwritten with, face lost, face lost
    farther than RING_PX from the occluder) for one crop."""
    size = image.shape[0]
    face = hull(landmarks, size)
    target = occluder & face
    base = renderer_mask(landmarks, size)
    swapped_base = base >= 0.5
    clear = face & ~occluder & swapped_base
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING_PX + 1, 2 * RING_PX + 1))
    far = clear & ~(cv2.dilate(occluder.astype(np.uint8), disc) > 0)
    row = [float(swapped_base[target].mean()) if target.any() else float("nan")]
    for covered in masks:
        taken = swapped_base & ~(keep_occluders(base, covered) >= 0.5)
        row += [
            float((swapped_base & ~taken)[target].mean()) if target.any() else float("nan"),
            float(taken[clear].mean()) if clear.any() else 0.0,
            float(taken[far].mean()) if far.any() else 0.0,
        ]
    return tuple(row)


def runs_at(segmenter: OcclusionSegmenter, size: int) -> str:
    """The sides its networks run at for a crop of ``size`` ("64", or "64 + 128" with an add-on)."""
    sides = str(segmenter.input_size(size))
    return sides + (" + 128" if segmenter.thin_session is not None and size >= THIN_FROM else "")


def speed_table(
    segmenters: dict[str, OcclusionSegmenter], rgb: np.ndarray, detector: FaceDetector, repeats: int = 200
) -> str:
    """Per-face cost of the renderer's mask alone and with each occlusion mask, interleaved."""
    import time

    face = detector.detect(rgb)[0]
    names = list(segmenters)
    lines = [
        "| crop px | blend mask alone (ms, median) | "
        + " | ".join(f"+ occlusion mask {n} (ms, median; networks at px)" for n in names)
        + " |",
        "|---" * (2 + len(names)) + "|",
    ]
    for size in SIZES:
        crop = align_face(rgb, face.landmarks, size=size, coverage="wf")
        times: list[list[float]] = [[] for _ in range(1 + len(names))]
        for _ in range(repeats):
            started = time.perf_counter()
            renderer_mask(crop.landmarks, size)
            times[0].append(time.perf_counter() - started)
            for k, name in enumerate(names):
                started = time.perf_counter()
                covered = segmenters[name].occluders(crop.image[None], crop.landmarks[None])[0]
                keep_occluders(renderer_mask(crop.landmarks, size), covered)
                times[k + 1].append(time.perf_counter() - started)
        cells = [f"{statistics.median(t) * 1e3:.2f}" for t in times]
        cells[1:] = [f"{c} ({runs_at(segmenters[n], size)})" for c, n in zip(cells[1:], names)]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clip_frames(path: Path, every: int = 5):
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                yield frame.to_ndarray(format="rgb24")


def talking_closeup(frames: int = 60, every: int = 5, portrait: np.ndarray | None = None):
    """benchmarks/render.py's "talking 720p" performer (or ``portrait`` talking the same way),
    every ``every``-th frame."""
    from likeness.media.synthetic import talking_portrait

    face = grace_hopper() if portrait is None else portrait
    for index, rgb in enumerate(talking_portrait(face, n_frames=frames, size=(1280, 720), seed=1)):
        if index % every == 0:
            yield rgb


def version(segmenter: OcclusionSegmenter) -> str:
    """The weights' version from their cards (``likeness.occlusion-mask.v2`` -> ``v2``), with
    the thin add-on's after a ``+``."""
    name = str(segmenter.card.get("model", "?")).rsplit(".", 1)[-1]
    if segmenter.thin_card is not None:
        name += " + zoned thin " + str(segmenter.thin_card.get("model", "?")).rsplit(".", 1)[-1]
    return name


def zone_shown(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The crop, dimmed outside the spectacle zone (where the thin add-on may add occluders)."""
    if image.shape[0] < THIN_FROM:
        return image
    zone = spectacle_zone(landmarks, image.shape[0])[..., None]
    return (image * (0.45 + 0.55 * zone)).astype(np.uint8)


def _grey(mask: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(mask, 0, 1) * 255).astype(np.uint8)[..., None], 3, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, required=True, help="the portraits folder the mask was trained from")
    parser.add_argument("--glasses-list", type=Path, required=True, help="file names of its people wearing glasses")
    parser.add_argument("--clip", type=Path, help="a clip of a person wearing glasses")
    parser.add_argument("--compare-weights", type=Path, help="a folder of other weights to measure beside the shipped")
    parser.add_argument(
        "--thin-weights",
        type=Path,
        action="append",
        help="a thin add-on's ONNX file (its card beside it): the shipped mask with it, zoned; repeatable",
    )
    parser.add_argument("--sheet", type=Path, help="write a picture of the real-glasses cases here")
    args = parser.parse_args(argv)
    detector = FaceDetector(mode="image")
    shipped = OcclusionSegmenter()
    segmenters = {f"{version(shipped)} shipped": shipped}
    if args.compare_weights:
        compared = OcclusionSegmenter(args.compare_weights)
        segmenters = {f"{version(compared)} compared": compared, **segmenters}
    for path in args.thin_weights or []:
        zoned = OcclusionSegmenter(thin=path)
        segmenters[f"{version(zoned)} ({path.parent.name})"] = zoned
    glasses = set(args.glasses_list.read_text().split())
    portraits = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    plain = [p for p in portraits if p.name not in glasses]
    unseen = [read_image(p) for p in plain[::7]] + [astronaut()]
    real_glasses = [read_image(p) for p in portraits if p.name in glasses] + [grace_hopper()]
    real_sets: list[tuple[str, list[np.ndarray]]] = [("real glasses (portraits)", real_glasses)]
    if args.clip:
        real_sets.append(("consenting actor's glasses (clip)", list(clip_frames(args.clip))))
    real_sets.append(("talking close-up's glasses (generated 720p)", list(talking_closeup())))
    # Nothing in front of these faces: every pixel a mask takes is clear face, exactly.
    clear_sets = [
        ("plain portraits (held out) and the astronaut", unseen),
        (
            "talking close-up without glasses (the astronaut, generated 720p)",
            list(talking_closeup(portrait=astronaut())),
        ),
    ]

    def aligned_faces(images, size):
        for rgb in images:
            faces = detector.detect(rgb)
            if faces:
                yield align_face(rgb, faces[0].landmarks, size=size, coverage="wf")

    def masks(image: np.ndarray, landmarks: np.ndarray) -> list[np.ndarray]:
        return [segmenter.occluders(image[None], landmarks[None])[0] for segmenter in segmenters.values()]

    rows = []
    clear_rows = []
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
                        results.append(measure(image, crop.landmarks, drawn >= 0.5, masks(image, crop.landmarks)))
            rows.append((f"synthetic {kind}", size, results))
        for name, images in real_sets:
            results = []
            for k, crop in enumerate(aligned_faces(images, size)):
                rims = dark_rims(crop.image, crop.landmarks)
                if rims.sum() < 5:
                    continue
                covered = masks(crop.image, crop.landmarks)
                results.append(measure(crop.image, crop.landmarks, rims, covered))
                if args.sheet and size == 128 and k < (12 if name.startswith("real") else 3):
                    shown = [zone_shown(crop.image, crop.landmarks), _grey(rims)] + [_grey(c) for c in covered]
                    sheet.append(np.concatenate(shown, 1))
            rows.append((name, size, results))
        for name, images in clear_sets:
            taken = []
            for crop in aligned_faces(images, size):
                nothing = np.zeros(crop.image.shape[:2], bool)
                taken.append(measure(crop.image, crop.landmarks, nothing, masks(crop.image, crop.landmarks))[2::3])
            clear_rows.append((name, size, taken))

    names = list(segmenters)
    print(
        "| occluder | crop px | cases | overwritten, no occlusion mask | "
        + " | ".join(f"overwritten, {n}" for n in names)
        + " | "
        + " | ".join(f"clear face lost, {n}" for n in names)
        + " | "
        + " | ".join(f"of it farther than {RING_PX} px from the occluder, {n}" for n in names)
        + " |"
    )
    print("|---" * (4 + 3 * len(names)) + "|")
    for name, size, results in rows:
        if not results:
            print(f"| {name} | {size} | 0 |" + " |" * (1 + 3 * len(names)))
            continue
        medians = [statistics.median(r[k] for r in results) for k in range(len(results[0]))]
        overwritten = [f"{medians[1 + 3 * k]:.1%}" for k in range(len(names))]
        lost = [f"{medians[2 + 3 * k]:.1%}" for k in range(len(names))]
        far = [f"{medians[3 + 3 * k]:.1%}" for k in range(len(names))]
        print(f"| {name} | {size} | {len(results)} | {medians[0]:.1%} | " + " | ".join(overwritten + lost + far) + " |")
    print()
    print(
        "| nothing in front of the face | crop px | cases | "
        + " | ".join(f"clear face lost, {n} (median / mean / 90th percentile)" for n in names)
        + " |"
    )
    print("|---" * (3 + len(names)) + "|")
    for name, size, taken in clear_rows:
        spread = [
            " / ".join(f"{v:.1%}" for v in (np.median(col), np.mean(col), np.percentile(col, 90)))
            for col in np.array(taken).T
        ]
        print(f"| {name} | {size} | {len(taken)} | " + " | ".join(spread) + " |")
    print()
    print(speed_table(segmenters, unseen[-1], detector))
    if args.sheet and sheet:
        cv2.imwrite(str(args.sheet), np.concatenate(sheet, 0)[..., ::-1])
        print(
            f"\n{args.sheet}: per row the 128 px crop (dimmed outside the spectacle zone), the approximate "
            "rims, then the masks of " + ", ".join(names)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
