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
        video._graphs.remove(video._mesh)  # closed here, not again when the detector goes
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


# ---- verification options: tight crops and small faces (defaults off: the render path's speed)

HOPPER_BOX = GRACE_HOPPER_FACE


def tight_crop(
    rgb: np.ndarray, box: tuple[float, float, float, float], tightness: float, size: int = 250
) -> np.ndarray:
    """A ``size`` square crop ``tightness`` times the face box, centred on it (edges replicated)."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    scale = size / (tightness * max(box[2] - box[0], box[3] - box[1]))
    affine = np.array([[scale, 0.0, size / 2.0 - scale * cx], [0.0, scale, size / 2.0 - scale * cy]])
    return cv2.warpAffine(rgb, affine, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def small_face_group(face: int = 30) -> tuple[np.ndarray, int]:
    """A 1600x900 frame with 24 heads (faces about ``face`` px wide) from the package portraits."""
    heads = [
        tight_crop(skimage.data.astronaut(), ASTRONAUT_FACE, 2.2, size=int(face * 2.2)),
        tight_crop(grace_hopper(), HOPPER_BOX, 2.2, size=int(face * 2.2)),
    ]
    canvas = np.full((900, 1600, 3), 90, np.uint8)
    count = 0
    for row in range(3):
        for col in range(8):
            head = heads[count % 2]
            y, x = 150 + row * 250, 80 + col * 190
            canvas[y : y + head.shape[0], x : x + head.shape[1]] = head
            count += 1
    return canvas, count


def test_verification_options_are_off_by_default():
    with FaceDetector() as plain:
        assert plain.crop_retry is False and plain.small_faces is False


@pytest.mark.parametrize("tightness", [1.0, 1.1])
def test_tight_face_crop_is_found_with_crop_retry(tightness):
    crop = tight_crop(grace_hopper(), HOPPER_BOX, tightness)
    with FaceDetector(max_faces=4) as plain, FaceDetector(max_faces=4, crop_retry=True) as retrying:
        assert plain.detect(crop) == []  # the full-range detector misses a face that fills the frame
        faces = retrying.detect(crop)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].bbox
    assert x0 < 125 < x1 and y0 < 125 < y1  # the face in the middle of the crop, in crop pixels
    assert (x1 - x0) > 150


def test_crop_retry_finds_nothing_in_a_faceless_crop():
    noise = np.random.default_rng(0).integers(0, 255, (250, 250, 3), dtype=np.uint8)
    with FaceDetector(crop_retry=True) as retrying:
        assert retrying.detect(noise) == []


def test_small_faces_in_a_group_are_found_with_fine_tiles():
    group, count = small_face_group(face=30)
    with (
        FaceDetector(max_faces=64, tile_side=1280) as plain,
        FaceDetector(max_faces=64, tile_side=1280, small_faces=True) as fine,
    ):
        assert len(plain.detect(group)) < count // 2
        faces = fine.detect(group)
    assert len(faces) == count
    widths = [f.bbox[2] - f.bbox[0] for f in faces]
    assert max(widths) < 60  # every one a small face, no merged or spurious box


def test_small_face_tile_plan():
    from likeness.faces.detect import small_face_tile

    assert small_face_tile(np.array([]), frame_short_side=1080) == 512
    assert small_face_tile(np.array([]), frame_short_side=300) is None  # already one tile
    assert small_face_tile(np.array([500.0]), frame_short_side=1080) is None
    assert small_face_tile(np.array([60.0, 500.0]), frame_short_side=1080) == 480
    assert small_face_tile(np.array([10.0]), frame_short_side=1080) == 256


def _threads() -> int:
    import os

    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize("mode", ["image", "video"])
def test_a_detector_dropped_without_close_releases_its_graphs(mode) -> None:
    """A running MediaPipe graph kept its threads and about 45 MB after its detector was
    collected: a service that dropped one verifier per test or per reload grew without end."""
    import gc

    rgb = grace_hopper()
    FaceDetector(max_faces=1, mode=mode).detect(rgb)  # MediaPipe's process-wide threads start once
    gc.collect()
    before = _threads()
    for _ in range(3):
        dropped = FaceDetector(max_faces=1, mode=mode)
        assert dropped.detect(rgb)
        del dropped
        gc.collect()
    assert _threads() <= before
