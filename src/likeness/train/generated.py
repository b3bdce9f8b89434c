"""Seeded generated faces with FaceMesh-compatible landmarks, for tests and demos.

Each identity (an integer) fixes face shape, skin, hair, eye, nose and mouth traits; each sample
varies head position, in-plane rotation, a yaw-like feature shift, eye openness and mouth
openness. Landmarks follow the MediaPipe 478-point topology for the regions the trainer uses
(face oval, eyes, irises, lips, brows); the other points lie inside the face oval. This lets the
training core, losses and metrics be tested without a face detector or real footage.
"""

from __future__ import annotations

from typing import TypedDict

import cv2
import numpy as np
from numpy.typing import ArrayLike

from likeness.train import landmark_regions as lr
from likeness.train.samples import LANDMARK_COUNT, FaceSamples


def _ellipse_points(
    cx: float | np.ndarray,
    cy: float | np.ndarray,
    rx: float | np.ndarray,
    ry: float | np.ndarray,
    angles: np.ndarray,
) -> np.ndarray:
    """Points (N, 2) on ellipses; centre and radii are scalars or one value per angle."""
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


class _Traits(TypedDict):
    """An identity's colours (RGB float arrays (3,)) and proportions (fractions of the size)."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    face_rx: float
    face_ry: float
    eye_sep: float
    eye_w: float
    mouth_w: float
    nose_len: float
    brow_thick: float
    fringe: float


def _identity_traits(identity: int) -> _Traits:
    rng = np.random.default_rng([9173, identity])
    return {
        "skin": rng.uniform([90, 60, 40], [235, 200, 170]),
        "hair": rng.uniform(0, 140, size=3),
        "iris": rng.uniform(20, 200, size=3),
        "lips": rng.uniform([120, 30, 40], [220, 110, 120]),
        "face_rx": rng.uniform(0.26, 0.34),
        "face_ry": rng.uniform(0.34, 0.42),
        "eye_sep": rng.uniform(0.09, 0.14),
        "eye_w": rng.uniform(0.045, 0.07),
        "mouth_w": rng.uniform(0.07, 0.12),
        "nose_len": rng.uniform(0.06, 0.12),
        "brow_thick": rng.uniform(0.008, 0.02),
        "fringe": rng.uniform(0.0, 0.12),
    }


def generated_face(
    *, identity: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """One generated aligned face: ``(rgb uint8 (size,size,3), landmarks float32 (478,2), pose)``.

    ``pose`` holds ``yaw`` (a feature shift in [-1, 1], not degrees), ``eye_open`` and
    ``mouth_open`` in [0, 1].
    """
    t = _identity_traits(identity)
    s = float(size)
    yaw = float(rng.uniform(-1, 1))
    eye_open = float(rng.uniform(0.15, 1.0))
    mouth_open = float(rng.uniform(0.0, 1.0))
    cx, cy = s * 0.5, s * 0.52
    rx, ry = s * t["face_rx"], s * t["face_ry"]
    feature_dx = yaw * rx * 0.18

    landmarks = np.zeros((LANDMARK_COUNT, 2), np.float64)
    # Points outside the named regions: spread inside the oval so the hull is the oval.
    fill_rng = np.random.default_rng([identity, 77])
    radius = np.sqrt(fill_rng.uniform(0, 0.8, LANDMARK_COUNT))
    angle = fill_rng.uniform(0, 2 * np.pi, LANDMARK_COUNT)
    landmarks[:] = _ellipse_points(cx + feature_dx * 0.5, cy, rx * radius, ry * radius, angle)
    oval_angles = -np.pi / 2 + np.linspace(0, 2 * np.pi, len(lr.FACE_OVAL), endpoint=False)
    landmarks[list(lr.FACE_OVAL)] = _ellipse_points(cx, cy, rx, ry, oval_angles)

    eye_y = cy - ry * 0.12
    eye_w = s * t["eye_w"]
    eye_h = eye_w * 0.55 * eye_open
    sep = s * t["eye_sep"]
    for ring, iris, ecx in (
        (lr.RIGHT_EYE_RING, lr.RIGHT_IRIS, cx - sep + feature_dx),
        (lr.LEFT_EYE_RING, lr.LEFT_IRIS, cx + sep + feature_dx),
    ):
        outer_sign = -1.0 if ring is lr.RIGHT_EYE_RING else 1.0
        # ring order: outer corner, lower lid, inner corner, upper lid (16 points)
        base = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        angles = np.pi + base if outer_sign < 0 else -base
        pts = _ellipse_points(ecx, eye_y, eye_w, max(eye_h, 0.5), angles)
        if outer_sign > 0:
            # mirror so that index 0 is the outer (image-right) corner and lower lid follows
            pts = _ellipse_points(ecx, eye_y, eye_w, max(eye_h, 0.5), base)
        landmarks[list(ring)] = pts
        iris_r = eye_w * 0.4
        landmarks[iris[0]] = (ecx, eye_y)
        landmarks[list(iris[1:])] = _ellipse_points(ecx, eye_y, iris_r, iris_r, np.arange(4) * np.pi / 2)

    brow_y = eye_y - eye_w * 1.1
    for brow, bcx in ((lr.RIGHT_BROW, cx - sep + feature_dx), (lr.LEFT_BROW, cx + sep + feature_dx)):
        xs = np.linspace(bcx - eye_w * 1.1, bcx + eye_w * 1.1, len(brow))
        landmarks[list(brow)] = np.stack([xs, np.full_like(xs, brow_y)], axis=1)

    mouth_y = cy + ry * 0.45
    mouth_w = s * t["mouth_w"]
    mcx = cx + feature_dx * 0.8
    opening = mouth_w * 0.45 * mouth_open
    lip = mouth_w * 0.18
    outer_angles = np.pi - np.linspace(0, 2 * np.pi, len(lr.OUTER_LIPS), endpoint=False)
    landmarks[list(lr.OUTER_LIPS)] = _ellipse_points(mcx, mouth_y, mouth_w, opening / 2 + lip, -outer_angles)
    inner_angles = np.pi - np.linspace(0, 2 * np.pi, len(lr.INNER_LIPS), endpoint=False)
    landmarks[list(lr.INNER_LIPS)] = _ellipse_points(mcx, mouth_y, mouth_w * 0.8, opening / 2 + 1e-3, -inner_angles)
    landmarks[lr.INNER_LIP_UPPER] = (mcx, mouth_y - opening / 2)
    landmarks[lr.INNER_LIP_LOWER] = (mcx, mouth_y + opening / 2)

    canvas = np.empty((size, size, 3), np.float64)
    bg = rng.uniform(30, 220, size=3)
    canvas[:] = bg
    image: np.ndarray = canvas.astype(np.uint8)
    scale = 16  # draw with sub-pixel precision via cv2's shift argument

    def p(xy: ArrayLike) -> np.ndarray:
        return np.round(np.asarray(xy) * scale).astype(np.int32)

    def col(c: np.ndarray) -> tuple[float, float, float]:
        r, g, b = (float(v) for v in c)
        return r, g, b

    cv2.ellipse(
        image,
        tuple(p([cx, cy - ry * 0.25])),
        tuple(p([rx * 1.12, ry * 0.95])),
        0,
        0,
        360,
        col(t["hair"]),
        -1,
        cv2.LINE_AA,
        4,
    )
    cv2.fillPoly(image, [p(landmarks[list(lr.FACE_OVAL)])], col(t["skin"]), cv2.LINE_AA, 4)
    fringe = float(t["fringe"])
    if fringe > 0.02:
        cv2.ellipse(
            image,
            tuple(p([cx, cy - ry * 0.95])),
            tuple(p([rx * 0.9, ry * (0.2 + fringe)])),
            0,
            0,
            180,
            col(t["hair"]),
            -1,
            cv2.LINE_AA,
            4,
        )
    for ring, iris in ((lr.RIGHT_EYE_RING, lr.RIGHT_IRIS), (lr.LEFT_EYE_RING, lr.LEFT_IRIS)):
        cv2.fillPoly(image, [p(landmarks[list(ring)])], (245, 245, 245), cv2.LINE_AA, 4)
        if eye_h > 1.0:
            r = int(min(eye_w * 0.4, eye_h) * scale)
            cv2.circle(image, tuple(p(landmarks[iris[0]])), r, col(t["iris"]), -1, cv2.LINE_AA, 4)
        cv2.polylines(image, [p(landmarks[list(ring)])], True, col(t["skin"] * 0.5), 1, cv2.LINE_AA, 4)
    thick = max(1, int(round(s * t["brow_thick"])))
    for brow in (lr.RIGHT_BROW, lr.LEFT_BROW):
        cv2.polylines(image, [p(landmarks[list(brow)])], False, col(t["hair"] * 0.8), thick, cv2.LINE_AA, 4)
    nose_top = np.array([cx + feature_dx * 1.1, eye_y + eye_w * 0.3])
    nose_tip = np.array([cx + feature_dx * 1.3, eye_y + s * t["nose_len"]])
    cv2.line(image, tuple(p(nose_top)), tuple(p(nose_tip)), col(t["skin"] * 0.7), max(1, size // 64), cv2.LINE_AA, 4)
    cv2.fillPoly(image, [p(landmarks[list(lr.OUTER_LIPS)])], col(t["lips"]), cv2.LINE_AA, 4)
    if opening > 0.8:
        cv2.fillPoly(image, [p(landmarks[list(lr.INNER_LIPS)])], (40, 20, 25), cv2.LINE_AA, 4)

    # Small in-plane rotation/translation as head motion; image and landmarks move together.
    angle_deg = float(rng.uniform(-6, 6))
    shift = rng.uniform(-0.03, 0.03, size=2) * s
    affine = np.asarray(cv2.getRotationMatrix2D((cx, cy), angle_deg, 1.0), dtype=np.float64)
    affine[:, 2] += shift
    image = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR, borderValue=col(bg))
    landmarks = landmarks @ affine[:, :2].T + affine[:, 2]
    return image, landmarks.astype(np.float32), {"yaw": yaw, "eye_open": eye_open, "mouth_open": mouth_open}


def generated_face_samples(n: int, *, identity: int, size: int = 64, seed: int = 0) -> FaceSamples:
    """``n`` generated faces of one identity as :class:`FaceSamples` (deterministic in ``seed``).

    >>> samples = generated_face_samples(8, identity=1, size=32, seed=0)
    >>> samples.images.shape, samples.landmarks.shape
    ((8, 32, 32, 3), (8, 478, 2))
    """
    if n <= 0 or size < 16:
        raise ValueError(f"need n > 0 and size >= 16, got n={n}, size={size}")
    rng = np.random.default_rng([seed, identity, size])
    images = np.empty((n, size, size, 3), np.uint8)
    landmarks = np.empty((n, LANDMARK_COUNT, 2), np.float32)
    yaw = np.empty(n, np.float64)
    for i in range(n):
        images[i], landmarks[i], pose = generated_face(identity=identity, size=size, rng=rng)
        yaw[i] = pose["yaw"] * 30.0  # feature shift of 1 drawn as roughly 30 degrees
    return FaceSamples(images, landmarks, yaw)
