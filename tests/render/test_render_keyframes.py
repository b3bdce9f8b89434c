"""Landmarks from FaceMesh on every other frame: interpolation where the neighbours agree,
detection where they do not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from likeness.faces.detect import DetectedFace, landmark_bbox
from likeness.render.keyframes import MAX_INTERPOLATED_MOTION, detect_alternate_frames, interpolate_faces

N_POINTS = 478


def _face(centre: tuple[float, float], width: float = 100.0, seed: int = 0) -> DetectedFace:
    rng = np.random.default_rng(seed)
    shape = rng.uniform(-0.5, 0.5, (N_POINTS, 2)).astype(np.float32)
    shape[0], shape[1] = (-0.5, -0.5), (0.5, 0.5)  # the box spans exactly one width
    points = (shape * width + np.array(centre, np.float32)).astype(np.float32)
    return DetectedFace(landmark_bbox(points), 0.9, points)


@dataclass
class Frame:
    index: int
    pts_s: float
    rgb: np.ndarray


class ScriptedDetector:
    """Returns the faces scripted for each frame (found by the frame's first pixel) and logs calls."""

    def __init__(self, script: dict[int, list[DetectedFace]]) -> None:
        self.script = script
        self.calls: list[int] = []

    def __call__(self, rgb: np.ndarray) -> list[DetectedFace]:
        index = int(rgb[0, 0, 0])
        self.calls.append(index)
        return self.script[index]


def _frames(n: int, fps: float = 25.0) -> list[Frame]:
    return [Frame(i, i / fps, np.full((4, 4, 3), i, np.uint8)) for i in range(n)]


def test_interpolation_is_weighted_by_time_and_keeps_the_later_order() -> None:
    a0, b0 = _face((100, 100), seed=1), _face((400, 120), seed=2)
    a1 = DetectedFace(a0.bbox, 0.8, a0.landmarks + np.float32(4.0))
    b1 = DetectedFace(b0.bbox, 0.7, b0.landmarks - np.float32(2.0))
    between = interpolate_faces([b0, a0], [a1, b1], 0.25)
    assert between is not None and len(between) == 2
    np.testing.assert_allclose(between[0].landmarks, a0.landmarks + 1.0, atol=1e-4)
    np.testing.assert_allclose(between[1].landmarks, b0.landmarks - 0.5, atol=1e-4)
    assert between[0].bbox == pytest.approx(landmark_bbox(between[0].landmarks))
    assert between[0].score == pytest.approx(0.8) and between[1].score == pytest.approx(0.7)
    assert interpolate_faces([], [], 0.5) == []


def test_interpolation_is_refused_when_the_neighbours_disagree() -> None:
    face = _face((200, 200))
    moved = lambda dx: DetectedFace(face.bbox, 0.9, face.landmarks + np.float32([dx, 0]))  # noqa: E731
    limit = MAX_INTERPOLATED_MOTION * 100.0
    assert interpolate_faces([face], [moved(0.9 * limit)], 0.5) is not None
    assert interpolate_faces([face], [moved(1.1 * limit)], 0.5) is None  # fast motion
    assert interpolate_faces([face], [face, _face((600, 200))], 0.5) is None  # a face appeared
    assert interpolate_faces([face], [], 0.5) is None  # the face left
    assert interpolate_faces([face], [_face((500, 200))], 0.5) is None  # a cut to someone else
    # Two faces in the later frame pairing with the same earlier face cannot both be it.
    near = _face((205, 200), seed=3)
    assert interpolate_faces([face, _face((900, 900))], [face, near], 0.5) is None


def test_every_frame_comes_out_in_order_with_half_the_detections_for_steady_faces() -> None:
    frames = _frames(9)
    truth = {i: [_face((200 + 2.0 * i, 150))] for i in range(9)}
    detector = ScriptedDetector(truth)
    out = list(detect_alternate_frames(frames, detector))
    assert [f.index for f, _, _ in out] == list(range(9))
    assert detector.calls == [0, 2, 4, 6, 8]
    assert [interpolated for _, _, interpolated in out] == [i % 2 == 1 for i in range(9)]
    for frame, faces, _ in out:  # linear motion: interpolation is exact
        np.testing.assert_allclose(faces[0].landmarks, truth[frame.index][0].landmarks, atol=1e-3)


def test_uneven_timestamps_weight_the_interpolation() -> None:
    frames = [
        Frame(0, 0.0, np.full((4, 4, 3), 0, np.uint8)),
        Frame(1, 0.01, np.full((4, 4, 3), 1, np.uint8)),
        Frame(2, 0.04, np.full((4, 4, 3), 2, np.uint8)),
    ]
    start = _face((200, 150))
    end = DetectedFace(start.bbox, 0.9, start.landmarks + np.float32([4.0, 0.0]))
    out = list(detect_alternate_frames(frames, ScriptedDetector({0: [start], 2: [end]})))
    np.testing.assert_allclose(out[1][1][0].landmarks, start.landmarks + np.float32([1.0, 0.0]), atol=1e-4)


def test_frames_the_neighbours_disagree_on_and_a_trailing_frame_are_detected() -> None:
    frames = _frames(6)
    script = {
        0: [_face((200, 150))],
        1: [_face((200, 150))],
        2: [_face((800, 500))],  # cut at 2
        3: [_face((800, 500))],
        4: [_face((800, 500))],
        5: [_face((800, 500))],
    }
    detector = ScriptedDetector(script)
    out = list(detect_alternate_frames(frames, detector))
    assert [f.index for f, _, _ in out] == list(range(6))
    # 1 sits across the cut, so it is detected (after 2); 3 is interpolated; 5 is last.
    assert detector.calls == [0, 2, 1, 4, 5]
    assert [interpolated for _, _, interpolated in out] == [False, False, False, True, False, False]
    for frame, faces, _ in out:
        assert faces[0].bbox == pytest.approx(script[frame.index][0].bbox)
