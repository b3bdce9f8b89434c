"""``likeness.faceset.filters.filter_face``: the order of the filter chain and what passes it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from likeness.faces import FaceDetector
from likeness.faceset import selection
from likeness.faceset.extract import ExtractOptions
from likeness.faceset.filters import Candidate, filter_face
from likeness.media.synthetic import astronaut


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, np.ndarray, float]:
    rgb = astronaut()
    detector = FaceDetector(1, mode="image")
    try:
        face = detector.detect(rgb)[0]
    finally:
        detector.close()
    landmarks = np.asarray(face.landmarks, np.float32)
    return rgb, landmarks, selection.face_extent(landmarks)


def test_a_clear_face_of_the_subject_passes_aligned(portrait) -> None:
    rgb, landmarks, size = portrait
    candidate = filter_face(rgb, landmarks, face_size=size, identity=True, options=ExtractOptions(size=128))
    assert isinstance(candidate, Candidate)
    assert candidate.crop.shape == (128, 128, 3) and candidate.crop.dtype == np.uint8
    assert candidate.landmarks.shape == (478, 2) and candidate.affine.shape == (2, 3)
    assert candidate.sharpness >= 10.0 and 0 <= candidate.phash < 2**64


@pytest.mark.parametrize(
    ("face_size", "identity", "reason"),
    [
        (None, True, selection.UNALIGNABLE),
        (10.0, True, selection.TOO_SMALL),
        (None, False, selection.UNALIGNABLE),
        (10.0, False, selection.TOO_SMALL),
    ],
)
def test_size_is_judged_before_identity(portrait, face_size, identity, reason) -> None:
    rgb, landmarks, _ = portrait
    assert filter_face(rgb, landmarks, face_size=face_size, identity=identity, options=ExtractOptions()) == reason


def test_identity_is_judged_before_the_pixels(portrait) -> None:
    rgb, landmarks, size = portrait
    flat = np.zeros_like(rgb)  # would be too blurry, but identity comes first
    assert (
        filter_face(flat, landmarks, face_size=size, identity=None, options=ExtractOptions()) == selection.UNALIGNABLE
    )
    assert (
        filter_face(flat, landmarks, face_size=size, identity=False, options=ExtractOptions())
        == selection.OTHER_IDENTITY
    )


def test_a_blurred_face_is_too_blurry(portrait) -> None:
    rgb, landmarks, size = portrait
    blurred = cv2.GaussianBlur(rgb, (0, 0), 12)
    assert (
        filter_face(blurred, landmarks, face_size=size, identity=True, options=ExtractOptions(min_sharpness=50.0))
        == selection.TOO_BLURRY
    )
