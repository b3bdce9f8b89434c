"""Alignment: umeyama, template, align_face and paste_back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from likeness.errors import FaceError
from likeness.faces import (
    FaceDetector,
    align_face,
    face_template,
    hull_mask,
    invert_affine,
    paste_back,
    transform_points,
    umeyama,
)
from likeness.faces.canonical import ALIGN_INDICES, LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from likeness.media.synthetic import grace_hopper


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(max_faces=2) as face_detector:
        yield face_detector


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_umeyama_recovers_known_similarity_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(-50, 50, size=(30, 2))
    truth = similarity(37.0, 1.7, 12.5, -4.0)
    estimated = umeyama(src, transform_points(src, truth))
    np.testing.assert_allclose(estimated, truth, atol=1e-9)


def test_umeyama_is_least_squares_under_noise_and_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.uniform(-1, 1, size=(200, 2))
    truth = similarity(-20.0, 0.5, 3.0, 1.0)
    dst = transform_points(src, truth) + rng.normal(0, 0.01, size=src.shape)
    estimated = umeyama(src, dst)
    np.testing.assert_allclose(estimated, truth, atol=5e-3)
    mirrored = src * np.array([-1.0, 1.0])
    assert np.linalg.det(umeyama(src, mirrored)[:, :2]) > 0


def test_umeyama_rejects_bad_input():
    with pytest.raises(FaceError, match="N >= 2"):
        umeyama(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(FaceError, match="degenerate"):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(FaceError, match="NaN"):
        umeyama(np.array([[0.0, np.nan], [1.0, 1.0]]), np.zeros((2, 2)))


def test_template_scales_with_crop_size_and_rejects_unknown_coverage():
    for size in (64, 96, 128):
        np.testing.assert_allclose(face_template(size=size) * (256 / size), face_template(size=256), atol=1e-9)
    template = face_template(size=256, coverage="wf")
    assert template.shape == (len(ALIGN_INDICES), 2)
    assert (template > 0).all() and (template < 256).all()
    # Wider coverage shows more around the face, so the landmarks shrink towards the centre.
    spread = {c: np.ptp(face_template(size=256, coverage=c)[:, 0]) for c in ("f", "wf", "head")}
    assert spread["f"] > spread["wf"] > spread["head"]
    with pytest.raises(FaceError, match="coverage"):
        face_template(coverage="mouth")


@pytest.mark.parametrize("angle, scale", [(0.0, 1.0), (25.0, 0.8), (-40.0, 1.3)])
def test_alignment_puts_eyes_at_template_positions(detector, angle, scale):
    portrait = skimage.data.astronaut()
    centre = (225.0, 125.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    transformed = cv2.warpAffine(portrait, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
    faces = detector.detect(transformed)
    assert len(faces) == 1
    for size in (128, 256):
        aligned = align_face(transformed, faces[0].landmarks, size=size)
        assert aligned.image.shape == (size, size, 3) and aligned.image.dtype == np.uint8
        # Template positions of the outer eye corners, read from the canonical face.
        template = face_template(size=size)
        order = list(ALIGN_INDICES)
        for index in (RIGHT_EYE_OUTER, LEFT_EYE_OUTER):
            expected = template[order.index(index)]
            assert np.linalg.norm(aligned.landmarks[index] - expected) < 0.03 * size
        # The crop is upright: eye line within a few degrees of horizontal.
        eye_line = aligned.landmarks[LEFT_EYE_OUTER] - aligned.landmarks[RIGHT_EYE_OUTER]
        assert abs(np.degrees(np.arctan2(eye_line[1], eye_line[0]))) < 3.0


def test_aligned_crops_of_transformed_portrait_agree(detector):
    portrait = skimage.data.astronaut()
    reference = align_face(portrait, detector.detect(portrait)[0].landmarks, size=128).image
    matrix = cv2.getRotationMatrix2D((225.0, 125.0), 30.0, 1.2)
    rotated = cv2.warpAffine(portrait, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
    again = align_face(rotated, detector.detect(rotated)[0].landmarks, size=128).image
    difference = np.abs(reference.astype(float) - again.astype(float)).mean()
    assert difference < 12.0


def round_trip_error(frame: np.ndarray, landmarks: np.ndarray) -> tuple[float, np.ndarray]:
    aligned = align_face(frame, landmarks, size=256)
    mask = hull_mask(aligned.landmarks, 256)
    pasted = paste_back(frame, aligned.image, aligned.affine, mask)
    to_frame = invert_affine(aligned.affine)
    inside = cv2.warpAffine(mask, to_frame, frame.shape[1::-1], flags=cv2.INTER_NEAREST) == 255
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    error = np.abs(pasted.astype(float) - frame.astype(float))[inside].mean()
    return float(error), inside


def test_paste_back_round_trip_reproduces_face(detector):
    portrait = grace_hopper()
    landmarks = detector.detect(portrait)[0].landmarks
    error, inside = round_trip_error(portrait, landmarks)
    assert inside.sum() > 10_000
    assert error < 4.0


def test_paste_back_round_trip_at_frame_edge(detector):
    portrait = skimage.data.astronaut()
    landmarks = detector.detect(portrait)[0].landmarks
    # Cut the frame through the middle of the face: half of it lies beyond the left edge.
    cut = int(landmarks[:, 0].mean())
    edge_frame = np.ascontiguousarray(portrait[:, cut:])
    shifted = landmarks - np.array([cut, 0], dtype=np.float32)
    error, inside = round_trip_error(edge_frame, shifted)
    assert inside.sum() > 1_000
    assert error < 4.0


def test_paste_back_only_touches_masked_region_and_leaves_input():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    original = frame.copy()
    crop = np.full((64, 64, 3), 255, dtype=np.uint8)
    mask = np.zeros((64, 64), dtype=np.float32)
    mask[16:48, 16:48] = 1.0
    affine = similarity(0.0, 1.0, -40.0, -30.0)  # frame (40, 30) -> crop origin
    pasted = paste_back(frame, crop, affine, mask)
    np.testing.assert_array_equal(frame, original)
    assert (pasted[30 + 18 : 30 + 46, 40 + 18 : 40 + 46] == 255).all()
    np.testing.assert_array_equal(pasted[:25], frame[:25])
    np.testing.assert_array_equal(pasted[:, :52], frame[:, :52])
    # A crop placed entirely outside the frame changes nothing.
    far = similarity(0.0, 1.0, 1000.0, 1000.0)
    np.testing.assert_array_equal(paste_back(frame, crop, far, mask), frame)


def test_paste_back_and_align_reject_bad_input():
    frame = np.zeros((50, 50, 3), np.uint8)
    crop = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(FaceError, match="mask"):
        paste_back(frame, crop, similarity(0, 1, 0, 0), np.zeros((16, 16), np.uint8))
    with pytest.raises(FaceError, match=r"\[0, 1\]"):
        paste_back(frame, crop, similarity(0, 1, 0, 0), np.full((32, 32), 2.0))
    with pytest.raises(FaceError, match="singular"):
        paste_back(frame, crop, np.zeros((2, 3)), np.zeros((32, 32), np.uint8))
    with pytest.raises(FaceError, match="uint8 RGB"):
        align_face(frame.astype(np.float32), np.zeros((478, 2)))
    with pytest.raises(FaceError, match=r"\(478, 2\)"):
        align_face(frame, np.zeros((68, 2)))
