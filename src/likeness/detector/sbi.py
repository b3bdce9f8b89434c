"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): pseudo-fakes from pristine faces.

A face is blended with a slightly transformed copy of itself inside a landmark-hull mask. The
copy differs only in the statistics a face swap leaves behind (colour mismatch, a softer or
sharper face, a small misregistration, a visible blend boundary), never in identity, so a
classifier trained on (pristine, self-blended) pairs learns those traces instead of one swap
model's look.

Pure functions: uint8 RGB ``(S, S, 3)`` aligned crops and ``(N, 2)`` crop landmarks in, arrays
out; every random choice comes from the ``numpy.random.Generator`` passed in.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> face = np.full((64, 64, 3), 128, np.uint8)
    >>> landmarks = np.array([[20, 20], [44, 20], [44, 48], [20, 48]], np.float32)
    >>> fake, mask = self_blend(face, landmarks, rng)
    >>> fake.shape, fake.dtype, mask.shape
    ((64, 64, 3), dtype('uint8'), (64, 64))
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from likeness.checks import check_rgb
from likeness.errors import FaceError
from likeness.render.mask import erode_dilate, feather, landmark_hull


@dataclass(frozen=True)
class SbiOptions:
    """Ranges the pseudo-fakes are drawn from (fractions of the crop side where a length).

    The defaults follow the paper's source-target augmentation, scaled to small crops.
    """

    hue_shift: float = 0.03  # fraction of the hue circle
    saturation_gain: tuple[float, float] = (0.8, 1.2)
    value_gain: tuple[float, float] = (0.8, 1.2)
    rgb_shift: float = 12.0  # uint8 levels per channel
    contrast: tuple[float, float] = (0.85, 1.15)
    sharpen_probability: float = 0.5  # else soften
    scale: tuple[float, float] = (0.95, 1.05)
    shift: float = 0.03
    mask_erode: tuple[float, float] = (-0.06, 0.06)  # negative erodes, positive dilates
    mask_feather: tuple[float, float] = (0.02, 0.09)
    mask_warp: float = 0.02  # elastic deformation of the hull outline
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def _check_face(face: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    check_rgb(face, name="face", error=FaceError)
    if face.shape[0] != face.shape[1]:
        raise FaceError(f"face: expected a square aligned crop, got {face.shape}")
    points = np.asarray(landmarks, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3 or not np.isfinite(points).all():
        raise FaceError(f"landmarks: expected finite (N >= 3, 2) crop coordinates, got {points.shape}")
    return face, points


def jitter_colour(face: np.ndarray, rng: np.random.Generator, *, options: SbiOptions = SbiOptions()) -> np.ndarray:
    """Shift hue, saturation, value, per-channel level and contrast: a colour-transfer mismatch."""
    check_rgb(face, name="face", error=FaceError)
    hsv = cv2.cvtColor(face, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-1, 1) * options.hue_shift * 180.0) % 180.0
    hsv[..., 1] *= rng.uniform(*options.saturation_gain)
    hsv[..., 2] *= rng.uniform(*options.value_gain)
    hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    out += rng.uniform(-options.rgb_shift, options.rgb_shift, size=3).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(*options.contrast) + mean
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def jitter_sharpness(face: np.ndarray, rng: np.random.Generator, *, options: SbiOptions = SbiOptions()) -> np.ndarray:
    """Sharpen (unsharp mask) or soften (down- and up-sample): a decoder's detail mismatch."""
    check_rgb(face, name="face", error=FaceError)
    side = face.shape[0]
    if rng.random() < options.sharpen_probability:
        blurred = cv2.GaussianBlur(face, (0, 0), rng.uniform(0.6, 1.5)).astype(np.float32)
        amount = rng.uniform(0.3, 1.0)
        return np.clip(face.astype(np.float32) * (1 + amount) - blurred * amount, 0, 255).round().astype(np.uint8)
    small = max(8, int(round(side * rng.uniform(0.4, 0.9))))
    down = cv2.resize(face, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (side, face.shape[1]), interpolation=cv2.INTER_LINEAR)


def small_affine(face: np.ndarray, rng: np.random.Generator, *, options: SbiOptions = SbiOptions()) -> np.ndarray:
    """Scale and translate by a few per cent about the centre: a misregistered paste."""
    check_rgb(face, name="face", error=FaceError)
    side = face.shape[0]
    scale = rng.uniform(*options.scale)
    dx, dy = rng.uniform(-options.shift, options.shift, size=2) * side
    centre = (side - 1) / 2.0
    affine = np.array([[scale, 0, (1 - scale) * centre + dx], [0, scale, (1 - scale) * centre + dy]], np.float64)
    return cv2.warpAffine(face, affine, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def sbi_mask(
    landmarks: np.ndarray, size: int, rng: np.random.Generator, *, options: SbiOptions = SbiOptions()
) -> np.ndarray:
    """The blend mask: landmark hull, outline warped, randomly eroded or dilated, then feathered.

    Returns float32 ``(size, size)`` in [0, 1].
    """
    points = np.asarray(landmarks, dtype=np.float32)
    hull = cv2.convexHull(np.round(points).astype(np.int32))[:, 0].astype(np.float32)
    centre = hull.mean(axis=0)
    # Elastic outline: each hull vertex moves radially by a smooth random amount.
    jitter = rng.normal(0.0, options.mask_warp * size, size=len(hull)).astype(np.float32)
    jitter = np.convolve(np.concatenate([jitter[-2:], jitter, jitter[:2]]), np.ones(5) / 5, mode="valid")
    direction = hull - centre
    norm = np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6
    warped = hull + direction / norm * jitter[:, None]
    mask = landmark_hull(warped, size=size)
    grow = int(round(rng.uniform(*options.mask_erode) * size))
    mask = erode_dilate(mask, pixels=grow)
    if not mask.any():
        mask = landmark_hull(points, size=size)
    return feather(mask, pixels=max(1, int(round(rng.uniform(*options.mask_feather) * size))))


def self_blend(
    face: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, *, options: SbiOptions = SbiOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """One pseudo-fake: ``face`` blended with a colour-, sharpness- and position-jittered copy.

    Returns ``(uint8 RGB (S, S, 3), float32 (S, S) blend mask times the blend ratio)``; the mask
    is where the result differs from ``face`` (the manipulated region).
    """
    face, points = _check_face(face, landmarks)
    source = face
    # The paper transforms either the source or the target; transforming the source (the face
    # that is pasted) keeps the target's background untouched, as a swap does.
    steps = [jitter_colour, jitter_sharpness, small_affine]
    for k in rng.permutation(len(steps)):
        source = steps[int(k)](source, rng, options=options)
    mask = sbi_mask(points, face.shape[0], rng, options=options) * float(rng.choice(options.blend_ratios))
    blended = mask[..., None] * source.astype(np.float32) + (1 - mask[..., None]) * face.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8), mask.astype(np.float32)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a platform does to any face, real or fake, before it is scored: brightness, blur,
    down-and-up scaling and JPEG at a random quality. Applied to both classes alike so none of it
    is a cue."""
    check_rgb(image, name="image", error=FaceError)
    out = image
    if rng.random() < 0.3:
        out = np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.0))
    if rng.random() < 0.3:
        side = out.shape[0]
        small = max(8, int(side * rng.uniform(0.5, 0.9)))
        out = cv2.resize(
            cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (side, side), interpolation=cv2.INTER_LINEAR
        )
    if rng.random() < 0.6:
        out = jpeg(out, int(rng.integers(40, 95)))
    return np.ascontiguousarray(out)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode ``image`` (uint8 RGB) as JPEG at ``quality`` (1-100)."""
    check_rgb(image, name="image", error=FaceError)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    return image if decoded is None else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
