"""Face quality measures: sharpness, eye and mouth openness, brightness.

All ratios are scale invariant so they compare across face sizes.

Example:
    >>> import numpy as np
    >>> sharpness(np.full((64, 64), 128, np.uint8))
    0.0
"""

from __future__ import annotations

import cv2
import numpy as np

from likeness.checks import check_rgb
from likeness.errors import FaceError
from likeness.faces.align import check_landmarks
from likeness.faces.canonical import (
    INNER_LIP_LEFT,
    INNER_LIP_LOWER,
    INNER_LIP_RIGHT,
    INNER_LIP_UPPER,
    LEFT_EYE_INNER,
    LEFT_EYE_LIDS,
    LEFT_EYE_OUTER,
    RIGHT_EYE_INNER,
    RIGHT_EYE_LIDS,
    RIGHT_EYE_OUTER,
)

SHARPNESS_REFERENCE_SIZE = 128


def sharpness(gray: np.ndarray, *, reference_size: int = SHARPNESS_REFERENCE_SIZE) -> float:
    """Variance of the Laplacian of a face crop, normalised for face size.

    Args:
        gray: ``(H, W)`` grayscale face (uint8 in [0, 255] or float in [0, 1]), ideally an aligned
            crop. It is resampled to ``reference_size`` x ``reference_size`` first, so the value
            does not grow or shrink with the face's pixel size.

    Returns:
        Laplacian variance in (8-bit intensity units)^2 at the reference size; higher is sharper.
    """
    gray = np.asarray(gray)
    if gray.ndim != 2 or min(gray.shape) < 3:
        raise FaceError(f"sharpness expects a 2D grayscale array of at least 3x3, got {gray.shape}")
    if gray.dtype == np.uint8:
        values = gray.astype(np.float32)
    elif np.issubdtype(gray.dtype, np.floating):
        values = gray.astype(np.float32) * 255.0
    else:
        raise FaceError(f"sharpness expects uint8 or float pixels, got {gray.dtype}")
    shrinking = min(gray.shape) > reference_size
    resized = cv2.resize(
        values,
        (reference_size, reference_size),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    return float(cv2.Laplacian(resized, cv2.CV_32F, ksize=1).var())


def _eye_ratio(points: np.ndarray, lids: tuple[tuple[int, int], ...], outer: int, inner: int) -> float:
    width = float(np.linalg.norm(points[outer] - points[inner]))
    if width < 1e-6:
        raise FaceError("landmarks are degenerate (eye corners coincide)")
    gaps = [float(np.linalg.norm(points[upper] - points[lower])) for upper, lower in lids]
    return float(np.mean(gaps)) / width


def eye_openness_each(landmarks: np.ndarray) -> tuple[float, float]:
    """Eye aspect ratio (lid gap / eye width) of the subject's right and left eye, in that order."""
    points = check_landmarks(landmarks)
    right = _eye_ratio(points, RIGHT_EYE_LIDS, RIGHT_EYE_OUTER, RIGHT_EYE_INNER)
    left = _eye_ratio(points, LEFT_EYE_LIDS, LEFT_EYE_OUTER, LEFT_EYE_INNER)
    return right, left


def eye_openness(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes: lid gap / eye width (about 0.25-0.35 open, < 0.1 shut)."""
    right, left = eye_openness_each(landmarks)
    return (right + left) / 2.0


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap / inner mouth width: about 0-0.06 closed (closed smiles too), 0.1-0.3 lips apart
    (speech, a smile showing teeth; a smile stretches the width, so it stays low), 0.5+ wide open."""
    points = check_landmarks(landmarks)
    width = float(np.linalg.norm(points[INNER_LIP_LEFT] - points[INNER_LIP_RIGHT]))
    if width < 1e-6:
        raise FaceError("landmarks are degenerate (mouth corners coincide)")
    return float(np.linalg.norm(points[INNER_LIP_UPPER] - points[INNER_LIP_LOWER])) / width


def brightness(rgb: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Rec.601 luma in [0, 1] of ``rgb (H, W, 3) uint8`` where ``mask (H, W)`` is non-zero."""
    check_rgb(rgb, error=FaceError)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if mask is None:
        return float(luma.mean()) / 255.0
    mask = np.asarray(mask)
    if mask.shape != luma.shape:
        raise FaceError(f"mask: expected shape {luma.shape}, got {mask.shape}")
    selected = luma[mask > 0]
    if selected.size == 0:
        raise FaceError("brightness: mask selects no pixels")
    return float(selected.mean()) / 255.0
