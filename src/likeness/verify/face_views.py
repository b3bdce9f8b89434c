"""Faces cut small out of video frames, so a track's best views can wait for the deferred
embedding without holding whole frames (:func:`face_view`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from likeness.checks import check_rgb
from likeness.errors import MediaError

#: Video face views kept for the deferred embedding are cut with this margin around the face box
#: (dlib's 150 px chip reaches 25 % beyond the eye/nose layout) and downscaled so the face is at
#: most this many pixels across (twice dlib's chip: the descriptor does not change measurably).
VIEW_MARGIN = 0.75
VIEW_FACE_SIDE = 320


@dataclass(frozen=True)
class FaceView:
    """A face cut from a frame for a deferred embedding: ``rgb`` uint8 ``(h, w, 3)`` and the
    face's 478 ``landmarks`` float32 ``(478, 2)`` in that cut's pixels."""

    rgb: np.ndarray
    landmarks: np.ndarray


def face_view(
    rgb: np.ndarray, landmarks: np.ndarray, *, margin: float = VIEW_MARGIN, max_face_side: int = VIEW_FACE_SIDE
) -> FaceView:
    """Cut the face with ``landmarks (478, 2)`` out of the frame ``rgb (H, W, 3)`` with ``margin``
    (fraction of the face size) on every side, downscaled (area) so the face spans at most
    ``max_face_side`` pixels; landmarks are mapped into the cut. Memory per view stays a few
    hundred kB whatever the frame size, so a video's best views can wait for the end of the
    scan instead of being embedded on every frame.

    >>> view = face_view(np.zeros((1080, 1920, 3), np.uint8),     # a 600 px face
    ...                  np.array([[700, 240], [1300, 840]] * 239, np.float32))
    >>> view.rgb.shape, view.landmarks.min(axis=0).round(1).tolist()  # cut 1500x1080, x 320/600
    ((576, 800, 3), [240.0, 128.0])
    """
    import cv2

    points = np.asarray(landmarks, dtype=np.float32)
    check_rgb(rgb, name="face_view")
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise MediaError(None, f"face_view: expected finite (N, 2) landmarks, got {points.shape}")
    height, width = rgb.shape[:2]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    side = float(max(x1 - x0, y1 - y0, 1.0))
    left = int(np.clip(np.floor(x0 - margin * side), 0, width - 1))
    top = int(np.clip(np.floor(y0 - margin * side), 0, height - 1))
    right = int(np.clip(np.ceil(x1 + margin * side), left + 1, width))
    bottom = int(np.clip(np.ceil(y1 + margin * side), top + 1, height))
    cut = rgb[top:bottom, left:right]
    shifted = points - np.array([left, top], dtype=np.float32)
    scale = min(1.0, max_face_side / side)
    if scale < 1.0:
        size = (max(1, round(cut.shape[1] * scale)), max(1, round(cut.shape[0] * scale)))
        cut = cv2.resize(cut, size, interpolation=cv2.INTER_AREA)
        shifted = shifted * np.float32(scale)
    return FaceView(np.ascontiguousarray(cut), shifted.astype(np.float32))
