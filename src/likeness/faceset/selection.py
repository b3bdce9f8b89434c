"""Pure decisions of the extraction pipeline: which faces to keep and why the others were dropped.

Everything here takes arrays or numbers and returns numbers or reason codes, so the filters are
tested without footage, detectors or a workspace.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from likeness.errors import FaceError

# Reason codes for faces that were seen but not kept (keys of ExtractionReport.rejected).
OTHER_IDENTITY = "other_identity"
TOO_SMALL = "too_small"
TOO_BLURRY = "too_blurry"
EXTREME_POSE = "extreme_pose"
DUPLICATE = "duplicate"
UNALIGNABLE = "unalignable"
REJECTION_REASONS = (OTHER_IDENTITY, TOO_SMALL, TOO_BLURRY, EXTREME_POSE, DUPLICATE, UNALIGNABLE)


def face_extent(landmarks: np.ndarray) -> float:
    """Size of a face in source pixels: the longer side of its landmark bounding box.

    ``landmarks``: float (N, 2) pixel (x, y). Returns pixels.
    """
    points = _check_landmarks(landmarks)
    span = points.max(axis=0) - points.min(axis=0)
    return float(max(span[0], span[1]))


def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixel box around ``landmarks`` (float (N, 2))."""
    points = _check_landmarks(landmarks)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def perceptual_hash(gray: np.ndarray) -> int:
    """64-bit difference hash (dHash) of a grey image, for near-duplicate detection.

    ``gray``: uint8 or float (H, W), H, W >= 9. The image is box-averaged to 8x9 cells and each
    bit says whether a cell is brighter than its right neighbour, so the hash survives
    re-encoding, small shifts and brightness changes but not a change of expression or pose.
    """
    image = np.asarray(gray, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] < 8 or image.shape[1] < 9:
        raise FaceError(f"perceptual_hash expects a grey (H>=8, W>=9) image, got {image.shape}")
    rows = np.array_split(np.arange(image.shape[0]), 8)
    cols = np.array_split(np.arange(image.shape[1]), 9)
    cells = np.array([[image[np.ix_(r, c)].mean() for c in cols] for r in rows])
    bits = (cells[:, 1:] > cells[:, :-1]).ravel()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return int((a ^ b).bit_count())


class DuplicateFilter:
    """Remembers the hashes of recently kept faces and flags near-duplicates.

    ``max_distance``: hashes within this many bits count as duplicates (None disables the
    filter). ``window``: how many recent kept faces to compare against; bounded so memory and
    time stay flat on long videos.
    """

    def __init__(self, *, max_distance: int | None, window: int = 512) -> None:
        if max_distance is not None and not 0 <= max_distance <= 64:
            raise ValueError(f"max_distance must be in 0..64 or None, got {max_distance}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.max_distance = max_distance
        self._recent: deque[int] = deque(maxlen=window)

    def seed(self, hashes: Iterable[int]) -> None:
        """Restore state (e.g. from the index when resuming)."""
        for value in hashes:
            self._recent.append(value)

    def is_duplicate(self, value: int) -> bool:
        if self.max_distance is None:
            return False
        return any(hamming(value, kept) <= self.max_distance for kept in self._recent)

    def keep(self, value: int) -> None:
        self._recent.append(value)


def pose_is_extreme(yaw: float, pitch: float, *, max_yaw: float, max_pitch: float) -> bool:
    """True if the head is turned beyond what landmarks and alignment handle reliably (degrees)."""
    return abs(yaw) > max_yaw or abs(pitch) > max_pitch


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 3:
        raise FaceError(f"landmarks must be (N>=3, 2) pixel coordinates, got {points.shape}")
    if not np.isfinite(points).all():
        raise FaceError("landmarks contain NaN or infinite values")
    return points
