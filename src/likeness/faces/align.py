"""Face alignment: similarity transform to a canonical template, and pasting a crop back.

Affines are ``float64 (2, 3)`` matrices mapping *frame* pixel coordinates ``(x, y)`` to *crop*
pixel coordinates. The template is defined in a size-free unit square, so the same landmark
lands at proportional crop coordinates for any crop size (64, 96, 128, 256, ...).

Example:
    >>> import numpy as np
    >>> src = np.array([[0, 0], [1, 0], [0, 1]], float)
    >>> np.round(umeyama(src, 2 * src + 3), 6).tolist()
    [[2.0, 0.0, 3.0], [0.0, 2.0, 3.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import cv2
import numpy as np

from likeness.errors import FaceError
from likeness.faces.canonical import ALIGN_INDICES, N_LANDMARKS, canonical_points

Coverage = Literal["f", "wf", "head"]

# (vertical centre, side) of the crop in canonical units (outer inter-ocular distance = 1,
# origin at the mesh centroid, y down). The mesh spans y = -0.93 (upper forehead, landmark 10)
# to +0.88 (chin). "f": brows to chin, "wf": DeepFaceLab-style whole face, forehead to chin
# with margin, "head": whole head with hair.
COVERAGES: dict[str, tuple[float, float]] = {
    "f": (0.08, 1.9),
    "wf": (-0.06, 2.4),
    "head": (-0.15, 3.2),
}


def as_coverage(value: object) -> Coverage:
    """``value`` (e.g. read from a model card) as a :data:`Coverage`; ``FaceError`` if it is none."""
    if not isinstance(value, str) or value not in COVERAGES:
        raise FaceError(f"unknown coverage {value!r}; expected one of {sorted(COVERAGES)}")
    return cast(Coverage, value)


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """An aligned face crop.

    Attributes:
        image: uint8 RGB ``(S, S, 3)`` crop.
        affine: float64 ``(2, 3)`` frame -> crop.
        landmarks: float32 ``(478, 2)`` landmarks in crop pixel coordinates.
    """

    image: np.ndarray
    affine: np.ndarray
    landmarks: np.ndarray


def umeyama(src: np.ndarray, dst: np.ndarray, *, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991) mapping ``src`` points onto ``dst``.

    Args:
        src: ``(N, 2)`` source points, N >= 2.
        dst: ``(N, 2)`` destination points.
        estimate_scale: if False, the result is a rigid transform (rotation + translation).

    Returns:
        float64 ``(2, 3)`` matrix ``A`` with ``dst ~= src @ A[:, :2].T + A[:, 2]``.
        Reflections are never returned.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise FaceError(
            f"umeyama expects two (N, 2) point arrays with N >= 2 of equal shape, got {src.shape} and {dst.shape}"
        )
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise FaceError("umeyama: points contain NaN or infinity")
    n = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / n
    if src_var < 1e-12:
        raise FaceError("umeyama: source points are degenerate (all at one location)")
    cov = dst_c.T @ src_c / n
    u, sigma, vt = np.linalg.svd(cov)
    # Flip the last axis when the best orthogonal map would be a reflection.
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = float((sigma * d).sum() / src_var) if estimate_scale else 1.0
    affine = np.empty((2, 3), dtype=np.float64)
    affine[:, :2] = scale * rotation
    affine[:, 2] = dst_mean - affine[:, :2] @ src_mean
    return affine


def face_template(*, size: int = 256, coverage: Coverage = "wf") -> np.ndarray:
    """Crop-pixel positions ``float64 (K, 2)`` of the alignment landmarks (``ALIGN_INDICES``).

    Positions scale linearly with ``size``: ``face_template(size=128) * 2 ==
    face_template(size=256)``.
    """
    if coverage not in COVERAGES:
        raise FaceError(f"unknown coverage {coverage!r}; expected one of {sorted(COVERAGES)}")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise FaceError(f"crop size must be an integer >= 16, got {size!r}")
    centre_y, side = COVERAGES[coverage]
    canonical = canonical_points(ALIGN_INDICES)[:, :2]
    unit = (canonical - np.array([0.0, centre_y])) / side + 0.5
    return unit * float(size)


def check_rgb(rgb: np.ndarray, name: str = "image") -> None:
    """Raise ``FaceError`` unless ``rgb`` is a non-empty uint8 ``(H, W, 3)`` array."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise FaceError(f"{name}: expected uint8 RGB array (H, W, 3), got {got}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise FaceError(f"{name}: empty image {rgb.shape}")


def check_landmarks(landmarks: np.ndarray, *, n: int | None = N_LANDMARKS) -> np.ndarray:
    """Return ``landmarks`` as float64 ``(N, 2)``; raise ``FaceError`` on a wrong shape or NaN."""
    points = np.asarray(landmarks)
    if points.ndim != 2 or points.shape[1] != 2 or (n is not None and points.shape[0] != n):
        expected = f"({n}, 2)" if n is not None else "(N, 2)"
        raise FaceError(f"landmarks: expected {expected} array, got shape {points.shape}")
    points = points.astype(np.float64)
    if not np.isfinite(points).all():
        raise FaceError("landmarks contain NaN or infinity")
    return points


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points; returns float64 ``(N, 2)``."""
    points = np.asarray(points, dtype=np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine (e.g. crop -> frame from frame -> crop)."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (2, 3):
        raise FaceError(f"affine: expected shape (2, 3), got {affine.shape}")
    if abs(np.linalg.det(affine[:, :2])) < 1e-12:
        raise FaceError("affine is singular")
    return cv2.invertAffineTransform(affine)


def affine_to_crop(landmarks: np.ndarray, *, size: int = 256, coverage: Coverage = "wf") -> np.ndarray:
    """Frame -> crop similarity ``float64 (2, 3)`` for 478 frame landmarks."""
    points = check_landmarks(landmarks)
    return umeyama(points[ALIGN_INDICES], face_template(size=size, coverage=coverage))


def align_face(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    *,
    size: int = 256,
    coverage: Coverage = "wf",
) -> AlignedFace:
    """Warp the face described by ``landmarks`` to an upright ``size`` x ``size`` crop.

    Args:
        rgb: uint8 RGB frame ``(H, W, 3)``.
        landmarks: ``(478, 2)`` MediaPipe landmarks in frame pixels.
        size: crop side in pixels.
        coverage: ``"f"`` (face), ``"wf"`` (whole face incl. forehead) or ``"head"``.

    Returns:
        ``AlignedFace``; parts of the crop outside the frame repeat the frame's border pixels.
    """
    check_rgb(rgb)
    affine = affine_to_crop(landmarks, size=size, coverage=coverage)
    # Cubic keeps detail when upsampling small faces; border replication avoids black wedges
    # for faces at the frame edge (the trainer would otherwise learn them).
    image = cv2.warpAffine(rgb, affine, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    crop_landmarks = transform_points(check_landmarks(landmarks), affine).astype(np.float32)
    return AlignedFace(image=image, affine=affine, landmarks=crop_landmarks)


def paste_back(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Composite an aligned ``crop`` back into ``frame`` through ``mask``.

    Args:
        frame: uint8 RGB ``(H, W, 3)``; not modified.
        crop: uint8 RGB ``(S, S, 3)``, aligned with ``affine``.
        affine: float64 ``(2, 3)`` frame -> crop (as returned in ``AlignedFace.affine``).
        mask: ``(S, S)`` alpha, either uint8 in [0, 255] or float in [0, 1].

    Returns:
        A new uint8 RGB ``(H, W, 3)`` frame. Only the frame region covered by the warped crop is
        touched, so faces at (or partly beyond) the frame edge are safe.
    """
    check_rgb(frame, "frame")
    check_rgb(crop, "crop")
    size = crop.shape[0]
    if crop.shape[1] != size:
        raise FaceError(f"crop must be square, got {crop.shape}")
    mask = np.asarray(mask)
    if mask.shape != (size, size):
        raise FaceError(f"mask: expected shape {(size, size)}, got {mask.shape}")
    if mask.dtype == np.uint8:
        alpha = mask.astype(np.float32) / 255.0
    elif np.issubdtype(mask.dtype, np.floating):
        if mask.size and (np.nanmin(mask) < -1e-6 or np.nanmax(mask) > 1 + 1e-6):
            raise FaceError("float mask must lie in [0, 1]")
        alpha = np.clip(np.nan_to_num(mask.astype(np.float32)), 0.0, 1.0)
    else:
        raise FaceError(f"mask: expected uint8 or float array, got {mask.dtype}")
    to_frame = invert_affine(affine)

    height, width = frame.shape[:2]
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    frame_corners = transform_points(corners, to_frame)
    x0 = int(max(0, np.floor(frame_corners[:, 0].min())))
    y0 = int(max(0, np.floor(frame_corners[:, 1].min())))
    x1 = int(min(width, np.ceil(frame_corners[:, 0].max()) + 1))
    y1 = int(min(height, np.ceil(frame_corners[:, 1].max()) + 1))
    result = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return result
    # Warp only the covered region: shift the frame->crop map by the region's origin.
    region_to_crop = np.asarray(affine, dtype=np.float64).copy()
    region_to_crop[:, 2] += region_to_crop[:, :2] @ np.array([x0, y0], dtype=np.float64)
    dsize = (x1 - x0, y1 - y0)
    inverse_flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(crop, region_to_crop, dsize, flags=inverse_flags, borderMode=cv2.BORDER_REPLICATE)
    warped_alpha = cv2.warpAffine(
        alpha,
        region_to_crop,
        dsize,
        flags=inverse_flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )[..., None]
    region = result[y0:y1, x0:x1].astype(np.float32)
    blended = region * (1.0 - warped_alpha) + warped.astype(np.float32) * warped_alpha
    result[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return result
