"""Detection + 478 landmarks in image and video mode."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import skimage.data

from likeness.errors import FaceError
from likeness.faces import DetectedFace, FaceDetector
from likeness.faces.canonical import CHIN, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
from likeness.media.synthetic import grace_hopper


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(max_faces=4) as face_detector:
        yield face_detector


def assert_plausible_face(face: DetectedFace, box: tuple[float, float, float, float]) -> None:
    """The face's bbox overlaps the known face box well and the landmarks are ordered sanely."""
    assert face.landmarks.shape == (478, 2) and face.landmarks.dtype == np.float32
    x0, y0, x1, y1 = face.bbox
    bx0, by0, bx1, by1 = box
    inter = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
    union = (x1 - x0) * (y1 - y0) + (bx1 - bx0) * (by1 - by0) - inter
    assert inter / union > 0.5, (face.bbox, box)
    assert 0.5 <= face.score <= 1.0
    lm = face.landmarks
    # Subject's right eye on the image left, nose between the eyes, chin below the nose.
    assert lm[RIGHT_EYE_OUTER, 0] < lm[NOSE_TIP, 0] < lm[LEFT_EYE_OUTER, 0]
    assert lm[CHIN, 1] > lm[NOSE_TIP, 1] > lm[RIGHT_EYE_OUTER, 1]


# Reference face boxes of the two package portraits (landmark extents, checked by eye).
ASTRONAUT_FACE = (178.0, 68.0, 272.0, 178.0)
GRACE_HOPPER_FACE = (165.0, 130.0, 355.0, 336.0)


def test_astronaut_has_exactly_one_plausible_face(detector):
    faces = detector.detect(skimage.data.astronaut())
    assert len(faces) == 1
    assert_plausible_face(faces[0], ASTRONAUT_FACE)


def test_grace_hopper_has_exactly_one_plausible_face(detector):
    faces = detector.detect(grace_hopper())
    assert len(faces) == 1
    assert_plausible_face(faces[0], GRACE_HOPPER_FACE)


def test_composed_two_face_image_gives_two_faces(detector):
    left = skimage.data.astronaut()[:, :400]  # 512 x 400, face well inside
    right = cv2.resize(grace_hopper(), (437, 512))  # 606 -> 512 rows
    group = np.ascontiguousarray(np.hstack([left, right]))
    faces = detector.detect(group)
    assert len(faces) == 2
    faces.sort(key=lambda f: f.bbox[0])
    assert_plausible_face(faces[0], ASTRONAUT_FACE)
    sx, sy = 437 / 517, 512 / 606
    gx0, gy0, gx1, gy1 = GRACE_HOPPER_FACE
    assert_plausible_face(faces[1], (400 + gx0 * sx, gy0 * sy, 400 + gx1 * sx, gy1 * sy))


def test_max_faces_limits_results():
    left = skimage.data.astronaut()[:, :400]
    right = cv2.resize(grace_hopper(), (437, 512))
    group = np.ascontiguousarray(np.hstack([left, right]))
    with FaceDetector(max_faces=1) as single:
        assert len(single.detect(group)) == 1


@pytest.mark.parametrize("kind", ["flat", "noise", "tiny"])
def test_no_face_in_flat_or_noise_image(detector, kind):
    rng = np.random.default_rng(7)
    image = {
        "flat": np.full((480, 640, 3), 127, dtype=np.uint8),
        "noise": rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8),
        "tiny": rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8),
    }[kind]
    assert detector.detect(image) == []


def test_face_in_large_frame_is_found_and_mapped_to_frame_pixels(detector):
    rng = np.random.default_rng(11)
    canvas = rng.integers(60, 90, size=(1800, 3000, 3), dtype=np.uint8)
    canvas[1100:1612, 2300:2812] = skimage.data.astronaut()
    faces = detector.detect(canvas)
    assert len(faces) == 1
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert_plausible_face(faces[0], (x0 + 2300, y0 + 1100, x1 + 2300, y1 + 1100))


def test_video_mode_tracks_a_moving_face():
    portrait = skimage.data.astronaut()
    with FaceDetector(max_faces=2, mode="video") as video:
        centres = []
        for step in range(6):
            shift = np.float64([[1, 0, 4 * step], [0, 1, 2 * step]])
            frame = cv2.warpAffine(portrait, shift, (512, 512), borderMode=cv2.BORDER_REFLECT)
            faces = video.detect(frame)
            assert len(faces) == 1
            centres.append(faces[0].landmarks[NOSE_TIP])
        motion = np.diff(np.array(centres), axis=0)
        np.testing.assert_allclose(motion.mean(axis=0), [4.0, 2.0], atol=1.5)
        video.reset()
        assert len(video.detect(portrait)) == 1


class _ScriptedMesh:
    """Stands in for FaceMesh's tracking graph: returns the meshes it is given, one list per frame,
    as normalised boxes ``(x0, y0, x1, y1)`` filled with 478 points."""

    def __init__(self, frames):
        self.frames = list(frames)

    def process(self, _rgb):
        faces = []
        for x0, y0, x1, y1 in self.frames.pop(0):
            grid = np.random.default_rng(0).uniform(0, 1, (478, 2))
            points = [SimpleNamespace(x=x0 + u * (x1 - x0), y=y0 + v * (y1 - y0)) for u, v in grid]
            faces.append(SimpleNamespace(landmark=points))
        return SimpleNamespace(multi_face_landmarks=faces)

    def close(self):
        pass


def test_video_mode_drops_a_re_detected_copy_of_a_tracked_face():
    # Seen on the consenting-actor clip: on 3 of 300 frames FaceMesh returned the tracked face and
    # a re-detection of it (box IoU 0.78), and the render swapped and pasted the face twice.
    tracked, moved, redetected = (0.40, 0.20, 0.55, 0.45), (0.41, 0.21, 0.56, 0.46), (0.40, 0.19, 0.56, 0.50)
    other = (0.70, 0.20, 0.85, 0.45)
    with FaceDetector(max_faces=4, mode="video") as video:
        video._mesh.close()
        video._mesh = _ScriptedMesh([[tracked], [redetected, moved], [redetected, moved, other]])
        frame = np.zeros((100, 200, 3), dtype=np.uint8)
        assert len(video.detect(frame)) == 1
        faces = video.detect(frame)  # the re-detection is listed first; the continuing face stays
        assert len(faces) == 1
        np.testing.assert_allclose(faces[0].bbox, np.multiply(moved, [200, 100, 200, 100]), atol=1.0)
        faces = video.detect(frame)  # a second face that overlaps nothing is a face, not a copy
        assert len(faces) == 2
        np.testing.assert_allclose(faces[1].bbox, np.multiply(other, [200, 100, 200, 100]), atol=1.0)


def test_bad_input_and_closed_detector_raise_typed_errors():
    with pytest.raises(FaceError, match="mode"):
        FaceDetector(mode="webcam")
    with pytest.raises(FaceError, match="max_faces"):
        FaceDetector(max_faces=0)
    detector = FaceDetector()
    with pytest.raises(FaceError, match="uint8 RGB"):
        detector.detect(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(FaceError, match="uint8 RGB"):
        detector.detect(np.zeros((64, 64, 3), dtype=np.float32))
    detector.close()
    with pytest.raises(FaceError, match="closed"):
        detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
