"""Identity embedder: dlib-bin vs dlib's ResNet converted to ONNX, side by side in one run.

Usage:
    .venv/bin/python benchmarks/embedder.py [MEDIA_DIR] [--repeats 7] [--timed-faces 12]

MEDIA_DIR defaults to ../shared/media. Every face found (MediaPipe, image mode) in the images
under MEDIA_DIR/synthetic_people and MEDIA_DIR/portraits is embedded by both backends of
``FaceEmbedder``; the script prints

0. start: seconds to construct ``FaceEmbedder()`` (what a CLI verify and each worker job pay),
   with dlib's descriptor of the check face computed once per process (the product) against
   computed again at every start (the baseline: its cache cleared before each);
1. speed: milliseconds per face (median over repeats, wall and CPU) for the network alone on
   dlib's 150 px chips (dlib ``compute_face_descriptor(chip)`` vs ONNX Runtime with 1 and 2
   intra-op threads, one chip per call and batches of 8) and for ``FaceEmbedder.embed`` end to
   end (chip cutting included); the variants run interleaved so machine load hits all alike;
2. agreement: the largest per-component difference between the two backends' descriptors, the
   largest difference of pairwise identity distances, and how many pairs change side of
   ``IDENTITY_THRESHOLD``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from likeness.faces import IDENTITY_THRESHOLD, FaceDetector, FaceEmbedder
from likeness.faces.dlib_resnet import DlibResnetSession, converted_dlib_resnet

warnings.filterwarnings("ignore", category=UserWarning, module="google.protobuf")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
MAX_SIDE = 2000  # the 10 MP group photo is scaled down so detection stays quick


def load_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    scale = MAX_SIDE / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def collect_faces(media: Path) -> list[tuple[str, np.ndarray, list[np.ndarray]]]:
    """(image name, rgb, landmarks of each face) for every image with at least one face."""
    folders = [media / "synthetic_people", media / "portraits"]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise SystemExit(f"{', '.join(missing)}: not found (pass the shared media folder)")
    found = []
    with FaceDetector(max_faces=16) as detector:
        for folder in folders:
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                rgb = load_rgb(path)
                if rgb is None:
                    continue
                faces = detector.detect(rgb)
                if faces:
                    found.append((str(path.relative_to(media)), rgb, [f.landmarks for f in faces]))
    return found


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each variant, running them in turn each repeat."""
    for run in variants.values():  # warm-up: first ORT call allocates, dlib builds its buffers
        run()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            samples[name].append(timed(run))
    return {
        name: (float(np.median([s[0] for s in v])), float(np.median([s[1] for s in v]))) for name, v in samples.items()
    }


def start_times(repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of ``FaceEmbedder()`` then ``close()``, cached check against not."""
    from likeness.faces import identity

    def uncached() -> None:
        identity._dlib_check_descriptor.cache_clear()
        identity.check_chip.cache_clear()
        FaceEmbedder().close()

    return interleaved(
        {
            "FaceEmbedder() start, check computed every start (baseline)": uncached,
            "FaceEmbedder() start, check computed once per process": lambda: FaceEmbedder().close(),
        },
        repeats,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", nargs="?", default="../shared/media", type=Path)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per variant (median reported)")
    parser.add_argument("--timed-faces", type=int, default=12, help="faces per timed repeat")
    args = parser.parse_args()

    images = collect_faces(args.media)
    face_count = sum(len(marks) for _, _, marks in images)
    print(f"# embedder benchmark: {face_count} faces in {len(images)} images under {args.media}")
    print(f"# machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start\n")

    print("## start (seconds per FaceEmbedder(); median of repeats; wall / CPU)\n")
    starts = start_times(args.repeats)
    base = next(iter(starts.values()))[0]
    print("| variant | wall s | CPU s | speed-up vs baseline (wall) |")
    print("|---|---|---|---|")
    for name, (wall, cpu) in starts.items():
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {base / wall:.1f}x |")
    print()

    dlib_embedder = FaceEmbedder(backend="dlib")
    onnx_embedder = FaceEmbedder(backend="onnx", intra_op_threads=1)
    if onnx_embedder.backend != "onnx":
        raise SystemExit("the ONNX backend failed its check against dlib; see the warning above")
    recognizer = dlib_embedder._recognizer
    one = DlibResnetSession(converted_dlib_resnet(), intra_op_threads=1)
    two = DlibResnetSession(converted_dlib_resnet(), intra_op_threads=2)

    # Faces for timing: the first N faces, each with its chip cut exactly as the embedder does.
    timed_faces = [(rgb, marks) for _, rgb, all_marks in images for marks in all_marks][: args.timed_faces]
    dlib = dlib_embedder._dlib
    chips = np.stack(
        [
            dlib.get_face_chip(rgb, dlib_embedder._full_object_detection(rgb, marks), size=150, padding=0.25)
            for rgb, marks in timed_faces
        ]
    )
    n = len(chips)
    batches = [chips[i : i + 8] for i in range(0, n, 8)]

    print("## speed (ms per face; median of repeats; wall / CPU)\n")
    variants = {
        "network: dlib compute_face_descriptor(chip)": lambda: [recognizer.compute_face_descriptor(c) for c in chips],
        "network: ONNX 1 thread, 1 chip per call": lambda: [one.descriptors(c[None]) for c in chips],
        "network: ONNX 2 threads, 1 chip per call": lambda: [two.descriptors(c[None]) for c in chips],
        "network: ONNX 1 thread, batches of 8": lambda: [one.descriptors(b) for b in batches],
        "network: ONNX 2 threads, batches of 8": lambda: [two.descriptors(b) for b in batches],
        "FaceEmbedder.embed, backend=dlib": lambda: [dlib_embedder.embed(r, m) for r, m in timed_faces],
        "FaceEmbedder.embed, backend=onnx": lambda: [onnx_embedder.embed(r, m) for r, m in timed_faces],
    }
    medians = interleaved(variants, args.repeats)
    baseline = {
        "network": medians["network: dlib compute_face_descriptor(chip)"][0],
        "FaceEmbedder": medians["FaceEmbedder.embed, backend=dlib"][0],
    }
    print("| variant | wall ms/face | CPU ms/face | speed-up vs dlib (wall) |")
    print("|---|---|---|---|")
    for name, (wall, cpu) in medians.items():
        base = baseline["network" if name.startswith("network") else "FaceEmbedder"]
        print(f"| {name} | {1000 * wall / n:.2f} | {1000 * cpu / n:.2f} | {base / wall:.1f}x |")
    print(f"\n({n} faces per repeat, {args.repeats} repeats; load average {os.getloadavg()[0]:.2f} at end of timing)\n")

    print("## agreement (every face, both backends)\n")
    names, ours, theirs = [], [], []
    for name, rgb, all_marks in images:
        ours.append(onnx_embedder.embed_many(rgb, all_marks))
        theirs.append(dlib_embedder.embed_many(rgb, all_marks))
        names.extend(f"{name}#{i}" for i in range(len(all_marks)))
    onnx_vectors, dlib_vectors = np.concatenate(ours), np.concatenate(theirs)
    component = np.abs(onnx_vectors - dlib_vectors).max(axis=1)
    worst = int(component.argmax())
    pair_gaps, flips, pairs = [], 0, 0
    for i, j in itertools.combinations(range(len(names)), 2):
        ours_d = float(np.linalg.norm(onnx_vectors[i] - onnx_vectors[j]))
        theirs_d = float(np.linalg.norm(dlib_vectors[i] - dlib_vectors[j]))
        pair_gaps.append(abs(ours_d - theirs_d))
        flips += (ours_d <= IDENTITY_THRESHOLD) != (theirs_d <= IDENTITY_THRESHOLD)
        pairs += 1
    print("| measure | value |")
    print("|---|---|")
    print(f"| faces compared | {len(names)} |")
    print(f"| max abs descriptor difference | {component.max():.2e} ({names[worst]}) |")
    print(f"| median of per-face max abs difference | {np.median(component):.2e} |")
    print(f"| identity-distance pairs | {pairs} |")
    print(f"| max abs distance difference | {max(pair_gaps):.2e} |")
    print(f"| pairs changing side of IDENTITY_THRESHOLD={IDENTITY_THRESHOLD} | {flips} |")
    print(f"| check-face difference at construction | {onnx_embedder.check_difference:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
