"""Synthetic occluders drawn on aligned faces: the training data of the occlusion mask.

After Nirkin et al. (2018), who trained face segmentation with synthetic hand occlusions, and in
the spirit of DeepFaceLab's XSeg: glasses frames, hands, microphones and hair strands are drawn
over a face whose landmarks are known, so the pixels they cover are known exactly and no face
has to be labelled by hand. Thin frames (metal, light, half-rim, browline; issue 26) are a kind
of their own, so the thick glasses stay what they were. Shapes, sizes and colours are randomised from the landmarks (eye
distance, mouth, chin), so an occluder sits where it would on a stage.

Pure functions: ``(crop, landmarks, rng) -> (occluded crop, occluder mask)``. The mask is
float32 ``(S, S)`` in [0, 1]: the share of each pixel the occluder covers (clear lenses do not
count; their rims do).

Example::

    >>> import numpy as np
    >>> from likeness.faces.occluders import OCCLUDERS, occlude
    >>> rng = np.random.default_rng(0)
    >>> crop = np.full((128, 128, 3), 180, np.uint8)
    >>> points = np.random.default_rng(1).uniform(30, 100, (478, 2)).astype(np.float32)
    >>> image, mask = occlude(crop, points, rng, kind="hand")
    >>> image.shape, mask.dtype, 0.0 < float(mask.mean()) < 1.0
    ((128, 128, 3), dtype('float32'), True)
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from likeness.errors import FaceError
from likeness.faces.canonical import (
    CHIN,
    FOREHEAD_TOP,
    LEFT_EYE_OUTER,
    LEFT_IRIS_CENTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    RIGHT_EYE_OUTER,
    RIGHT_IRIS_CENTER,
)

_SHIFT = 4  # sub-pixel drawing: cv2 coordinates are fixed point with 4 fractional bits
_SCALE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _SCALE).astype(np.int32)


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    """A skin colour from dark to light (RGB), the face's own tones included on purpose."""
    light = rng.uniform(0.25, 1.0)
    base = np.array([224.0, 172.0, 140.0]) * light + np.array([40.0, 20.0, 10.0]) * (1 - light)
    return np.clip(base + rng.normal(0, 10, 3), 0, 255)


def _shade(layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A linear light gradient across the layer, so occluders are not flat paper cut-outs."""
    size = layer.shape[0]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * np.arange(size)[None, :] + np.sin(angle) * np.arange(size)[:, None]) / size
    gain = 1.0 + rng.uniform(0.1, 0.35) * (ramp - ramp.mean())
    return np.clip(layer * gain[..., None], 0, 255)


def _composite(crop: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = crop.astype(np.float32) * (1 - alpha[..., None]) + colour * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _lens_placement(landmarks: np.ndarray, rng: np.random.Generator) -> tuple:
    """Where spectacle lenses sit on a face: (right iris, left iris, their span, the unit axis
    between them, its tilt in degrees, lens half-width, half-height, the drop below the irises)."""
    right, left = landmarks[RIGHT_IRIS_CENTER].astype(np.float64), landmarks[LEFT_IRIS_CENTER].astype(np.float64)
    span = float(np.linalg.norm(left - right))
    if span < 2:
        raise FaceError("draw_glasses: the eyes are too close together in this crop")
    axis = (left - right) / span
    tilt = float(np.degrees(np.arctan2(axis[1], axis[0])))
    width = span * rng.uniform(0.36, 0.5)
    height = width * rng.uniform(0.55, 0.85)
    drop = np.array([-axis[1], axis[0]]) * height * rng.uniform(0.0, 0.25)  # lenses sit a bit low
    return right, left, span, axis, tilt, width, height, drop


def _bridge_and_temples(
    rims: np.ndarray, landmarks: np.ndarray, lenses_at: tuple, thickness: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the bridge between the lenses and the temples to the ears into ``rims``; returns
    the lenses' inner ends (right, left)."""
    right, left, span, axis, _, width, _, drop = lenses_at
    inner_r, inner_l = right + drop + axis * width, left + drop - axis * width
    cv2.line(rims, tuple(_fixed(inner_r)), tuple(_fixed(inner_l)), 1.0, thickness, cv2.LINE_AA, _SHIFT)
    for outer, ear in (
        (right + drop - axis * width, landmarks[RIGHT_EYE_OUTER] - axis * span * 0.8),
        (left + drop + axis * width, landmarks[LEFT_EYE_OUTER] + axis * span * 0.8),
    ):
        cv2.line(rims, tuple(_fixed(outer)), tuple(_fixed(ear)), 1.0, thickness, cv2.LINE_AA, _SHIFT)
    return inner_r, inner_l


def _tinted_lenses(
    crop: np.ndarray, rims: np.ndarray, lenses: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Clear, tinted or dark lenses over ``crop``; returns it and the occluder mask (the rims,
    and the lenses too where they are dark enough to hide the eyes)."""
    tint = rng.choice([0.0, 0.0, 0.15, 0.5, 0.85])
    out = crop
    mask = rims
    if tint > 0:
        lens_colour = rng.uniform(10, 80, 3)
        out = _composite(out, lens_colour, np.clip(lenses * tint, 0, 1))
        if tint >= 0.5:  # the eyes behind dark lenses are hidden: the lens is occluder
            mask = np.maximum(mask, lenses)
    return out, mask


def draw_glasses(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Spectacle frames over the eyes: lenses (ellipses or rounded boxes), bridge and temples.

    Clear lenses let the eyes through and are not occluder; tinted ones (sunglasses) are.
    """
    size = crop.shape[0]
    lenses_at = _lens_placement(landmarks, rng)
    right, left, span, _, tilt, width, height, drop = lenses_at
    thick = int(round(max(1.0, span * rng.uniform(0.025, 0.07))))
    rounded = rng.random() < 0.5
    (lens_r, rim_r), (lens_l, rim_l) = (
        _lens_rim(size, centre, width, height, tilt, rounded, thick) for centre in (right + drop, left + drop)
    )
    lenses, rims = np.maximum(lens_r, lens_l), np.maximum(rim_r, rim_l)
    _bridge_and_temples(rims, landmarks, lenses_at, thick)
    frame_colour = rng.choice(
        [
            np.array([20.0, 20, 22]),
            np.array([90.0, 55, 30]),
            np.array([170.0, 160, 150]),
            np.array([120.0, 30, 40]),
            rng.uniform(0, 255, 3),
        ]
    )
    out, mask = _tinted_lenses(crop, rims, lenses, rng)
    out = _composite(out, _shade(np.broadcast_to(frame_colour, crop.shape).astype(np.float32), rng), rims)
    return out, np.clip(mask, 0, 1)


#: Thin frame colours (RGB): black, brown, grey, burgundy; metal silver, gold, gunmetal; light
#: translucent acetate (tortoiseshell, honey) that lets the skin show through.
FRAME_COLOURS: tuple[tuple[float, float, float], ...] = (
    (20.0, 20.0, 22.0),
    (90.0, 55.0, 30.0),
    (170.0, 160.0, 150.0),
    (120.0, 30.0, 40.0),
    (200.0, 200.0, 205.0),
    (205.0, 170.0, 95.0),
    (78.0, 80.0, 88.0),
    (185.0, 135.0, 95.0),
)
#: Frame styles: full rims (twice as likely), half-rim (the top of each lens only) and browline
#: (a thick top over a thin full rim).
FRAME_STYLES = ("full", "full", "half", "browline")


def _upper_half(size: int, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """1 above the line through ``centre`` along ``axis`` (the lens's top half), else 0."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    below = (xx - centre[0]) * -axis[1] + (yy - centre[1]) * axis[0]
    return (below < 0).astype(np.float32)


def _lens_rim(size: int, centre: np.ndarray, width: float, height: float, tilt: float, rounded: bool, thick: int):
    """(lens area, rim) of one lens, float32 coverage."""
    lens = np.zeros((size, size), np.float32)
    rim = np.zeros((size, size), np.float32)
    if rounded:
        box = _fixed(cv2.boxPoints(((float(centre[0]), float(centre[1])), (2 * width, 2 * height), tilt)))
        cv2.fillPoly(lens, [box], 1.0, cv2.LINE_AA, _SHIFT)
        cv2.polylines(rim, [box], True, 1.0, thick, cv2.LINE_AA, _SHIFT)
    else:
        at, axes = tuple(int(v) for v in _fixed(centre)), (int(width * _SCALE), int(height * _SCALE))
        cv2.ellipse(lens, at, axes, tilt, 0, 360, 1.0, -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(rim, at, axes, tilt, 0, 360, 1.0, thick, cv2.LINE_AA, _SHIFT)
    return lens, rim


def draw_thin_frames(
    crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Thin spectacle frames (issue 26: the real frames the glasses above miss): metal, light or
    translucent rims from about a pixel to a third of the thick ones, full, half-rim or browline,
    sometimes nose pads, on lenses like :func:`draw_glasses`'.

    A rim thinner than a pixel is drawn one pixel wide and faint (as a real one looks in the
    crop) but its pixels are labelled whole, since the swap must not paint over them.
    """
    size = crop.shape[0]
    lenses_at = _lens_placement(landmarks, rng)
    right, left, span, axis, tilt, width, height, drop = lenses_at
    rim = span * float(np.exp(rng.uniform(np.log(0.012), np.log(0.035))))  # under a pixel at 64 px
    thick = max(1, int(round(rim)))
    style = str(rng.choice(FRAME_STYLES))
    rounded = rng.random() < 0.5
    rims = np.zeros((size, size), np.float32)
    lenses = np.zeros((size, size), np.float32)
    for centre in (right + drop, left + drop):
        lens, lens_rim = _lens_rim(size, centre, width, height, tilt, rounded, thick)
        lenses = np.maximum(lenses, lens)
        if style == "half":
            lens_rim *= _upper_half(size, centre, axis)
        elif style == "browline":
            _, brow = _lens_rim(size, centre, width, height, tilt, rounded, max(2, int(round(span * 0.08))))
            _, thin = _lens_rim(size, centre, width, height, tilt, rounded, 1)
            lens_rim = np.maximum(brow * _upper_half(size, centre, axis), thin)
        rims = np.maximum(rims, lens_rim)
    inner_r, inner_l = _bridge_and_temples(rims, landmarks, lenses_at, thick)
    if rng.random() < 0.4:  # nose pads on the sides of the nose, below the bridge
        down = np.array([-axis[1], axis[0]])
        for inner, side in ((inner_r, -1.0), (inner_l, 1.0)):
            pad = inner + down * height * 0.55 + side * axis * span * 0.03
            axes = (max(1, int(span * 0.025 * _SCALE)), max(1, int(span * 0.045 * _SCALE)))
            cv2.ellipse(rims, tuple(_fixed(pad)), axes, tilt, 0, 360, 1.0, -1, cv2.LINE_AA, _SHIFT)
    frame_colour = (
        np.array(FRAME_COLOURS[int(rng.integers(len(FRAME_COLOURS)))])
        if rng.random() < 0.85
        else rng.uniform(0, 255, 3)
    )
    # Faint where thinner than a pixel; light acetate is translucent.
    opacity = min(1.0, max(0.5, rim)) * (rng.uniform(0.6, 0.95) if rng.random() < 0.25 else 1.0)
    out, mask = _tinted_lenses(crop, rims, lenses, rng)
    layer = _shade(np.broadcast_to(frame_colour, crop.shape).astype(np.float32), rng)
    out = _composite(out, layer, rims * opacity)
    return out, np.clip(mask, 0, 1)


def _capsule(mask: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> None:
    cv2.line(mask, tuple(_fixed(a)), tuple(_fixed(b)), 1.0, max(1, int(round(2 * radius))), cv2.LINE_AA, _SHIFT)


def draw_hand(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A hand (palm and fingers) reaching over the face from below or a side."""
    size = crop.shape[0]
    chin, top = landmarks[CHIN].astype(np.float64), landmarks[FOREHEAD_TOP].astype(np.float64)
    face = float(np.linalg.norm(chin - top))
    centre = (chin + top) / 2
    # Mostly from below (fingertips pointing up, image y grows downwards), else from above or a side.
    angle = rng.uniform(0.15 * np.pi, 0.85 * np.pi) if rng.random() < 0.7 else rng.uniform(-np.pi, 0.15 * np.pi)
    direction = np.array([np.cos(angle), -np.sin(angle)])  # from the palm towards the fingertips
    reach = rng.uniform(0.1, 0.55) * face
    palm_centre = centre - direction * (face * 0.75 - reach)
    palm = np.zeros((size, size), np.float32)
    axes = (face * rng.uniform(0.22, 0.32), face * rng.uniform(0.28, 0.4))
    cv2.ellipse(
        palm,
        tuple(_fixed(palm_centre)),
        (int(axes[0] * _SCALE), int(axes[1] * _SCALE)),
        float(np.degrees(np.arctan2(direction[1], direction[0]))) + 90,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )
    side = np.array([-direction[1], direction[0]])
    fingers = int(rng.integers(2, 5))
    radius = face * rng.uniform(0.045, 0.065)
    for k in range(fingers):
        offset = (k - (fingers - 1) / 2) * radius * 2.1
        base = palm_centre + direction * axes[1] * 0.7 + side * offset
        bend = rng.normal(0, 0.15)
        tip_dir = direction * np.cos(bend) + side * np.sin(bend)
        _capsule(palm, base, base + tip_dir * face * rng.uniform(0.25, 0.42), radius)
    colour = _shade(np.broadcast_to(_skin_tone(rng), crop.shape).astype(np.float32), rng)
    return _composite(crop, colour, palm), palm


def draw_microphone(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A handheld microphone in front of the mouth: a meshed ball head on a dark handle."""
    size = crop.shape[0]
    mouth = (landmarks[MOUTH_LEFT].astype(np.float64) + landmarks[MOUTH_RIGHT]) / 2
    mouth_width = float(np.linalg.norm(landmarks[MOUTH_LEFT] - landmarks[MOUTH_RIGHT]))
    radius = max(2.0, mouth_width * rng.uniform(0.45, 0.8))
    head = mouth + rng.normal(0, 0.3, 2) * mouth_width + np.array([0.0, radius * rng.uniform(-0.2, 0.7)])
    angle = rng.uniform(np.radians(60), np.radians(120))
    handle_end = head + np.array([np.cos(angle), np.sin(angle)]) * size
    mask = np.zeros((size, size), np.float32)
    _capsule(mask, head, handle_end, radius * rng.uniform(0.45, 0.6))
    handle = mask.copy()
    ball = np.zeros((size, size), np.float32)
    cv2.circle(ball, tuple(_fixed(head)), int(radius * _SCALE), 1.0, -1, cv2.LINE_AA, _SHIFT)
    mask = np.maximum(mask, ball)
    grey = rng.uniform(20, 120)
    layer = np.full(crop.shape, grey, np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    period = max(2.0, radius / rng.uniform(2.5, 5))
    mesh = ((np.sin(xx * np.pi / period) * np.sin(yy * np.pi / period)) > 0).astype(np.float32)
    layer += (ball * mesh * rng.uniform(20, 60))[..., None]
    layer -= (handle * (1 - ball) * grey * 0.6)[..., None]
    return _composite(crop, _shade(layer, rng), mask), mask


def draw_hair(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Strands of hair falling across the forehead and eyes (quadratic curves, 1-4 px)."""
    size = crop.shape[0]
    top = landmarks[FOREHEAD_TOP].astype(np.float64)
    eyes_y = float((landmarks[RIGHT_IRIS_CENTER][1] + landmarks[LEFT_IRIS_CENTER][1]) / 2)
    span = float(np.linalg.norm(landmarks[LEFT_IRIS_CENTER] - landmarks[RIGHT_IRIS_CENTER]))
    mask = np.zeros((size, size), np.float32)
    colour = rng.choice(
        [
            np.array([25.0, 18, 15]),
            np.array([70.0, 45, 25]),
            np.array([200.0, 170, 110]),
            np.array([140.0, 60, 160]),
            np.array([230.0, 230, 235]),
        ]
    )
    strands = int(rng.integers(4, 16))
    sweep = rng.normal(0, 0.6) * span
    for _ in range(strands):
        start = top + np.array([rng.normal(0, 0.6) * span, rng.uniform(-0.2, 0.2) * span])
        end = np.array([start[0] + sweep + rng.normal(0, 0.3) * span, eyes_y + rng.uniform(-0.2, 0.9) * span])
        control = (start + end) / 2 + rng.normal(0, 0.3, 2) * span
        t = np.linspace(0, 1, 24)[:, None]
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
        width = int(rng.integers(1, max(2, int(span * 0.05)) + 1))
        cv2.polylines(mask, [_fixed(curve)], False, 1.0, width, cv2.LINE_AA, _SHIFT)
    layer = np.broadcast_to(colour + rng.normal(0, 12, 3), crop.shape).astype(np.float32)
    return _composite(crop, _shade(layer, rng), mask), mask


OCCLUDERS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "glasses": draw_glasses,
    "thin_frames": draw_thin_frames,
    "hand": draw_hand,
    "microphone": draw_microphone,
    "hair": draw_hair,
}


def occlude(
    crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, *, kind: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one occluder of ``kind`` (None: a random kind) on an aligned ``crop``.

    ``crop``: uint8 RGB ``(S, S, 3)``; ``landmarks``: ``(478, 2)`` in crop pixels. Returns the
    occluded crop and the occluder's float32 ``(S, S)`` coverage mask.
    """
    if (
        not isinstance(crop, np.ndarray)
        or crop.dtype != np.uint8
        or crop.ndim != 3
        or crop.shape[2] != 3
        or crop.shape[0] != crop.shape[1]
    ):
        raise FaceError(f"occlude: expected a square uint8 RGB crop, got {getattr(crop, 'shape', type(crop))}")
    points = np.asarray(landmarks, np.float64)
    if points.shape != (478, 2) or not np.isfinite(points).all():
        raise FaceError(f"occlude: expected finite (478, 2) landmarks, got {points.shape}")
    if kind is None:
        kind = str(rng.choice(list(OCCLUDERS)))
    if kind not in OCCLUDERS:
        raise FaceError(f"occlude: unknown occluder {kind!r}; expected one of {', '.join(OCCLUDERS)}")
    return OCCLUDERS[kind](crop, points, rng)
