"""Entry checks shared by the render refinement functions.

Each check raises a typed error that says what was expected and what came, so a bad array
never reaches OpenCV (whose own errors are C++ assertion texts) or fails silently.
"""

from __future__ import annotations

import numpy as np

from likeness.errors import FaceError, MediaError


def require_rgb(name: str, image: object) -> np.ndarray:
    """Return ``image`` if it is a uint8 RGB array ``(H, W, 3)`` with H, W >= 1."""
    if not isinstance(image, np.ndarray):
        raise MediaError(None, f"{name}: expected a uint8 RGB array (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise MediaError(None, f"{name}: expected shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise MediaError(None, f"{name}: expected dtype uint8, got {image.dtype}")
    return image


def require_mask(name: str, mask: object, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Return ``mask`` as float32 ``(H, W)`` in [0, 1]; accepts float masks and bool masks.

    ``shape`` (H, W), when given, must match.
    """
    if not isinstance(mask, np.ndarray):
        raise MediaError(None, f"{name}: expected a float mask array (H, W), got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise MediaError(None, f"{name}: expected shape (H, W), got {mask.shape}")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise MediaError(None, f"{name}: expected shape {tuple(shape)}, got {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if not np.issubdtype(mask.dtype, np.floating):
        raise MediaError(None, f"{name}: expected a float or bool mask, got dtype {mask.dtype}")
    if mask.size and (not np.isfinite(mask).all() or mask.min() < 0.0 or mask.max() > 1.0):
        raise MediaError(None, f"{name}: expected values in [0, 1], got [{np.nanmin(mask)}, {np.nanmax(mask)}]")
    return mask.astype(np.float32, copy=False)


def require_landmarks(name: str, landmarks: object, *, min_points: int = 3) -> np.ndarray:
    """Return ``landmarks`` as float32 ``(N, 2)`` finite pixel coordinates, N >= ``min_points``."""
    if not isinstance(landmarks, np.ndarray):
        raise FaceError(f"{name}: expected landmarks float32 (N, 2), got {type(landmarks).__name__}")
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or landmarks.shape[0] < min_points:
        raise FaceError(f"{name}: expected landmarks (N>={min_points}, 2), got {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise FaceError(f"{name}: landmarks contain NaN or infinite values")
    return landmarks.astype(np.float32, copy=False)


def require_affine(name: str, affine: object) -> np.ndarray:
    """Return ``affine`` as a finite, invertible float64 ``(2, 3)`` matrix."""
    if not isinstance(affine, np.ndarray) or affine.shape != (2, 3):
        shape = getattr(affine, "shape", type(affine).__name__)
        raise FaceError(f"{name}: expected an affine float64 (2, 3), got {shape}")
    affine = affine.astype(np.float64, copy=False)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise FaceError(f"{name}: affine is not finite and invertible")
    return affine
