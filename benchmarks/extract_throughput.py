"""Face extraction throughput at 720p and 1080p: MediaPipe video mode vs a dlib baseline.

Usage:
    .venv/bin/python benchmarks/extract_throughput.py [MEDIA_DIR] [--frames 150] [--repeats 3]

Pipelines, all on the same decoded frames (decoding is not timed):

* ``mediapipe detect+landmarks+align``: ``FaceDetector(mode="video")`` + ``align_face(size=256)``.
* ``+ identity per track``: the above + ``FaceTracker`` + one dlib embedding per new track and
  then every ``--embed-every`` frames per track (what extraction does).
* ``+ identity every frame``: one embedding per face per frame (for comparison; on the
  first ``--baseline-frames`` frames only, it is slow).
* baseline ``dlib HOG + 68 pts + chip``: ``dlib.get_frontal_face_detector()`` (no upsampling),
  the 68-point predictor from face_recognition_models and ``dlib.get_face_chip(size=256)``.

Prints medians over repeats of frames per second and the ratio to the baseline measured in the
same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.faces import FaceDetector, FaceEmbedder, FaceTracker, align_face

warnings.filterwarnings("ignore", category=UserWarning, module="google.protobuf")
VIDEO = "video/dfdc_consenting_actor_lynaeydofd.mp4"


def decode_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= count:
                break
    if not frames:
        raise SystemExit(f"{path}: no video frames decoded")
    return frames


def timed_interleaved(
    runs: list[tuple[Callable[[list[np.ndarray]], int], list[np.ndarray]]], repeats: int
) -> list[tuple[float, int]]:
    """Median frames/s and last face count per run; repeats interleave the runs so that load
    from other processes on the machine hits every pipeline alike."""
    rates: list[list[float]] = [[] for _ in runs]
    faces = [0] * len(runs)
    for _ in range(repeats):
        for index, (run, frames) in enumerate(runs):
            start = time.perf_counter()
            faces[index] = run(frames)
            rates[index].append(len(frames) / (time.perf_counter() - start))
    return [(statistics.median(r), f) for r, f in zip(rates, faces)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", nargs="?", default="../shared/media", type=Path)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--baseline-frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embed-every", type=int, default=30)
    args = parser.parse_args()

    import dlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models

    frames_1080 = decode_frames(args.media / VIDEO, args.frames)
    frames_720 = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_AREA) for f in frames_1080]

    detector = FaceDetector(max_faces=4, mode="video")
    embedder = FaceEmbedder()
    hog = dlib.get_frontal_face_detector()
    predictor68 = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def mediapipe_align(frames: list[np.ndarray]) -> int:
        detector.reset()
        count = 0
        for rgb in frames:
            for face in detector.detect(rgb):
                align_face(rgb, face.landmarks, size=256)
                count += 1
        return count

    def mediapipe_identity(frames: list[np.ndarray], every: int) -> int:
        detector.reset()
        tracker = FaceTracker()
        last_embedded: dict[int, int] = {}
        count = 0
        for index, rgb in enumerate(frames):
            faces = detector.detect(rgb)
            ids = tracker.update([f.bbox for f in faces])
            due = [f.landmarks for f, t in zip(faces, ids) if index - last_embedded.get(t, -every) >= every]
            for t in ids:
                if index - last_embedded.get(t, -every) >= every:
                    last_embedded[t] = index
            if due:
                embedder.embed_many(rgb, due)
            for face in faces:
                align_face(rgb, face.landmarks, size=256)
                count += 1
        return count

    def dlib_baseline(frames: list[np.ndarray]) -> int:
        count = 0
        for rgb in frames:
            for rect in hog(rgb, 0):
                shape = predictor68(rgb, rect)
                dlib.get_face_chip(rgb, shape, size=256)
                count += 1
        return count

    print(
        f"# extraction throughput: {args.frames} frames ({args.baseline_frames} for the baseline), "
        f"median of {args.repeats} repeats, {VIDEO}\n"
    )
    print("| resolution | pipeline | frames/s | ms/frame | faces found | vs baseline |")
    print("|---|---|---|---|---|---|")
    short = args.baseline_frames
    for label, frames in (("720p", frames_720), ("1080p", frames_1080)):
        rows = [
            ("mediapipe detect+landmarks+align", mediapipe_align, frames),
            (
                f"+ identity per track (every {args.embed_every} frames)",
                lambda fr: mediapipe_identity(fr, args.embed_every),
                frames,
            ),
            ("+ identity every frame", lambda fr: mediapipe_identity(fr, 1), frames[:short]),
            ("baseline dlib HOG + 68 pts + chip", dlib_baseline, frames[:short]),
        ]
        results = timed_interleaved([(run, fr) for _, run, fr in rows], args.repeats)
        base_fps = results[-1][0]
        for (name, _, fr), (fps, faces) in zip(rows, results):
            print(f"| {label} | {name} | {fps:.1f} | {1000 / fps:.1f} | {faces}/{len(fr)} | {fps / base_fps:.1f}x |")
    detector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
