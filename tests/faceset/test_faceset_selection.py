"""Pure selection helpers: face size, perceptual hash, duplicate filter, pose limits."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.errors import FaceError
from likeness.faceset import selection


def test_face_extent_is_longer_side_of_landmark_box() -> None:
    points = np.array([[10, 20], [110, 20], [60, 70]], np.float32)
    assert selection.face_extent(points) == pytest.approx(100.0)
    assert selection.landmark_box(points) == (10.0, 20.0, 110.0, 70.0)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 2)), np.zeros((10, 3)), np.full((5, 2), np.nan)],
    ids=["too-few", "wrong-width", "nan"],
)
def test_face_extent_rejects_bad_landmarks(bad: np.ndarray) -> None:
    with pytest.raises(FaceError, match="landmarks"):
        selection.face_extent(bad)


def test_perceptual_hash_survives_noise_and_brightness_but_not_another_face(astronaut, grace_hopper) -> None:
    rng = np.random.default_rng(0)
    gray = astronaut.mean(axis=2)
    noisy = np.clip(gray + rng.normal(0, 4, gray.shape), 0, 255)
    brighter = np.clip(gray * 1.1 + 10, 0, 255)
    base = selection.perceptual_hash(gray)
    assert selection.hamming(base, selection.perceptual_hash(noisy)) <= 3
    assert selection.hamming(base, selection.perceptual_hash(brighter)) <= 3
    other = grace_hopper.mean(axis=2)[:512, :512]
    assert selection.hamming(base, selection.perceptual_hash(other)) > 12


def test_perceptual_hash_rejects_tiny_or_colour_input() -> None:
    with pytest.raises(FaceError, match="grey"):
        selection.perceptual_hash(np.zeros((4, 4)))
    with pytest.raises(FaceError, match="grey"):
        selection.perceptual_hash(np.zeros((32, 32, 3)))


def test_duplicate_filter_flags_near_hashes_within_window() -> None:
    dedup = selection.DuplicateFilter(max_distance=2, window=2)
    dedup.keep(0b0000)
    assert dedup.is_duplicate(0b0011)
    assert not dedup.is_duplicate(0b0111)
    dedup.keep(1 << 40)
    dedup.keep(1 << 50)  # window of 2 pushes out the first hash
    assert not dedup.is_duplicate(0b0011)


def test_duplicate_filter_disabled_keeps_everything() -> None:
    dedup = selection.DuplicateFilter(max_distance=None)
    dedup.seed([5])
    assert not dedup.is_duplicate(5)


def test_duplicate_filter_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        selection.DuplicateFilter(max_distance=65)
    with pytest.raises(ValueError):
        selection.DuplicateFilter(max_distance=3, window=0)


def test_pose_limits() -> None:
    assert not selection.pose_is_extreme(40.0, -10.0, max_yaw=75, max_pitch=50)
    assert selection.pose_is_extreme(-80.0, 0.0, max_yaw=75, max_pitch=50)
    assert selection.pose_is_extreme(0.0, 55.0, max_yaw=75, max_pitch=50)


def test_a_look_alike_with_another_expression_is_a_variant_not_a_duplicate() -> None:
    dedup = selection.DuplicateFilter(max_distance=3)
    dedup.keep(0b0000, mouth=0.02, eyes=0.30, label="closed_smile.jpg")
    # Same look, lips apart (a smile with teeth) or eyes shut: kept as an expression variant.
    assert dedup.find(0b0001, mouth=0.18, eyes=0.30) is None
    assert dedup.find(0b0001, mouth=0.02, eyes=0.08) is None
    # Same look and expression: dropped, naming the face it repeats and why.
    match = dedup.find(0b0011, mouth=0.03, eyes=0.31)
    assert match is not None and match.kept.label == "closed_smile.jpg"
    assert match.reason() == (
        "repeats closed_smile.jpg: 2 of 64 hash bits differ (limit 3); same expression "
        "(mouth 0.03 vs 0.02, eyes 0.31 vs 0.30)"
    )
    # Without an expression measure, appearance alone decides (as before).
    assert dedup.is_duplicate(0b0011)
