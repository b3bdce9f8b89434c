"""Head pose from 2D landmarks: solvePnP against the canonical 3D face.

Sign convention (angles in degrees, camera looking at the subject):

* ``yaw > 0``: the face points towards the image right, i.e. the subject turned to *their own
  left*. A horizontally mirrored image gives the opposite yaw.
* ``pitch > 0``: the face points up (chin raised).
* ``roll > 0``: the eye line is rotated clockwise on screen (the eye on the image right, the
  subject's left eye, is lower than the other).

Example:
    >>> yaw, pitch, roll = head_pose(landmarks, (height, width))  # doctest: +SKIP
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from likeness.errors import FaceError
from likeness.faces.align import check_landmarks
from likeness.faces.canonical import POSE_INDICES, canonical_points


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees for 478 landmarks in a frame of ``image_size``.

    Args:
        landmarks: ``(478, 2)`` frame pixels.
        image_size: ``(height, width)`` of the frame in pixels; the camera is modelled as a
            pinhole with focal length = frame width (about 53 degrees horizontal field of view)
            centred in the frame.
    """
    points = check_landmarks(landmarks)
    if len(image_size) < 2 or min(image_size[:2]) <= 0:
        raise FaceError(f"image_size must be (height, width) > 0, got {image_size!r}")
    height, width = float(image_size[0]), float(image_size[1])
    object_points = canonical_points(POSE_INDICES)
    image_points = points[POSE_INDICES]
    focal = width
    camera = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    # Start in front of the camera at a distance matching the face's apparent size; without a
    # guess the iterative solver can converge to the mirrored solution behind the camera.
    eye_span = float(np.linalg.norm(points[263] - points[33]))
    if eye_span < 1e-6:
        raise FaceError("landmarks are degenerate (eye corners coincide)")
    centre = image_points.mean(axis=0)
    distance = focal / eye_span
    tvec0 = np.array(
        [[(centre[0] - width / 2.0) * distance / focal], [(centre[1] - height / 2.0) * distance / focal], [distance]]
    )
    ok, rvec, tvec = cv2.solvePnP(
        object_points,
        image_points,
        camera,
        None,
        rvec=np.zeros((3, 1)),
        tvec=tvec0,
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise FaceError("head pose: solvePnP did not converge")
    rotation, _ = cv2.Rodrigues(rvec)
    # Measure the pose relative to the line of sight, not the optical axis: a face that looks
    # straight into the lens from a corner of a wide shot should read as frontal.
    sight = tvec.ravel() / np.linalg.norm(tvec)
    rotation = _rotation_between(sight, np.array([0.0, 0.0, 1.0])) @ rotation
    # The canonical face looks along -z (towards the camera).
    forward = rotation @ np.array([0.0, 0.0, -1.0])
    across = rotation @ np.array([1.0, 0.0, 0.0])
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    return yaw, pitch, roll


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation ``(3, 3)`` taking unit vector ``a`` onto unit vector ``b``."""
    axis = np.cross(a, b)
    sine, cosine = float(np.linalg.norm(axis)), float(np.dot(a, b))
    if sine < 1e-12:
        return np.eye(3)
    rvec = axis / sine * math.atan2(sine, cosine)
    rotation, _ = cv2.Rodrigues(rvec.reshape(3, 1))
    return rotation
