"""Self-Blended Images: shapes, determinism, where the blend lands, and typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.detector.sbi import (
    SbiOptions,
    degrade,
    jitter_colour,
    jitter_sharpness,
    jpeg,
    sbi_mask,
    self_blend,
    small_affine,
)
from likeness.errors import FaceError, MediaError


def _face(side: int = 96) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:side, :side]
    face = np.stack([xx * 255 // side, yy * 255 // side, (xx + yy) * 127 // side], -1).astype(np.uint8)
    face = np.clip(face.astype(np.int16) + rng.integers(-20, 20, face.shape), 0, 255).astype(np.uint8)
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    landmarks = np.stack([side / 2 + side * 0.25 * np.cos(angles), side / 2 + side * 0.3 * np.sin(angles)], -1)
    return face, landmarks.astype(np.float32)


def test_self_blend_is_deterministic_for_a_seed() -> None:
    face, landmarks = _face()
    a, mask_a = self_blend(face, landmarks, np.random.default_rng(7))
    b, mask_b = self_blend(face, landmarks, np.random.default_rng(7))
    assert a.dtype == np.uint8 and a.shape == face.shape and mask_a.shape == face.shape[:2]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mask_a, mask_b)
    c, _ = self_blend(face, landmarks, np.random.default_rng(8))
    assert not np.array_equal(a, c)


def test_changes_stay_inside_the_feathered_mask() -> None:
    face, landmarks = _face()
    for seed in range(10):
        fake, mask = self_blend(face, landmarks, np.random.default_rng(seed))
        assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.max() >= 0.25
        changed = np.abs(fake.astype(np.int16) - face.astype(np.int16)).max(axis=-1)
        # Outside the mask the pixels are the original ones (up to rounding).
        assert changed[mask == 0].max(initial=0) <= 1
        assert changed[mask >= 0.9 * mask.max()].mean() > 0.5  # and inside, something changed


def test_mask_follows_the_landmark_hull() -> None:
    _, landmarks = _face()
    options = SbiOptions(mask_erode=(0.0, 0.0), mask_warp=0.0, mask_feather=(0.01, 0.01))
    mask = sbi_mask(landmarks, 96, np.random.default_rng(0), options=options)
    assert mask[48, 48] == pytest.approx(1.0)
    assert mask[2, 2] == 0.0 and mask[48, 5] == 0.0
    # Random erosion and dilation change the area, in both directions over seeds.
    areas = [sbi_mask(landmarks, 96, np.random.default_rng(s)).sum() for s in range(12)]
    assert min(areas) < mask.sum() < max(areas)


def test_transforms_keep_shape_and_dtype() -> None:
    face, _ = _face(64)
    rng = np.random.default_rng(1)
    for transform in (jitter_colour, jitter_sharpness, small_affine):
        out = transform(face, rng)
        assert out.shape == face.shape and out.dtype == np.uint8
        assert not np.array_equal(out, face)
    out = degrade(face, np.random.default_rng(2))
    assert out.shape == face.shape and out.dtype == np.uint8
    assert jpeg(face, 50).shape == face.shape


def test_bad_input_raises_typed_errors() -> None:
    face, landmarks = _face()
    rng = np.random.default_rng(0)
    with pytest.raises(FaceError):
        self_blend(face[:, :80], landmarks, rng)
    with pytest.raises(FaceError):
        self_blend(face, landmarks[:, :1], rng)
    with pytest.raises(FaceError):
        self_blend(face, np.full((10, 2), np.nan, np.float32), rng)
    with pytest.raises((FaceError, MediaError)):
        self_blend(face.astype(np.float32), landmarks, rng)
