"""Landmarks on every frame of a clip from FaceMesh on every other frame, where that is safe.

FaceMesh in video mode costs about 7 ms of CPU per 720p frame on a 2-core machine, one of the
larger per-frame costs of a render after the H.264 encoder. Between two detected frames a
fraction of a second apart a face moves smoothly, so the landmarks of the frame in between are
interpolated from its neighbours, weighted by presentation time. On the consenting-actor clip
the interpolated landmarks differ from FaceMesh's own on those frames by a median 0.27 % of the
face width (p95 0.48 %; a third of a pixel on its 131 px face); see docs/render.md.

Interpolation is refused, and the frame in between is detected after all, whenever the two
neighbours do not clearly show the same faces: a different number of faces, a face that
cannot be paired by box overlap, or any landmark moving more than ``max_motion`` face widths
between them (fast motion, a cut). A face seen only on the in-between frame is missed there;
the render's tracks outlive such one-frame gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

import numpy as np

from likeness.faces.detect import DetectedFace, box_iou, landmark_bbox

# Largest landmark displacement between the two detected neighbours, in face widths, at which
# the frame between them is interpolated: on the consenting-actor clip 96 % of in-between frames
# qualify, and their interpolation error stays under 0.5 % of the face width (p95).
MAX_INTERPOLATED_MOTION = 0.08
# Least box IoU at which faces of the two neighbours count as the same face.
MIN_PAIR_IOU = 0.5


class TimedFrame(Protocol):
    rgb: np.ndarray
    pts_s: float


F = TypeVar("F", bound=TimedFrame)


def interpolate_faces(
    before: list[DetectedFace],
    after: list[DetectedFace],
    weight: float,
    *,
    max_motion: float = MAX_INTERPOLATED_MOTION,
) -> list[DetectedFace] | None:
    """Faces ``weight`` of the way (0..1) from ``before`` to ``after``, or None when the two
    frames do not show the same faces moving little (see the module docstring).

    Faces are returned in the order of ``after``.
    """
    if len(before) != len(after):
        return None
    if not after:
        return []
    overlap = box_iou(np.array([f.bbox for f in after]), np.array([f.bbox for f in before]))
    pairs = []
    taken: set[int] = set()
    for i, face in enumerate(after):
        j = int(np.argmax(overlap[i]))
        if overlap[i, j] < MIN_PAIR_IOU or j in taken:
            return None
        taken.add(j)
        start, end = np.asarray(before[j].landmarks, np.float32), np.asarray(face.landmarks, np.float32)
        width = max(float(face.bbox[2] - face.bbox[0]), 1.0)
        if float(np.sqrt(((end - start) ** 2).sum(axis=1)).max()) > max_motion * width:
            return None
        pairs.append((before[j], face, start, end))
    w = float(np.clip(weight, 0.0, 1.0))
    faces = []
    for first, last, start, end in pairs:
        points = (start + (end - start) * np.float32(w)).astype(np.float32)
        faces.append(DetectedFace(landmark_bbox(points), min(first.score, last.score), points))
    return faces


def detect_alternate_frames(
    frames: Iterable[F],
    detect: Callable[[np.ndarray], list[Any]],
    *,
    max_motion: float = MAX_INTERPOLATED_MOTION,
) -> Iterator[tuple[F, list[DetectedFace], bool]]:
    """``(frame, faces, interpolated)`` for every frame, in order, running ``detect`` on every
    other frame and interpolating the ones between when :func:`interpolate_faces` allows.

    A frame that cannot be interpolated is detected after its successor; FaceMesh's video mode
    only seeds its search from the previous call, so the order does not matter to it.
    """
    previous: tuple[F, list[DetectedFace]] | None = None
    held: F | None = None
    for frame in frames:
        if previous is not None and held is None:
            held = frame  # wait for the next detection, then fill this one in
            continue
        faces = detect(frame.rgb)
        if held is not None and previous is not None:
            span = float(frame.pts_s) - float(previous[0].pts_s)
            weight = (float(held.pts_s) - float(previous[0].pts_s)) / span if span > 0 else 0.5
            between = interpolate_faces(previous[1], faces, weight, max_motion=max_motion)
            if between is None:
                yield held, detect(held.rgb), False
            else:
                yield held, between, True
            held = None
        yield frame, faces, False
        previous = (frame, faces)
    if held is not None:
        yield held, detect(held.rgb), False
