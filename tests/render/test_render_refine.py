"""Pure refinement functions: colour transfer, masks, blending, smoothing, gating, quality."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from likeness.errors import FaceError, MediaError
from likeness.render.blend import paste_face, poisson_blend, warp_to_frame
from likeness.render.colour import COLOUR_MODES, histogram_match, lab_statistics, lct, rct, transfer_colour
from likeness.render.gating import GateOptions, gate_face
from likeness.render.mask import blend_mask, erode_dilate, feather, landmark_hull
from likeness.render.quality import flicker_ratio, identity_transfer, ring_colour_difference
from likeness.render.smoothing import OneEuroFilter, SmoothingOptions, TrackSmoother


def _portrait_crop(size: int = 96) -> np.ndarray:
    import cv2

    return cv2.resize(astronaut()[30:230, 130:330], (size, size), interpolation=cv2.INTER_AREA)


# ---- colour -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["rct", "lct", "hist"])
def test_colour_transfer_moves_face_statistics_to_reference(mode: str) -> None:
    reference = _portrait_crop()
    # The "swapped face": same content, strong blue cast and lower contrast.
    face = np.clip(reference.astype(np.float32) * [0.6, 0.7, 1.0] + [0, 10, 60], 0, 255).astype(np.uint8)
    before = np.abs(lab_statistics(face) - lab_statistics(reference)).sum()
    out = transfer_colour(face, reference, mode=mode)
    after = np.abs(lab_statistics(out) - lab_statistics(reference)).sum()
    assert out.dtype == np.uint8 and out.shape == face.shape
    assert after < 0.25 * before


def test_colour_none_returns_unchanged_copy() -> None:
    face = _portrait_crop()
    out = transfer_colour(face, np.zeros_like(face), mode="none")
    assert np.array_equal(out, face) and out is not face


def test_colour_statistics_respect_the_mask() -> None:
    rng = np.random.default_rng(1)
    reference = np.zeros((64, 64, 3), np.uint8)
    reference[:, :32] = (200, 150, 120)  # skin-like left half
    reference[:, 32:] = (0, 0, 255)  # blue background right half
    mask = np.zeros((64, 64), np.float32)
    mask[:, :32] = 1.0
    face = rng.integers(90, 110, (64, 64, 3), dtype=np.uint8)
    out = rct(face, reference, mask=mask)
    # Inside the mask the output takes the skin colour, untouched by the blue background.
    assert np.abs(out[:, :32].astype(float).mean(axis=(0, 1)) - [200, 150, 120]).max() < 6


def test_lab_statistics_are_the_weighted_mean_and_deviation_in_lab() -> None:
    import cv2

    face = _portrait_crop()
    face[:, :8] = (180, 120, 100)  # a flat band: its deviation must stay finite and exact
    rng = np.random.default_rng(4)
    mask = cv2.GaussianBlur(rng.random(face.shape[:2]).astype(np.float32), (5, 5), 1.5)
    lab = cv2.cvtColor(face.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    weights = mask.reshape(-1).astype(np.float64)
    mean = np.average(lab, axis=0, weights=weights)
    std = np.sqrt(np.average((lab - mean) ** 2, axis=0, weights=weights))
    stats = lab_statistics(face, mask=mask)
    np.testing.assert_allclose(stats, np.stack([mean, std]), rtol=0, atol=1e-9)
    flat = lab_statistics(np.full((16, 16, 3), (180, 120, 100), np.uint8))
    assert np.isfinite(flat).all() and np.abs(flat[1]).max() < 1e-5


def test_rct_uses_given_reference_statistics() -> None:
    face = (_portrait_crop().astype(np.float32) * 0.5 + 64).astype(np.uint8)  # mid tones: no clipping
    stats = lab_statistics(face)
    stats[0, 0] += 15.0  # brighter target
    out = rct(face, face, reference_stats=stats)
    assert lab_statistics(out)[0, 0] == pytest.approx(stats[0, 0], abs=1.5)


def test_colour_rejects_bad_input() -> None:
    face = _portrait_crop(64)
    with pytest.raises(MediaError, match="expected dtype uint8"):
        rct(face.astype(np.float32), face)
    with pytest.raises(MediaError, match="same as face"):
        lct(face, face[:32])
    with pytest.raises(MediaError, match="colour mode"):
        transfer_colour(face, face, mode="magic")
    with pytest.raises(MediaError, match=r"values in \[0, 1\]"):
        histogram_match(face, face, mask=np.full((64, 64), 2.0, np.float32))
    assert set(COLOUR_MODES) == {"rct", "lct", "hist", "none"}


# ---- mask ---------------------------------------------------------------------------------


def test_blend_mask_is_learned_mask_within_hull_eroded_and_feathered() -> None:
    landmarks = np.array([[20, 20], [80, 20], [80, 80], [20, 80]], np.float32)
    learned = np.zeros((100, 100), np.float32)
    learned[:, :60] = 1.0  # the model claims the left 60 columns, including outside the face
    mask = blend_mask(learned, landmarks, erode_px=3, feather_px=4)
    assert mask.shape == (100, 100) and mask.dtype == np.float32
    assert mask[50, 40] == pytest.approx(1.0, abs=1e-3)  # inside both
    assert mask[50, 10] == 0.0  # learned but outside the landmark hull
    assert mask[50, 75] == 0.0  # inside the hull but not learned
    # The feathered edge is a ramp, not a step.
    assert 0.05 < mask[50, 56] < 0.95


def test_hull_erode_dilate_feather_edges() -> None:
    hull = landmark_hull(np.array([[10, 10], [30, 10], [20, 30]], np.float32), size=40)
    assert hull[15, 20] == 1.0 and hull[5, 5] == 0.0
    full = np.ones((20, 20), np.float32)
    assert erode_dilate(full, pixels=-2)[0, 0] == 0.0  # shrinking pulls away from the crop border
    assert erode_dilate(full, pixels=-2)[10, 10] == 1.0
    dot = np.zeros((21, 21), np.float32)
    dot[10, 10] = 1.0
    assert erode_dilate(dot, pixels=3).sum() > 20
    feathered = feather(full, pixels=6)
    assert feathered[0, 0] < 0.6 and feathered[10, 10] > 0.9  # fades out at the crop border
    with pytest.raises(MediaError, match="needs a learned mask"):
        blend_mask(None, None)
    with pytest.raises(FaceError, match="landmarks"):
        landmark_hull(np.zeros((2, 3), np.float32), size=10)


# ---- blend --------------------------------------------------------------------------------


def _affine_for(x0: float, y0: float, scale: float = 1.0, angle_deg: float = 0.0) -> np.ndarray:
    """Frame->crop affine for a crop whose origin sits at frame (x0, y0)."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    return np.hstack([rot, -rot @ np.array([[x0], [y0]])])


@pytest.mark.parametrize("method", ["alpha", "poisson"])
def test_paste_leaves_pixels_outside_the_mask_bit_identical(method: str) -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    crop = _portrait_crop(64)
    mask = blend_mask(None, np.array([[12, 12], [52, 12], [52, 52], [12, 52]], np.float32), size=64)
    affine = _affine_for(40, 30, scale=1.2, angle_deg=10)
    out = paste_face(frame, crop, mask, affine, method=method)
    patch = warp_to_frame(crop, mask, affine, frame_shape=frame.shape)
    alpha = np.zeros(frame.shape[:2], np.float32)
    alpha[patch.slices] = patch.alpha
    assert np.array_equal(out[alpha == 0], frame[alpha == 0])
    changed = np.abs(out.astype(int) - frame.astype(int)).sum(axis=2) > 0
    assert changed[alpha > 0.9].mean() > 0.9  # the face actually went in


@pytest.mark.parametrize("method", ["alpha", "poisson"])
def test_paste_in_place_writes_into_the_frame_and_matches_the_copy(method: str) -> None:
    frame = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    original = frame.copy()
    crop = _portrait_crop(64)
    mask = blend_mask(None, np.array([[12, 12], [52, 12], [52, 52], [12, 52]], np.float32), size=64)
    affine = _affine_for(40, 30, scale=1.2, angle_deg=10)
    copied = paste_face(frame, crop, mask, affine, method=method)
    assert np.array_equal(frame, original) and not np.shares_memory(copied, frame)
    pasted = paste_face(frame, crop, mask, affine, method=method, in_place=True)
    assert pasted is frame and np.array_equal(frame, copied) and not np.array_equal(frame, original)
    outside = paste_face(frame, crop, mask, _affine_for(500, 500), in_place=True)
    assert outside is frame


@pytest.mark.parametrize("x0,y0", [(-20, -20), (130, 90), (-40, 50)])
def test_poisson_is_safe_at_frame_edges(x0: float, y0: float) -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    crop = _portrait_crop(64)
    out = paste_face(frame, crop, np.ones((64, 64), np.float32), _affine_for(x0, y0), method="poisson")
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frame)


def test_paste_entirely_outside_frame_is_a_no_op() -> None:
    frame = np.zeros((50, 50, 3), np.uint8)
    out = paste_face(frame, _portrait_crop(32), np.ones((32, 32), np.float32), _affine_for(500, 500))
    assert np.array_equal(out, frame)


def test_paste_rejects_bad_input() -> None:
    frame = np.zeros((50, 50, 3), np.uint8)
    crop = _portrait_crop(32)
    with pytest.raises(FaceError, match="invertible"):
        paste_face(frame, crop, np.ones((32, 32), np.float32), np.zeros((2, 3)))
    with pytest.raises(MediaError, match=r"expected shape \(32, 32\)"):
        paste_face(frame, crop, np.ones((16, 16), np.float32), _affine_for(0, 0))
    with pytest.raises(MediaError, match="blend method"):
        paste_face(frame, crop, np.ones((32, 32), np.float32), _affine_for(0, 0), method="magic")


def test_poisson_matches_boundary_colour_better_than_alpha() -> None:
    frame = np.full((120, 120, 3), (180, 140, 120), np.uint8)
    crop = np.full((64, 64, 3), (120, 90, 70), np.uint8)  # darker face
    mask = blend_mask(None, np.array([[8, 8], [56, 8], [56, 56], [8, 56]], np.float32), size=64, feather_px=2)
    affine = _affine_for(28, 28)
    patch = warp_to_frame(crop, mask, affine, frame_shape=frame.shape)
    poisson = poisson_blend(frame, patch)
    alpha = paste_face(frame, crop, mask, affine, method="alpha")
    full_mask = np.zeros(frame.shape[:2], np.float32)
    full_mask[patch.slices] = patch.alpha
    assert ring_colour_difference(poisson, full_mask) < ring_colour_difference(alpha, full_mask)


# ---- smoothing ----------------------------------------------------------------------------


def test_one_euro_reduces_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(90) / 30.0
    truth = np.stack([100 + 40 * np.sin(t), 80 + 0 * t], axis=1)  # slow head motion, px
    noisy = truth + rng.normal(0, 1.5, truth.shape)
    filt = OneEuroFilter(min_cutoff=1.5, beta=0.05)
    smoothed = np.array([filt(x, ti) for x, ti in zip(noisy, t)])
    jitter_in = np.abs(np.diff(noisy - truth, axis=0)).mean()
    jitter_out = np.abs(np.diff(smoothed - truth, axis=0)).mean()
    assert jitter_out < 0.5 * jitter_in
    assert np.abs(smoothed[30:] - truth[30:]).mean() < 3.0  # no big lag


def test_track_smoother_state_roundtrip_and_disable() -> None:
    smoother = TrackSmoother()
    for i in range(5):
        smoother.smooth(7, "landmarks", np.full((3, 2), float(i)), i / 30.0, scale=50.0)
        smoother.smooth(7, "colour", np.full((2, 3), float(i)), i / 30.0)
    restored = TrackSmoother.from_state(smoother.state())
    a = smoother.smooth(7, "landmarks", np.full((3, 2), 9.0), 5 / 30.0, scale=50.0)
    b = restored.smooth(7, "landmarks", np.full((3, 2), 9.0), 5 / 30.0, scale=50.0)
    assert np.allclose(a, b) and a[0, 0] < 9.0
    smoother.keep_only(set())
    assert smoother.state() == []
    off = TrackSmoother(SmoothingOptions(enabled=False))
    off.smooth(1, "colour", np.zeros(3), 0.0)
    assert np.array_equal(off.smooth(1, "colour", np.ones(3), 0.1), np.ones(3))
    with pytest.raises(MediaError, match="unknown stream"):
        smoother.smooth(1, "hair", np.zeros(3), 0.0)


def test_swap_denoise_damps_small_changes_and_passes_large_ones() -> None:
    from likeness.render.smoothing import denoise_swap

    previous = np.full((3, 4, 4), 0.5, np.float32)
    current = previous.copy()
    current[0, 0, 0] += 1 / 255  # one grey level: noise, moves a quarter (1 / threshold) of its step
    current[0, 3, 3] += 0.4 / 255  # below 1 - damping of the threshold: moves 15 % of its step
    current[1, 1, 1] += 8 / 255  # eight grey levels: a real change, passes at once
    current[2, 2, 2] -= 2 / 255  # half the threshold: moves half of its step
    out = denoise_swap(previous, current, threshold=4.0, damping=0.85)
    assert out.dtype == np.float32
    assert out[0, 0, 0] == pytest.approx(0.5 + 0.25 / 255, abs=1e-7)
    assert out[0, 3, 3] == pytest.approx(0.5 + 0.06 / 255, abs=1e-7)
    assert out[1, 1, 1] == current[1, 1, 1]
    assert out[2, 2, 2] == pytest.approx(0.5 - 1 / 255, abs=1e-7)
    assert np.array_equal(out[previous == current], previous[previous == current])
    # No previous output (first frame of a track), another shape, or damping 0: the output itself.
    assert denoise_swap(None, current, threshold=4.0, damping=0.85) is current
    assert denoise_swap(previous[:, :2], current, threshold=4.0, damping=0.85) is current
    assert np.array_equal(denoise_swap(previous, current, threshold=4.0, damping=0.0), current)


def test_swap_denoise_lowers_network_noise_but_follows_a_real_change() -> None:
    rng = np.random.default_rng(3)
    smoother = TrackSmoother()
    face = rng.uniform(0.2, 0.8, (3, 16, 16)).astype(np.float32)
    raw, out = [], []
    for i in range(40):
        # Output noise of about one grey level around a face that changes once, at frame 20.
        truth = face + (0.1 if i >= 20 else 0.0)
        noisy = (truth + rng.normal(0, 1 / 255, truth.shape)).astype(np.float32)
        raw.append(noisy)
        out.append(smoother.denoise_swap(5, noisy))
    noise_in = np.abs(np.diff(raw[:20], axis=0)).mean()
    noise_out = np.abs(np.diff(out[:20], axis=0)).mean()
    assert noise_out < 0.4 * noise_in
    # The 25-grey-level change lands on its own frame, without lag.
    assert np.abs(out[20] - (face + 0.1)).max() < 4 / 255
    # Checkpoint state restores the exact last output; ended tracks and disabled smoothing keep none.
    restored = TrackSmoother.from_state(smoother.state())
    probe = (face + 0.1 + 1 / 255).astype(np.float32)
    assert np.array_equal(restored.denoise_swap(5, probe), smoother.denoise_swap(5, probe))
    smoother.keep_only(set())
    assert smoother.state() == []
    off = TrackSmoother(SmoothingOptions(enabled=False))
    off.denoise_swap(1, face)
    assert np.array_equal(off.denoise_swap(1, probe), probe)


@pytest.mark.parametrize("threshold, damping", [(0.0, 0.5), (-1.0, 0.5), (4.0, 1.0), (4.0, -0.1)])
def test_swap_denoise_options_are_checked(threshold: float, damping: float) -> None:
    with pytest.raises(MediaError, match="swap_threshold"):
        SmoothingOptions(swap_threshold=threshold, swap_damping=damping)


# ---- gating -------------------------------------------------------------------------------


def test_gate_reasons() -> None:
    size = (640, 480)
    assert gate_face((100, 100, 220, 240), frame_size=size, yaw=0.0, yaw_range=(-30, 30)).swap
    assert gate_face((100, 100, 120, 120), frame_size=size, yaw=0.0, yaw_range=None).reason == "too_small"
    assert gate_face((-60, 100, 60, 240), frame_size=size, yaw=0.0, yaw_range=None).reason == "out_of_frame"
    assert (
        gate_face((100, 100, 220, 240), frame_size=size, yaw=55.0, yaw_range=(-30, 30)).reason
        == "profile_beyond_coverage"
    )
    assert gate_face((100, 100, 220, 240), frame_size=size, yaw=38.0, yaw_range=(-30, 30)).swap  # within margin
    assert not gate_face(
        (100, 100, 220, 240), frame_size=size, yaw=38.0, yaw_range=(-30, 30), options=GateOptions(yaw_margin_deg=0)
    ).swap
    with pytest.raises(FaceError):
        gate_face((10, 10, 5, 5), frame_size=size, yaw=0.0, yaw_range=None)


# ---- quality ------------------------------------------------------------------------------


def test_flicker_ratio_detects_added_jitter() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 200, (1, 32, 32, 3)).astype(np.int16)
    source = np.clip(base + np.arange(6)[:, None, None, None], 0, 255).astype(np.uint8)
    assert flicker_ratio(source, source) == pytest.approx(1.0)
    jittery = np.clip(source.astype(int) + rng.integers(-20, 20, source.shape), 0, 255).astype(np.uint8)
    assert flicker_ratio(source, jittery) > 3.0
    with pytest.raises(MediaError):
        flicker_ratio(source[:1], source[:1])


def test_ring_colour_difference_sees_a_seam() -> None:
    frame = np.full((64, 64, 3), (200, 160, 140), np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    assert ring_colour_difference(frame, mask) == pytest.approx(0.0, abs=1e-6)
    frame[16:48, 16:48] = (150, 110, 100)
    assert ring_colour_difference(frame, mask) > 5.0
    assert ring_colour_difference(frame, np.zeros((64, 64), np.float32)) is None


def test_identity_transfer_measures_both_distances() -> None:
    rng = np.random.default_rng(6)
    subject = rng.normal(0, 1, (3, 128))
    target_embedding = rng.normal(0, 1, 128)
    result = identity_transfer(subject[0] + 0.01, subject, target_embedding)
    assert result["distance_to_subject"] < 0.2 < result["distance_to_performer"]
    assert identity_transfer(subject[0], subject, None)["distance_to_performer"] is None
