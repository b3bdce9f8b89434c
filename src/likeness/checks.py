"""Entry checks for arrays: one home for them (after kornia's ``core/check``).

Each check returns the value it accepted (converted only where it says so) and otherwise raises
a typed error that says what was expected and what came, so a bad array never reaches OpenCV
(whose own errors are C++ assertion texts) or fails silently. The value comes first and the
options are keyword-only; ``error`` turns the reason into the caller's error type (a
``MediaError`` with no path unless said otherwise), so ``faces`` raises ``FaceError`` and
``provenance`` raises ``ProvenanceError`` from the same check.

Example::

    >>> import numpy as np
    >>> check_rgb(np.zeros((2, 3, 3), np.uint8), name="frame").shape
    (2, 3, 3)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from likeness.errors import FaceError, LikenessError, MediaError

#: Builds the error a check raises from its reason (``"<name>: expected ..., got ..."``).
ErrorFactory = Callable[[str], LikenessError]


def media_error(reason: str) -> LikenessError:
    """``MediaError`` with no path: the default for image and mask checks."""
    return MediaError(None, reason)


_RGB = "a uint8 RGB image, a numpy uint8 array of shape (H, W, 3) with H, W >= 1"


def check_rgb(image: object, *, name: str = "image", error: ErrorFactory = media_error) -> np.ndarray:
    """Return ``image`` unchanged if it is a ``uint8`` RGB array ``(H, W, 3)`` with ``H, W >= 1``."""
    if not isinstance(image, np.ndarray):
        raise error(f"{name}: expected {_RGB}, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise error(f"{name}: expected dtype uint8 for {_RGB}, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise error(f"{name}: expected {_RGB}, got shape {image.shape}")
    return image


def check_mask(
    mask: object, *, name: str = "mask", shape: tuple[int, int] | None = None, error: ErrorFactory = media_error
) -> np.ndarray:
    """Return ``mask`` as float32 ``(H, W)`` in [0, 1]; accepts float and bool masks, and
    ``(H, W, 1)``. ``shape`` (H, W), when given, must match."""
    if not isinstance(mask, np.ndarray):
        raise error(f"{name}: expected a float mask array (H, W), got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise error(f"{name}: expected shape (H, W), got {mask.shape}")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise error(f"{name}: expected shape {tuple(shape)}, got {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if not np.issubdtype(mask.dtype, np.floating):
        raise error(f"{name}: expected a float or bool mask, got dtype {mask.dtype}")
    if mask.size and (not np.isfinite(mask).all() or mask.min() < 0.0 or mask.max() > 1.0):
        raise error(f"{name}: expected values in [0, 1], got [{np.nanmin(mask)}, {np.nanmax(mask)}]")
    return mask.astype(np.float32, copy=False)


def check_landmarks(
    landmarks: object, *, name: str = "landmarks", min_points: int = 3, error: ErrorFactory = FaceError
) -> np.ndarray:
    """Return ``landmarks`` as float32 ``(N, 2)`` finite pixel coordinates, ``N >= min_points``."""
    if not isinstance(landmarks, np.ndarray):
        raise error(f"{name}: expected landmarks float32 (N, 2), got {type(landmarks).__name__}")
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or landmarks.shape[0] < min_points:
        raise error(f"{name}: expected landmarks (N>={min_points}, 2), got {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise error(f"{name}: landmarks contain NaN or infinite values")
    return landmarks.astype(np.float32, copy=False)


def check_affine(affine: object, *, name: str = "affine", error: ErrorFactory = FaceError) -> np.ndarray:
    """Return ``affine`` as a finite, invertible float64 ``(2, 3)`` matrix."""
    if not isinstance(affine, np.ndarray) or affine.shape != (2, 3):
        shape = getattr(affine, "shape", type(affine).__name__)
        raise error(f"{name}: expected an affine float64 (2, 3), got {shape}")
    affine = affine.astype(np.float64, copy=False)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise error(f"{name}: affine is not finite and invertible")
    return affine
