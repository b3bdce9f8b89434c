"""Head pose, quality measures and hull masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from likeness.errors import FaceError
from likeness.faces import (
    FaceDetector,
    align_face,
    brightness,
    eye_openness,
    head_pose,
    hull_mask,
    mouth_openness,
    sharpness,
)
from likeness.media.synthetic import grace_hopper


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(max_faces=1) as face_detector:
        yield face_detector


def cylinder_turn(rgb: np.ndarray, degrees: float, centre_x: float, radius: float) -> np.ndarray:
    """Turn the face about a vertical axis by treating it as a cylinder (a synthetic yaw)."""
    height, width = rgb.shape[:2]
    xs = np.arange(width, dtype=np.float64)
    phi = np.arcsin(np.clip((xs - centre_x) / radius, -1, 1)) - np.radians(degrees)
    inside = np.abs(xs - centre_x) < radius
    source_x = np.where(inside, centre_x + radius * np.sin(np.clip(phi, -np.pi / 2, np.pi / 2)), xs)
    map_x = np.tile(source_x.astype(np.float32), (height, 1))
    map_y = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
    return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("portrait", [skimage.data.astronaut, grace_hopper])
def test_frontal_portrait_has_small_yaw_pitch_roll(detector, portrait):
    rgb = portrait()
    yaw, pitch, roll = head_pose(detector.detect(rgb)[0].landmarks, rgb.shape[:2])
    assert abs(yaw) < 8 and abs(pitch) < 10 and abs(roll) < 6


def test_turned_face_and_its_mirror_have_opposite_yaw(detector):
    turned = cylinder_turn(skimage.data.astronaut(), 35.0, centre_x=225.0, radius=80.0)
    yaw, _, _ = head_pose(detector.detect(turned)[0].landmarks, turned.shape[:2])
    mirrored = np.ascontiguousarray(turned[:, ::-1])
    yaw_mirrored, _, _ = head_pose(detector.detect(mirrored)[0].landmarks, mirrored.shape[:2])
    # Documented convention: turning the face towards the image right gives positive yaw.
    assert yaw > 6.0
    assert yaw_mirrored < -6.0
    assert abs(yaw + yaw_mirrored) < 5.0


def test_in_plane_rotation_is_roll(detector):
    portrait = skimage.data.astronaut()
    # Positive angle in getRotationMatrix2D turns the picture counter-clockwise on screen.
    matrix = cv2.getRotationMatrix2D((225.0, 125.0), -20.0, 1.0)
    rotated = cv2.warpAffine(portrait, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
    _, _, roll_before = head_pose(detector.detect(portrait)[0].landmarks, (512, 512))
    _, _, roll_after = head_pose(detector.detect(rotated)[0].landmarks, (512, 512))
    assert roll_after - roll_before == pytest.approx(20.0, abs=4.0)


def test_head_pose_rejects_bad_input():
    with pytest.raises(FaceError, match=r"\(478, 2\)"):
        head_pose(np.zeros((5, 2)), (100, 100))
    with pytest.raises(FaceError, match="image_size"):
        head_pose(np.zeros((478, 2)), (0, 100))


def test_sharpness_drops_with_blur_and_is_size_normalised():
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (256, 256), dtype=np.uint8), (0, 0), 1.0)
    blurred = cv2.GaussianBlur(texture, (0, 0), 3.0)
    assert sharpness(blurred) < 0.3 * sharpness(texture)
    assert sharpness(np.full((64, 64), 100, np.uint8)) == 0.0
    # The same face at 512 px and at 256 px scores alike (raw Laplacian variance would not).
    portrait = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)[60:190, 170:300]
    large = cv2.resize(portrait, (512, 512), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert sharpness(large) == pytest.approx(sharpness(small), rel=0.25)
    assert sharpness(portrait.astype(np.float32) / 255.0) == pytest.approx(sharpness(portrait), rel=1e-3)
    with pytest.raises(FaceError, match="2D grayscale"):
        sharpness(np.zeros((10, 10, 3), np.uint8))


def test_openness_ratios_are_scale_invariant_and_distinguish_open_mouth(detector):
    astronaut = skimage.data.astronaut()
    landmarks = detector.detect(astronaut)[0].landmarks
    eyes, mouth = eye_openness(landmarks), mouth_openness(landmarks)
    assert 0.15 < eyes < 0.5
    assert eye_openness(landmarks * 3.0 + 17.0) == pytest.approx(eyes, rel=1e-6)
    assert mouth_openness(landmarks * 0.5) == pytest.approx(mouth, rel=1e-6)
    # Astronaut smiles with her teeth showing; Grace Hopper's lips are closed.
    hopper = grace_hopper()
    closed = mouth_openness(detector.detect(hopper)[0].landmarks)
    assert mouth > 0.08 > closed


def test_brightness_follows_mask_and_rejects_empty_mask():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:, 5:] = 255
    mask = np.zeros((10, 10), np.uint8)
    mask[:, 5:] = 255
    assert brightness(rgb) == pytest.approx(0.5)
    assert brightness(rgb, mask) == pytest.approx(1.0)
    with pytest.raises(FaceError, match="no pixels"):
        brightness(rgb, np.zeros((10, 10), np.uint8))
    with pytest.raises(FaceError, match="shape"):
        brightness(rgb, np.zeros((5, 5), np.uint8))


def test_hull_mask_covers_face_and_forehead_extension_grows_upwards(detector):
    astronaut = skimage.data.astronaut()
    aligned = align_face(astronaut, detector.detect(astronaut)[0].landmarks, size=128)
    mask = hull_mask(aligned.landmarks, 128)
    assert mask.shape == (128, 128) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    inside = np.clip(np.round(aligned.landmarks).astype(int), 0, 127)
    assert (mask[inside[:, 1], inside[:, 0]] == 255).mean() > 0.95
    assert 0.25 < (mask > 0).mean() < 0.75
    extended = hull_mask(aligned.landmarks, 128, forehead=0.2)
    assert (extended >= mask).all()
    rows = np.where(mask.any(axis=1))[0]
    rows_ext = np.where(extended.any(axis=1))[0]
    assert rows_ext[0] < rows[0] and rows_ext[-1] == rows[-1]
    with pytest.raises(FaceError, match="forehead"):
        hull_mask(aligned.landmarks, 128, forehead=-1.0)
