"""The filter chain a detected face passes before it joins a faceset: size, identity,
alignment, pose and sharpness, in that order (cheapest and most telling first). Pure: arrays
and options in, a rejection reason (``selection.REJECTION_REASONS``) or an aligned candidate out.
Near-duplicates are judged afterwards against the faces already kept
(``selection.DuplicateFilter``), which is state of the run, not of the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from likeness.errors import FaceError
from likeness.faceset import selection

if TYPE_CHECKING:
    from likeness.faceset.extract import ExtractOptions


@dataclass(frozen=True)
class Candidate:
    """A face that passed the filters: the aligned ``crop`` uint8 (S, S, 3), its ``landmarks``
    float32 (478, 2) in crop pixels, ``affine`` float64 (2, 3) frame -> crop, ``pose`` (yaw,
    pitch, roll) degrees, ``sharpness``, 64-bit perceptual hash ``phash`` and eye and mouth
    openness."""

    crop: np.ndarray
    landmarks: np.ndarray
    affine: np.ndarray
    pose: tuple[float, float, float]
    sharpness: float
    phash: int
    eye_openness: float
    mouth_openness: float


def filter_face(
    rgb: np.ndarray, landmarks: np.ndarray, *, face_size: float | None, identity: bool | None, options: ExtractOptions
) -> Candidate | str:
    """Run one face of ``rgb`` through the chain; ``face_size`` is None when it could not be
    measured, ``identity`` None when no identity decision was made (too small to embed, or the
    embedding failed), else whether it is the subject. Returns the rejection reason or the
    :class:`Candidate`."""
    from likeness import faces as fa

    if face_size is None:
        return selection.UNALIGNABLE
    if face_size < options.min_face:
        return selection.TOO_SMALL
    if identity is None:
        return selection.UNALIGNABLE
    if not identity:
        return selection.OTHER_IDENTITY
    points = np.asarray(landmarks, dtype=np.float32)
    height, width = rgb.shape[:2]
    try:
        yaw, pitch, roll = fa.head_pose(points, (height, width))
        aligned = fa.align_face(rgb, points, size=options.size, coverage=options.coverage)
    except (FaceError, ValueError, np.linalg.LinAlgError):
        return selection.UNALIGNABLE
    if selection.pose_is_extreme(yaw, pitch, max_yaw=options.max_yaw, max_pitch=options.max_pitch):
        return selection.EXTREME_POSE
    crop = np.ascontiguousarray(aligned.image)
    gray = luma(crop)
    sharp = float(fa.sharpness(gray))
    if sharp < options.min_sharpness:
        return selection.TOO_BLURRY
    crop_landmarks = np.asarray(aligned.landmarks, dtype=np.float32)
    return Candidate(
        crop=crop,
        landmarks=crop_landmarks,
        affine=np.asarray(aligned.affine, dtype=np.float64),
        pose=(float(yaw), float(pitch), float(roll)),
        sharpness=sharp,
        phash=selection.perceptual_hash(gray),
        eye_openness=float(fa.eye_openness(crop_landmarks)),
        mouth_openness=float(fa.mouth_openness(crop_landmarks)),
    )


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of a uint8 RGB image, uint8 (H, W)."""
    weights = np.array([0.299, 0.587, 0.114])
    return np.clip(rgb.astype(np.float64) @ weights + 0.5, 0, 255).astype(np.uint8)
