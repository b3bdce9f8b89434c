"""Blend masks for a swapped face, in crop coordinates.

The model predicts a soft face mask; on its own it leaks onto hair and background where the
model is unsure. Intersecting it with the convex hull of the target's landmarks keeps the swap
inside the face, eroding pulls the seam away from the jaw line, and feathering hides it.

All masks are float32 ``(R, R)`` in [0, 1]. Distances are in crop pixels.

Example::

    >>> import numpy as np
    >>> landmarks = np.array([[16, 16], [48, 16], [48, 48], [16, 48]], np.float32)
    >>> mask = blend_mask(np.ones((64, 64), np.float32), landmarks, erode_px=2, feather_px=4)
    >>> mask.shape, float(mask[32, 32]), float(mask[2, 2])
    ((64, 64), 1.0, 0.0)
"""

from __future__ import annotations

import cv2
import numpy as np

from likeness.checks import check_landmarks, check_mask
from likeness.errors import FaceError, MediaError
from likeness.faces.canonical import (
    INNER_LIP_LEFT,
    INNER_LIP_LOOP,
    INNER_LIP_RIGHT,
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    N_LANDMARKS,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
)


def landmark_hull(landmarks: np.ndarray, *, size: int) -> np.ndarray:
    """Filled convex hull of ``landmarks`` (crop pixel coordinates) as float32 ``(size, size)`` 0/1."""
    if size < 1:
        raise MediaError(None, f"size: expected a positive crop size, got {size}")
    points = check_landmarks(landmarks, name="landmarks")
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8)
    return mask.astype(np.float32)


def erode_dilate(mask: np.ndarray, *, pixels: int) -> np.ndarray:
    """Grow (``pixels`` > 0) or shrink (``pixels`` < 0) the mask by ``|pixels|`` with an elliptic kernel."""
    mask = check_mask(mask, name="mask")
    if pixels == 0:
        return mask.copy()
    radius = abs(int(pixels))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    op = cv2.dilate if pixels > 0 else cv2.erode
    # Border value 0: growing must not invent face outside the crop, shrinking must pull away from it.
    return op(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def feather(mask: np.ndarray, *, pixels: int) -> np.ndarray:
    """Soften the mask edge over about ``pixels`` pixels (Gaussian, sigma = pixels / 2).

    The blur is taken with zero padding, so a mask that touches the crop border still fades out
    at the border instead of producing a hard edge when pasted back.
    """
    mask = check_mask(mask, name="mask")
    if pixels <= 0:
        return mask.copy()
    sigma = pixels / 2.0
    ksize = 2 * int(np.ceil(2.5 * sigma)) + 1
    pad = ksize
    padded = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    blurred = cv2.GaussianBlur(padded, (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
    return np.clip(blurred[pad:-pad, pad:-pad], 0.0, 1.0)


def blend_mask(
    learned_mask: np.ndarray | None,
    landmarks: np.ndarray | None,
    *,
    size: int | None = None,
    erode_px: int = 2,
    feather_px: int = 6,
    learned_threshold: float = 0.0,
) -> np.ndarray:
    """The mask used to paste a swapped face: learned mask ∩ landmark hull, eroded, feathered.

    ``learned_mask``: float32 ``(R, R)`` from the model (or None to use the hull alone);
    ``landmarks``: ``(N, 2)`` target landmarks in crop coordinates (or None to use the learned
    mask alone); ``size`` is R when ``learned_mask`` is None. ``learned_threshold`` zeroes learned
    values below it (the model's low-confidence fringe). Defaults (erode 2 px, feather 6 px at
    R = 64..128) were chosen by the colour-difference and flicker measurements in
    ``benchmarks/render.py``; scale them with R.
    """
    if learned_mask is None and landmarks is None:
        raise MediaError(None, "blend_mask: needs a learned mask, landmarks, or both")
    if learned_mask is not None:
        learned = check_mask(learned_mask, name="learned_mask")
        if learned.shape[0] != learned.shape[1]:
            raise MediaError(None, f"learned_mask: expected a square crop mask, got {learned.shape}")
        size = learned.shape[0]
        if learned_threshold > 0:
            learned = np.where(learned >= learned_threshold, learned, 0.0).astype(np.float32)
    elif size is None:
        raise MediaError(None, "blend_mask: size is required when there is no learned mask")
    combined = learned if learned_mask is not None else np.ones((size, size), np.float32)
    if landmarks is not None:
        combined = np.minimum(combined, landmark_hull(landmarks, size=int(size)))
    combined = erode_dilate(combined, pixels=-int(erode_px))
    return feather(combined, pixels=int(feather_px))


def inner_mouth_mask(
    landmarks: np.ndarray,
    *,
    size: int,
    open_from: float = 0.04,
    open_full: float = 0.10,
    grow: float = 0.05,
    feather_width: float = 0.15,
) -> np.ndarray:
    """Where the performer's own inner mouth (teeth, tongue) should show through the swap.

    A swap model draws only the mouths it saw in the source faceset, usually closed or smiling,
    so on a singing or talking performer it paints closed lips over an open mouth. Cutting the
    inner-lip region out of the blend mask keeps the performer's teeth and tongue at the frame's
    own resolution, as Deep-Live-Cam's mouth mask does; the lips themselves stay the swap's.

    ``landmarks``: ``(478, 2)`` FaceMesh points in crop pixels. Returns float32 ``(size, size)``
    in [0, 1]: the inner-lip polygon grown by ``grow`` and feathered over ``feather_width`` (both
    fractions of the inner mouth width), weighted by how open the mouth is: 0 at an inner-lip
    gap of ``open_from`` x the mouth width or less (a closed mouth keeps the swapped lips whole;
    a hole there would show the performer's lip line), 1 from ``open_full`` on.

    Example::

        >>> import numpy as np
        >>> from likeness.faces.canonical import INNER_LIP_LOOP
        >>> points = np.zeros((478, 2), np.float32)
        >>> angles = np.linspace(np.pi, -np.pi, len(INNER_LIP_LOOP), endpoint=False)
        >>> points[list(INNER_LIP_LOOP)] = np.stack([32 + 10 * np.cos(angles), 40 + 4 * np.sin(angles)], 1)
        >>> mask = inner_mouth_mask(points, size=64)
        >>> float(mask[40, 32]), float(mask[10, 10])
        (1.0, 0.0)
    """
    if size < 1:
        raise MediaError(None, f"size: expected a positive crop size, got {size}")
    if not 0.0 <= open_from < open_full:
        raise MediaError(None, f"inner_mouth_mask: need 0 <= open_from < open_full, got {open_from}, {open_full}")
    points = check_landmarks(landmarks, min_points=max(INNER_LIP_LOOP) + 1)
    from likeness.faces.quality import mouth_openness

    openness = mouth_openness(points)  # FaceError when the inner lip corners coincide
    width = float(np.linalg.norm(points[INNER_LIP_LEFT] - points[INNER_LIP_RIGHT]))
    weight = float(np.clip((openness - open_from) / (open_full - open_from), 0.0, 1.0))
    mask = np.zeros((size, size), np.float32)
    if weight == 0.0:
        return mask
    shift = 4  # sub-pixel polygon vertices: a 64 px crop's mouth is only ~20 px wide
    loop = np.round(points[list(INNER_LIP_LOOP)] * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [loop], 1.0, lineType=cv2.LINE_AA, shift=shift)
    grown = erode_dilate(mask, pixels=max(1, round(grow * width)))
    return feather(grown, pixels=max(1, round(feather_width * width))) * np.float32(weight)


#: Each eye's corners (outer, inner), the subject's right eye first as in ``eye_openness_each``.
EYE_CORNERS = ((RIGHT_EYE_OUTER, RIGHT_EYE_INNER), (LEFT_EYE_OUTER, LEFT_EYE_INNER))


#: One eye's own ramp (:func:`eye_closure`): cut from 0.45 of its open level, whole from 0.25.
#: Under the narrowest reading of an open eye on the consenting-actor clip as the benchmark
#: renders it (0.49: one eye while looking down, 720p H.264, every other frame's landmarks
#: interpolated; docs/render.md).
EYE_CLOSED_FROM, EYE_CLOSED_FULL = 0.45, 0.25
#: Both eyes' ramp, on the more open eye of the two: a blink closes both, and FaceMesh reads one
#: of them weakly behind the actor's glasses (0.49-0.73 of its level while shut on screen), so
#: the pair is cut as far as both eyes agree. On that clip the more open eye never falls under
#: 0.80 of its level outside a blink, and reaches 0.24-0.56 in each of its four blinks.
PAIR_CLOSED_FROM, PAIR_CLOSED_FULL = 0.70, 0.45


def eye_closure(
    openness: float, open_level: float, *, closed_from: float = EYE_CLOSED_FROM, closed_full: float = EYE_CLOSED_FULL
) -> float:
    """How closed one eye is, 0 (open) to 1 (shut), by its own ratio to the performer's open level.

    ``openness`` and ``open_level`` are eye aspect ratios (``likeness.faces.quality``). Relative,
    not absolute, because open eyes differ: on the package and shared portraits open eyes measure
    0.16-0.52, while the consenting actor's eyes are open at 0.21-0.27 and shut at 0.04-0.10, so no
    fixed ratio tells a narrow open eye from a closing one. This is one eye alone (a wink); a
    blink is :func:`eye_closures`, which also reads the pair.
    """
    if not 0.0 <= closed_full < closed_from <= 1.0:
        raise MediaError(
            None, f"eye_closure: need 0 <= closed_full < closed_from <= 1, got {closed_full}, {closed_from}"
        )
    if not (np.isfinite(open_level) and open_level > 0.0) or not (np.isfinite(openness) and openness >= 0.0):
        raise FaceError(f"eye_closure: expected openness >= 0 and an open level > 0, got {openness}, {open_level}")
    relative = openness / open_level
    return float(np.clip((closed_from - relative) / (closed_from - closed_full), 0.0, 1.0))


def eye_closures(openness: tuple[float, float], open_levels: tuple[float, float]) -> tuple[float, float]:
    """How closed each eye is (right, left), 0 (open) to 1 (shut): the larger of the eye's own
    :func:`eye_closure` and the pair's, read on the more open eye (``PAIR_CLOSED_*``).

    One eye alone must be clearly shut to be cut (a wink; an eye narrowed while the other stays
    open is an open eye looking down); both eyes closing together is a blink even where one of
    them reads only half shut (docs/render.md).
    """
    if len(openness) != 2 or len(open_levels) != 2:
        raise FaceError(f"eye_closures: expected (right, left) values, got {openness!r} and {open_levels!r}")
    own = [eye_closure(float(o), float(level)) for o, level in zip(openness, open_levels)]
    more_open = max(zip(openness, open_levels), key=lambda pair: float(pair[0]) / float(pair[1]))
    pair = eye_closure(
        float(more_open[0]), float(more_open[1]), closed_from=PAIR_CLOSED_FROM, closed_full=PAIR_CLOSED_FULL
    )
    return max(own[0], pair), max(own[1], pair)


#: A sample counts toward the open level unless it is under ``OPEN_SAMPLE_SHARE`` of the window's
#: ``EYE_OPEN_PERCENTILE``: a sample this low is a closing eye, not one of the open eyes.
EYE_OPEN_PERCENTILE = 95.0
OPEN_SAMPLE_SHARE = 0.55
#: The lowest open level: no open eye measures under it (the narrowest open eyes on the 38
#: measured portraits are 0.16-0.17, closed ones 0.04-0.10), so a track whose samples are all
#: closed (a shot that opens on shut eyes) still has its lids cut, if not whole.
OPEN_EYE_FLOOR = 0.16
#: Samples of a face turned further than this (degrees of yaw) are left out of the open level
#: while the window has enough frontal ones: the eye ratio grows about as 1 / cos(yaw) (the
#: corners foreshorten, the lid gap does not), 6 % at 20 degrees and 30 % at 40 (docs/render.md).
FRONTAL_YAW = 20.0


def open_eye_levels(
    samples: np.ndarray, *, yaws: np.ndarray | None = None, min_frontal: int = 8
) -> tuple[float, float]:
    """The performer's open-eye aspect ratio per eye (right, left) from a track's recent
    ``(n, 2)`` eye samples: the median of the samples that are open against the window's
    95th percentile (not under :data:`OPEN_SAMPLE_SHARE` of it), and at least :data:`OPEN_EYE_FLOOR`.

    Not the plain median: singers keep their eyes shut for seconds (a ballad line), and once
    half the window is shut the median is the closed lids, so the mask stops firing on exactly
    the frames it is for. The percentile only picks which samples are open, so it holds while
    at least 5 % of the window is open; the level itself stays the open eyes' median, as high as
    before, so narrow open eyes (looking down) are not cut more often (docs/render.md).

    ``yaws``: each sample's head yaw in degrees (None: all frontal). Only the samples within
    :data:`FRONTAL_YAW` make the level when there are at least ``min_frontal`` of them: a turned
    face's wide-reading eyes would raise it, and frontal open eyes would then read as closing. A
    window with fewer frontal samples (a shot turned throughout) uses them all, so a turned face
    is compared with its own turned eyes.
    """
    values = np.asarray(samples, np.float64)
    if values.ndim != 2 or values.shape[1] != 2 or not len(values) or not np.all(np.isfinite(values)):
        raise FaceError(f"open_eye_levels: expected finite (n >= 1, 2) eye samples, got shape {values.shape}")
    if yaws is not None:
        turn = np.abs(np.asarray(yaws, np.float64))
        if turn.shape != (len(values),) or not np.all(np.isfinite(turn)):
            raise FaceError(f"open_eye_levels: expected one finite yaw per sample, got shape {turn.shape}")
        if np.count_nonzero(turn <= FRONTAL_YAW) >= min_frontal:
            values = values[turn <= FRONTAL_YAW]
    levels = []
    for column in values.T:
        opened = column[column >= OPEN_SAMPLE_SHARE * np.percentile(column, EYE_OPEN_PERCENTILE)]
        levels.append(max(float(np.median(opened)), OPEN_EYE_FLOOR))
    return levels[0], levels[1]


def closed_eye_mask(
    landmarks: np.ndarray,
    *,
    size: int,
    open_levels: tuple[float, float],
    openness: tuple[float, float] | None = None,
    half_width: float = 0.7,
    half_height: float = 0.45,
    feather_width: float = 0.2,
) -> np.ndarray:
    """Where the performer's own eyelids should show through the swap while the eyes close.

    A swap model trained on photos has seen few closed eyes, so it paints open eyes over a
    blink and the render never blinks. Cutting each closing eye out of the blend mask keeps the
    performer's lids, as ``inner_mouth_mask`` keeps an open mouth; an open eye is not touched,
    so the swap's eyes (much of the identity) stay.

    ``landmarks``: ``(478, 2)`` FaceMesh points in crop pixels, which place the masks.
    ``open_levels``: the performer's open-eye aspect ratio per eye (right, left), e.g.
    :func:`open_eye_levels` of the track's recent samples; ``openness``: this frame's ratios (None: measured from
    ``landmarks``; the renderer passes the unsmoothed detection's, since landmark smoothing
    flattens a blink). Returns float32 ``(size, size)`` in [0, 1]: per eye an ellipse around the
    corners' midpoint, ``half_width`` and ``half_height`` x the eye width (the lids and lashes,
    whose corners barely move in a blink), feathered over ``feather_width`` x the eye width and
    weighted by :func:`eye_closures`.

    Example::

        >>> import numpy as np
        >>> points = np.zeros((478, 2), np.float32)
        >>> points[[33, 133, 362, 263]] = [[12, 30], [26, 30], [38, 30], [52, 30]]
        >>> mask = closed_eye_mask(points, size=64, open_levels=(0.3, 0.3), openness=(0.05, 0.3))
        >>> float(mask[30, 19]), float(mask[30, 45])
        (1.0, 0.0)
    """
    if size < 1:
        raise MediaError(None, f"size: expected a positive crop size, got {size}")
    points = check_landmarks(landmarks, min_points=N_LANDMARKS)
    if openness is None:
        from likeness.faces.quality import eye_openness_each

        openness = eye_openness_each(points)  # FaceError when an eye's corners coincide
    weights = eye_closures(openness, open_levels)
    mask = np.zeros((size, size), np.float32)
    for (outer, inner), weight in zip(EYE_CORNERS, weights):
        width = float(np.linalg.norm(points[outer] - points[inner]))
        if width < 1e-6:
            raise FaceError("landmarks are degenerate (eye corners coincide)")
        if weight == 0.0:
            continue
        eye = np.zeros((size, size), np.float32)
        shift = 4  # sub-pixel ellipse: a 64 px crop's eye is only ~12 px wide
        centre = np.round((points[outer] + points[inner]) / 2 * (1 << shift)).astype(int)
        axes = np.round(np.array([half_width, half_height]) * width * (1 << shift)).astype(int)
        dx, dy = points[inner] - points[outer]
        angle = float(np.degrees(np.arctan2(dy, dx)))
        cv2.ellipse(eye, tuple(centre), tuple(axes), angle, 0, 360, 1.0, -1, cv2.LINE_AA, shift)
        eye = feather(eye, pixels=max(1, round(feather_width * width))) * np.float32(weight)
        np.maximum(mask, eye, out=mask)
    return mask


def keep_occluders(mask: np.ndarray, occluder: np.ndarray, *, grow_px: int = 1, feather_px: int = 1) -> np.ndarray:
    """The blend mask with what covers the face taken out: ``mask * (1 - occluder)``.

    ``occluder``: float32 ``(R, R)`` probability from ``likeness.faces.occlusion``; it is grown
    by ``grow_px`` and softened over ``feather_px`` (never below its own value) so the edge of a
    glasses rim or a finger is not painted over either.
    """
    mask = check_mask(mask, name="mask")
    covered = check_mask(np.clip(np.asarray(occluder, np.float32), 0.0, 1.0), name="occluder", shape=mask.shape)
    spread = feather(erode_dilate(covered, pixels=grow_px), pixels=feather_px)
    return (mask * (1.0 - np.maximum(spread, covered))).astype(np.float32)
