"""Training-pair preparation: random affine, DeepFaceLab-style random warp, colour/lighting jitter.

All functions are pure: arrays in, arrays out, randomness from an explicit ``numpy`` Generator, so
a batch is a deterministic function of its seed (which is what makes resume bit-exact).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from likeness.errors import ConfigError, FacesetError
from likeness.train import landmark_regions as lr
from likeness.train.samples import LANDMARK_COUNT


@dataclass(frozen=True)
class AugmentOptions:
    """Strength of each augmentation. Angles in degrees, shifts and scales as fractions of the side.

    ``warp_until``: the training iteration from which the random warp stops (None: never).
    DeepFaceLab users switch random warp off late in training so the decoders sharpen detail;
    the schedule depends on the iteration alone, so a resumed run sees the same batches.
    """

    rotation_deg: float = 10.0
    scale: float = 0.05
    shift: float = 0.05
    flip: bool = False
    warp: bool = True
    warp_strength: float = 0.24
    brightness: float = 0.12
    contrast: float = 0.15
    channel_gain: float = 0.08
    lighting_gradient: float = 0.12
    warp_until: int | None = None

    def __post_init__(self) -> None:
        if self.warp_until is not None and (
            isinstance(self.warp_until, bool) or not isinstance(self.warp_until, int) or self.warp_until < 0
        ):
            raise ConfigError(f"warp_until must be an iteration number >= 0 or None, got {self.warp_until!r}")

    def at_iteration(self, iteration: int) -> AugmentOptions:
        """The options in force at training ``iteration`` (the warp schedule applied)."""
        if self.warp and self.warp_until is not None and iteration >= self.warp_until:
            return replace(self, warp=False)
        return self


@dataclass(frozen=True)
class TrainingPair:
    """One prepared sample, float32 CHW in ``[0, 1]`` at resolution R.

    ``warped`` (3,R,R) is the network input, ``target`` (3,R,R) what it must reproduce,
    ``mask`` (1,R,R) the face hull, ``priority`` (1,R,R) per-pixel loss weights (>= 1).
    """

    warped: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    priority: np.ndarray


def _check_face(aligned_face: np.ndarray, landmarks: np.ndarray) -> None:
    if not isinstance(aligned_face, np.ndarray) or aligned_face.dtype != np.uint8 or aligned_face.ndim != 3:
        raise FacesetError(
            f"aligned_face: expected uint8 (S, S, 3), got {getattr(aligned_face, 'dtype', None)} "
            f"{getattr(aligned_face, 'shape', None)}"
        )
    if aligned_face.shape[0] != aligned_face.shape[1] or aligned_face.shape[2] != 3:
        raise FacesetError(f"aligned_face: expected a square RGB crop, got {aligned_face.shape}")
    if landmarks.shape != (LANDMARK_COUNT, 2):
        raise FacesetError(f"landmarks: expected ({LANDMARK_COUNT}, 2), got {landmarks.shape}")


def landmark_hull_mask(landmarks: np.ndarray, *, size: int) -> np.ndarray:
    """float32 (size, size) mask: 1 inside the convex hull of ``landmarks`` (pixels), else 0."""
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(landmarks * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, cv2.LINE_AA, 4)
    return mask.astype(np.float32)


def feature_priority_map(landmarks: np.ndarray, *, size: int, weight: float) -> np.ndarray:
    """float32 (size, size) loss weights: ``1 + weight`` on eyes and mouth, 1 elsewhere.

    Eyes and mouth carry expression and gaze; DeepFaceLab's eyes/mouth priority makes the loss
    spend capacity there instead of on flat skin.
    """
    weights = np.ones((size, size), np.float32)
    if weight <= 0:
        return weights
    region: np.ndarray = np.zeros((size, size), np.uint8)
    for ring in (lr.RIGHT_EYE_RING + lr.RIGHT_BROW, lr.LEFT_EYE_RING + lr.LEFT_BROW, lr.OUTER_LIPS):
        hull = cv2.convexHull(np.round(landmarks[list(ring)] * 16).astype(np.int32))
        cv2.fillConvexPoly(region, hull, 1, cv2.LINE_AA, 4)
    # A little dilation so the lid and lip edges themselves are covered.
    k = max(3, (size // 32) | 1)
    region = cv2.dilate(region, np.ones((k, k), np.uint8))
    return weights + weight * region.astype(np.float32)


def random_affine(*, size: int, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """float64 (2, 3) affine around the crop centre: rotation, scale, shift, optional flip."""
    angle = rng.uniform(-options.rotation_deg, options.rotation_deg)
    scale = 1.0 + rng.uniform(-options.scale, options.scale)
    affine = np.asarray(cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale), dtype=np.float64)
    affine[:, 2] += rng.uniform(-options.shift, options.shift, size=2) * size
    if options.flip and rng.random() < 0.5:
        flip = np.array([[-1.0, 0, size], [0, 1, 0], [0, 0, 1]])
        affine = (flip @ np.vstack([affine, [0, 0, 1]]))[:2]
    return affine


def random_warp_maps(*, size: int, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random displacement (DFL ``random_warp``) as ``cv2.remap`` maps, float32 (size, size) each.

    A coarse grid of 3-5 cells gets normal offsets of ``strength`` x cell size (border points
    fixed), upsampled with cubic interpolation; the warp changes local shape but not identity, so
    the network must learn the face, not copy pixels. Only the offsets are upsampled, then added
    to the pixel grid, so strength 0 is the identity (upsampled absolute grid coordinates would
    rescale the face by about ``(cells + 1) / cells``).
    """
    cells = int(rng.integers(3, 6))
    offsets = rng.normal(0, strength * size / cells, size=(2, cells + 1, cells + 1)).astype(np.float32)
    offsets[:, [0, -1], :] = offsets[:, :, [0, -1]] = 0
    dx, dy = (cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC) for d in offsets)
    grid = np.arange(size, dtype=np.float32)
    return grid[None, :] + dx, grid[:, None] + dy


def colour_jitter(rgb: np.ndarray, *, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """float32 (H,W,3) in [0,1] -> same shape: brightness, contrast, white balance, lighting ramp."""
    h, w, _ = rgb.shape
    out = rgb * (1.0 + rng.uniform(-options.channel_gain, options.channel_gain, size=3)).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * np.float32(1.0 + rng.uniform(-options.contrast, options.contrast)) + mean
    out = out + np.float32(rng.uniform(-options.brightness, options.brightness))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5)).astype(np.float32)
    out = out * (1.0 + np.float32(rng.uniform(0, options.lighting_gradient)) * ramp)[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def prepare_training_pair(
    aligned_face: np.ndarray,
    landmarks: np.ndarray,
    *,
    resolution: int,
    rng: np.random.Generator,
    options: AugmentOptions = AugmentOptions(),
    priority_weight: float = 0.0,
    augment: bool = True,
) -> TrainingPair:
    """Resize an aligned crop to ``resolution`` and build one augmented training pair.

    ``aligned_face`` uint8 (S,S,3) RGB; ``landmarks`` float32 (478,2) crop pixels. The same random
    affine and colour jitter apply to input and target (so swaps follow the target's lighting);
    the random warp applies to the input only. ``augment=False`` gives the clean crop (validation).
    """
    _check_face(aligned_face, landmarks)
    src_size = aligned_face.shape[0]
    rgb = aligned_face
    if src_size != resolution:
        interp = cv2.INTER_AREA if src_size > resolution else cv2.INTER_CUBIC
        rgb = cv2.resize(aligned_face, (resolution, resolution), interpolation=interp)
    points = landmarks.astype(np.float64) * (resolution / src_size)
    image: np.ndarray = rgb.astype(np.float32) / 255.0
    if augment:
        affine = random_affine(size=resolution, rng=rng, options=options)
        image = cv2.warpAffine(
            image, affine, (resolution, resolution), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        points = points @ affine[:, :2].T + affine[:, 2]
        image = colour_jitter(image, rng=rng, options=options)
        if options.warp:
            map_x, map_y = random_warp_maps(size=resolution, rng=rng, strength=options.warp_strength)
            warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = image
    else:
        warped = image
    mask = landmark_hull_mask(points.astype(np.float32), size=resolution)
    priority = feature_priority_map(points.astype(np.float32), size=resolution, weight=priority_weight)
    return TrainingPair(
        warped=np.ascontiguousarray(warped.transpose(2, 0, 1)),
        target=np.ascontiguousarray(image.transpose(2, 0, 1)),
        mask=mask[None],
        priority=priority[None],
    )
