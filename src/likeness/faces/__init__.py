"""likeness.faces: pure face analysis (detection + landmarks, alignment, pose, quality, identity).

Arrays in, arrays out; images are uint8 RGB ``(H, W, 3)``, landmarks float32 ``(478, 2)``
MediaPipe FaceMesh points in pixels, affines float64 ``(2, 3)`` frame -> crop.
"""

from likeness.faces.align import (
    COVERAGES,
    AlignedFace,
    affine_to_crop,
    align_face,
    face_template,
    invert_affine,
    paste_back,
    transform_points,
    umeyama,
)
from likeness.faces.detect import DetectedFace, FaceDetector, box_iou
from likeness.faces.identity import (
    DESCRIPTOR_TOLERANCE,
    EMBEDDING_SIZE,
    IDENTITY_THRESHOLD,
    EmbedderFallbackWarning,
    FaceEmbedder,
    five_point_shape,
    identity_distance,
    match_identity,
)
from likeness.faces.masks import hull_mask
from likeness.faces.pose import head_pose
from likeness.faces.quality import brightness, eye_openness, mouth_openness, sharpness
from likeness.faces.tracking import FaceTracker

__all__ = [
    "DESCRIPTOR_TOLERANCE",
    "EmbedderFallbackWarning",
    "COVERAGES",
    "EMBEDDING_SIZE",
    "IDENTITY_THRESHOLD",
    "AlignedFace",
    "DetectedFace",
    "FaceDetector",
    "FaceEmbedder",
    "FaceTracker",
    "affine_to_crop",
    "align_face",
    "box_iou",
    "brightness",
    "eye_openness",
    "face_template",
    "five_point_shape",
    "head_pose",
    "hull_mask",
    "identity_distance",
    "invert_affine",
    "match_identity",
    "mouth_openness",
    "paste_back",
    "sharpness",
    "transform_points",
    "umeyama",
]
