"""Face masks from landmarks.

Example:
    >>> from likeness.faces.detect import FaceDetector
    >>> from likeness.media.synthetic import astronaut
    >>> rgb = astronaut()
    >>> with FaceDetector(max_faces=1) as detector:
    ...     face = detector.detect(rgb)[0]
    >>> from likeness.faces.align import align_face
    >>> aligned = align_face(rgb, face.landmarks, size=256)
    >>> mask = hull_mask(aligned.landmarks, 256)
    >>> mask.shape, mask.dtype, int(mask.max())
    ((256, 256), dtype('uint8'), 255)
"""

from __future__ import annotations

import cv2
import numpy as np

from likeness.errors import FaceError
from likeness.faces.align import check_landmarks
from likeness.faces.canonical import BROW_POINTS, CHIN, FOREHEAD_TOP


def hull_mask(landmarks: np.ndarray, size: int, *, forehead: float = 0.0) -> np.ndarray:
    """Filled convex hull of the landmarks: uint8 ``(size, size)``, 255 inside, 0 outside.

    Args:
        landmarks: ``(478, 2)`` in crop pixels (e.g. ``AlignedFace.landmarks``).
        size: mask side in pixels.
        forehead: extend the hull above the brows by this fraction of the forehead-to-chin
            length (0 = the mesh only, which stops at the upper forehead; 0.2 reaches the
            hairline on most faces).
    """
    points = check_landmarks(landmarks)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise FaceError(f"mask size must be a positive integer, got {size!r}")
    if forehead < 0:
        raise FaceError(f"forehead extension must be >= 0, got {forehead}")
    if forehead > 0:
        up = points[FOREHEAD_TOP] - points[CHIN]
        raised = points[list(BROW_POINTS)] + forehead * up
        points = np.concatenate([points, raised, points[[FOREHEAD_TOP]] + forehead * up])
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8)
    return mask
