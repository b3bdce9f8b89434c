"""Pure decisions of the extraction pipeline: which faces to keep and why the others were dropped.

Everything here takes arrays or numbers and returns numbers or reason codes, so the filters are
tested without footage, detectors or a workspace.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from likeness.errors import FaceError

# Reason codes for faces that were seen but not kept (keys of ExtractionReport.rejected).
OTHER_IDENTITY = "other_identity"
TOO_SMALL = "too_small"
TOO_BLURRY = "too_blurry"
EXTREME_POSE = "extreme_pose"
DUPLICATE = "duplicate"
UNALIGNABLE = "unalignable"
#: Passed every filter, but recognised as a subject of another rights holder (``enrolled_faces``).
ANOTHER_HOLDER = "another_holder"
REJECTION_REASONS = (OTHER_IDENTITY, TOO_SMALL, TOO_BLURRY, EXTREME_POSE, DUPLICATE, UNALIGNABLE, ANOTHER_HOLDER)


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


#: Faces that look alike (perceptual hash) are still different training examples when their
#: expression differs by at least this much (ratios of ``likeness.faces.mouth_openness`` and
#: ``eye_openness``): closed lips measure 0-0.06 and lips apart 0.1-0.3, open eyes 0.25-0.35 and a
#: blink under 0.12, so 0.05 separates a smile with teeth from one without, or a half blink. The
#: 8x9-cell hash barely sees a mouth: in a small photo set it would drop exactly the expression
#: variants a model needs.
MOUTH_VARIANT = 0.05
EYES_VARIANT = 0.05


@dataclass(frozen=True)
class KeptFace:
    """A kept face as the duplicate filter remembers it: hash, expression (None: unknown) and a label
    naming it for people (``"photo.jpg"`` or ``"clip.mp4 frame 12"``)."""

    phash: int
    mouth: float | None = None
    eyes: float | None = None
    label: str = ""


@dataclass(frozen=True)
class DuplicateMatch:
    """Why a face was dropped as a near-duplicate: the kept face it repeats and how close they are."""

    kept: KeptFace
    bits: int
    max_bits: int
    mouth: float | None
    eyes: float | None

    def reason(self) -> str:
        """E.g. "repeats photo_2.jpg: 1 of 64 hash bits differ (limit 3); same expression (mouth
        0.02 vs 0.03, eyes 0.30 vs 0.31)"."""
        text = f"repeats {self.kept.label or 'a kept face'}: {self.bits} of 64 hash bits differ (limit {self.max_bits})"
        if None not in (self.mouth, self.eyes, self.kept.mouth, self.kept.eyes):
            text += (
                f"; same expression (mouth {self.mouth:.2f} vs {self.kept.mouth:.2f}, "
                f"eyes {self.eyes:.2f} vs {self.kept.eyes:.2f})"
            )
        return text


def same_expression(a: KeptFace, mouth: float | None, eyes: float | None) -> bool:
    """Whether a face with ``mouth``/``eyes`` openness shows the expression of kept face ``a``
    (True when either is unmeasured: then appearance alone decides)."""
    if None in (mouth, eyes, a.mouth, a.eyes):
        return True
    return abs(mouth - a.mouth) < MOUTH_VARIANT and abs(eyes - a.eyes) < EYES_VARIANT  # type: ignore[operator]


class DuplicateFilter:
    """Remembers recently kept faces and flags near-duplicates: the same look (perceptual hashes
    within ``max_distance`` bits) *and* the same expression (:func:`same_expression`), so a smile
    with teeth beside one without, or a blink, is kept even when the hash barely changes.

    ``max_distance``: None disables the filter. ``window``: how many recent kept faces to compare
    against; bounded so memory and time stay flat on long videos.
    """

    def __init__(self, *, max_distance: int | None, window: int = 512) -> None:
        if max_distance is not None and not 0 <= max_distance <= 64:
            raise ValueError(f"max_distance must be in 0..64 or None, got {max_distance}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.max_distance = max_distance
        self._recent: deque[KeptFace] = deque(maxlen=window)

    def seed(self, kept: Iterable[int | KeptFace]) -> None:
        """Restore state (e.g. from the index when resuming): hashes or :class:`KeptFace`."""
        for value in kept:
            self._recent.append(value if isinstance(value, KeptFace) else KeptFace(int(value)))

    def find(self, value: int, *, mouth: float | None = None, eyes: float | None = None) -> DuplicateMatch | None:
        """The nearest kept face that this one repeats (same look and expression), or None."""
        if self.max_distance is None:
            return None
        best: DuplicateMatch | None = None
        for kept in self._recent:
            bits = hamming(value, kept.phash)
            if bits <= self.max_distance and same_expression(kept, mouth, eyes) and (best is None or bits < best.bits):
                best = DuplicateMatch(kept, bits, self.max_distance, mouth, eyes)
        return best

    def is_duplicate(self, value: int, *, mouth: float | None = None, eyes: float | None = None) -> bool:
        return self.find(value, mouth=mouth, eyes=eyes) is not None

    def keep(self, value: int, *, mouth: float | None = None, eyes: float | None = None, label: str = "") -> None:
        self._recent.append(KeptFace(int(value), mouth, eyes, label))


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
