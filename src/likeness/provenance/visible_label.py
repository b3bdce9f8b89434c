"""The burned-in "AI 생성 · AI-generated" label, in Korean and English, placed to survive crops.

Drawn with NanumGothic Bold, which ships inside the ``koreanize_matplotlib`` package (SIL OFL),
so no system font is assumed. The font size follows the frame's short side (4.5 %, at least
18 px: Hangul glyphs >= 15 px tall at 360p, ~95 px at 4K) and shrinks only when the label
would not fit. White text on a 60 % opaque dark box.

Placement (docs/provenance.md, "Visible label"):

- ``"safe"`` (default): horizontally centred, its box inside the central 56 % of the frame in
  both directions (:data:`SAFE_INSET` from every edge), in the lower band where subtitles sit.
  A crop of up to 20 % on any combination of sides, or a centred 9:16 reframe of a 16:9 frame,
  keeps the whole label. Given the faces of an image (``avoid``), it takes the first of six
  safe-area slots (bottom centre, left, right; top centre, left, right) that covers none.
- a corner (``"bottom-right"`` ...): inset by :data:`CORNER_INSET` of the frame (the broadcast
  title-safe margin), so a 10 % crop keeps it; a 20 % crop of that side removes it.
- video adds :class:`FaceTag`, a smaller copy of the label that follows the synthetic face
  (beside it, never over it), smoothed so that it stands still while the face only jitters.

``burn_visible_label(rgb)`` is the pure one-shot function; ``VisibleLabel(width, height,
placement)`` renders the label patch once and alpha-blends it into every frame of a video.

Example::

    labelled = burn_visible_label(frame)                               # (H, W, 3) uint8 -> same
    labelled = burn_visible_label(frame, placement="bottom-right")     # the old corner, inset
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from likeness.errors import ProvenanceError

LABEL_TEXT = "AI 생성 · AI-generated"
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
Placement = Literal["safe", "top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
PLACEMENTS: tuple[Placement, ...] = ("safe", *CORNERS)
#: A face or label rectangle ``(x0, y0, x1, y1)`` in frame pixels (x1, y1 exclusive).
Box = tuple[float, float, float, float]

FONT_FILE = "NanumGothicBold.ttf"
FONT_SCALE = 0.045  # of the frame's short side
MIN_FONT_PX = 18
MIN_FIT_FONT_PX = 6  # below this a tiny frame gets a clipped label rather than none
BOX_OPACITY = 0.6
BOX_RGB = (16, 16, 16)
TEXT_RGB = (255, 255, 255)
#: The safe placement keeps the box this fraction of the frame away from every edge: a crop of
#: 20 % per side leaves it whole, with 2 % to spare for rounding and codec block edges.
SAFE_INSET = 0.22
#: Corner placements: the broadcast title-safe margin (10 % of each dimension).
CORNER_INSET = 0.10
#: Faces are kept clear of the label by this fraction of their size on every side.
FACE_CLEARANCE = 0.08
#: The face tag: this fraction of the main label's font size, but legible.
TAG_SCALE = 0.6
MIN_TAG_FONT_PX = 14
#: Gap between the face box and the tag, as a fraction of the face height.
TAG_GAP = 0.12
#: The tag's anchor follows an exponential average of the face box (per frame), moves only once
#: the target has drifted more than the dead band (fraction of the short side), glides there by
#: this fraction of the distance per frame, and stays this long after the face is lost.
TAG_SMOOTHING = 0.2
TAG_DEADBAND = 0.03
TAG_GLIDE = 0.35
TAG_HOLD_S = 1.0
#: While held, the tag goes at once when another face comes within this fraction of that face's
#: size (beyond the gap the tag keeps from the face it labels): a hard cut to a person with no
#: release standing where the performer stood would otherwise have her tagged "AI-generated".
TAG_BYSTANDER_REACH = 2 * TAG_GAP


def label_font_path() -> Path:
    """Path of the bundled NanumGothic Bold TTF (found without importing the package,
    whose import reconfigures matplotlib)."""
    from likeness.assets import checked_asset

    return checked_asset("label-font", error=ProvenanceError)


@dataclass(frozen=True)
class LabelGeometry:
    """Where and how large the label is drawn, in pixels of the frame."""

    font_px: int
    x0: int
    y0: int
    box_width: int
    box_height: int
    text_height: int
    pad: int

    @property
    def box(self) -> Box:
        """``(x0, y0, x1, y1)`` of the drawn box."""
        return (self.x0, self.y0, self.x0 + self.box_width, self.y0 + self.box_height)


@dataclass(frozen=True)
class LabelPatch:
    """The label rendered at one font size: straight colour float32 ``(h, w, 3)`` in 0..255 and
    coverage ``alpha`` float32 ``(h, w, 1)`` in 0..1 (text opaque, box :data:`BOX_OPACITY`)."""

    colour: np.ndarray
    alpha: np.ndarray
    font_px: int
    pad: int
    text_height: int

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.alpha.shape[1]), int(self.alpha.shape[0])

    def over(self, background: float) -> np.ndarray:
        """The patch composited over a flat grey ``background`` (0..255): luma float32 ``(h, w)``."""
        luma = self.colour @ np.array([0.299, 0.587, 0.114], np.float32)
        alpha = self.alpha[..., 0]
        return (luma * alpha + background * (1.0 - alpha)).astype(np.float32)


class _Blender:
    """A patch with premultiplied colour, blended into frames at any (clipped) position."""

    def __init__(self, patch: LabelPatch) -> None:
        # Premultiplied colour and (1 - alpha) so a blend is one multiply-add per pixel.
        self.patch = patch
        self._premultiplied = patch.colour * patch.alpha
        self._keep = 1.0 - patch.alpha

    def blend(self, out: np.ndarray, x0: int, y0: int) -> None:
        """Blend into ``out`` (uint8 (H, W, 3), in place) with the patch's top-left at ``(x0, y0)``;
        the parts outside the frame are dropped."""
        height, width = out.shape[:2]
        patch_w, patch_h = self.patch.size
        left, top = max(0, x0), max(0, y0)
        right, bottom = min(width, x0 + patch_w), min(height, y0 + patch_h)
        if right <= left or bottom <= top:
            return
        rows, cols = slice(top - y0, bottom - y0), slice(left - x0, right - x0)
        region = out[top:bottom, left:right].astype(np.float32)
        blended = region * self._keep[rows, cols] + self._premultiplied[rows, cols]
        out[top:bottom, left:right] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


class VisibleLabel:
    """The label patch for one frame size, rendered once and blended into each frame.

    ``placement``: ``"safe"`` (default) or a corner; ``avoid``: face boxes the safe placement
    keeps clear of (images; a video's label stays put and :class:`FaceTag` follows the face).
    ``apply(rgb)`` takes ``uint8 (height, width, 3)`` and returns a labelled copy
    (``apply(rgb, in_place=True)`` labels ``rgb`` itself).
    """

    def __init__(
        self,
        width: int,
        height: int,
        placement: Placement = "safe",
        *,
        text: str = LABEL_TEXT,
        avoid: Sequence[Box] = (),
    ) -> None:
        _check_size(width, height)
        _check_placement(placement)
        _check_text(text)
        self.width, self.height, self.placement, self.text = int(width), int(height), placement, text
        self.geometry = label_geometry(self.width, self.height, placement, text, avoid=_checked_boxes(avoid))
        self._blender = _Blender(label_patch(self.geometry.font_px, text))

    @property
    def corner(self) -> Placement:
        """The placement (kept under its old name for callers that still say corner)."""
        return self.placement

    def apply(self, rgb: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """Blend the label into a copy of ``rgb`` (uint8, (height, width, 3)), or into ``rgb``
        itself with ``in_place=True`` (and return it)."""
        _check_frame(rgb, expected=(self.height, self.width))
        out = rgb if in_place else rgb.copy()
        self._blender.blend(out, self.geometry.x0, self.geometry.y0)
        return out


class FaceTag:
    """The second, smaller label of a video, beside the synthetic face it labels.

    ``update(faces)`` takes the face boxes of one frame (the swapped faces; ``None`` when the
    frame's faces are unknown) and returns the tag's top-left ``(x, y)`` for that frame, or
    ``None`` while there is no face to follow. It follows one face (the largest; the same one
    while it stays), below it, else above, right or left: the first side that is inside the
    frame and covers no face and not the main label (``label_box``). The anchor follows an
    exponential average of the face box and moves only when the target drifts beyond a dead
    band, so detector jitter never moves it; if the face ever reaches the tag, the tag jumps
    clear at once. ``apply(rgb, faces)`` updates and blends.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        fps: float = 25.0,
        label_box: Box | None = None,
        text: str = LABEL_TEXT,
    ) -> None:
        _check_size(width, height)
        _check_text(text)
        self.width, self.height = int(width), int(height)
        self._blender = _Blender(label_patch(tag_font_px(self.width, self.height, text), text))
        self.size = self._blender.patch.size
        self._label_box = label_box
        short = min(self.width, self.height)
        self._deadband = TAG_DEADBAND * short
        self._hold_frames = max(1, round(float(fps) * TAG_HOLD_S)) if float(fps) > 0 else 25
        self._face: np.ndarray | None = None  # smoothed followed face box
        self._side: int | None = None
        self._position: np.ndarray | None = None  # current top-left, float
        self._gliding = False
        self._missing = 0

    @property
    def position(self) -> tuple[int, int] | None:
        """The tag's current top-left in frame pixels, or None when it is not drawn."""
        if self._position is None:
            return None
        return int(round(self._position[0])), int(round(self._position[1]))

    def box_at(self, position: tuple[int, int]) -> Box:
        """The tag's rectangle when its top-left is at ``position``."""
        return (position[0], position[1], position[0] + self.size[0], position[1] + self.size[1])

    def update(self, faces: Sequence[Box] | None, *, avoid: Sequence[Box] = ()) -> tuple[int, int] | None:
        """Follow ``faces`` (the synthetic ones) for one frame, keeping clear of them and of
        ``avoid`` (the frame's other faces); returns the tag's top-left or None."""
        if faces is None:  # unknown this frame (e.g. replayed from a checkpoint): hold
            return self.position
        others = [b for b in _checked_boxes(avoid) if b[2] > b[0] and b[3] > b[1]]
        boxes = [b for b in _checked_boxes(faces) if b[2] > b[0] and b[3] > b[1]]
        if not boxes:
            self._missing += 1
            if self._missing > self._hold_frames or self._beside_any(others):
                self._face = self._position = self._side = None
            return self.position
        self._missing = 0
        followed, switched = self._follow(boxes)
        if switched or self._face is None:
            self._face, self._side = followed.copy(), None
        else:
            self._face += TAG_SMOOTHING * (followed - self._face)
        target = self._target(tuple(self._face), boxes + others)
        if self._position is None or switched:
            self._position, self._gliding = target, False
        else:
            offset = target - self._position
            distance = float(np.hypot(*offset))
            if distance > self._deadband:
                self._gliding = True
            if self._gliding:
                self._position = self._position + TAG_GLIDE * offset if distance > 1.0 else target
                self._gliding = distance > 1.0
        current = self.position  # set just above
        if current is not None and any(
            _overlap(self.box_at(current), _grown(b, FACE_CLEARANCE / 2)) for b in boxes + others
        ):
            # Never over a face: jump beside the face as it is in this frame.
            self._side = None
            self._position, self._gliding = self._target(tuple(followed), boxes + others), False
        return self.position

    def _beside_any(self, faces: Sequence[Box]) -> bool:
        """Whether the tag, where it is now, would read as labelling one of ``faces``."""
        current = self.position
        return current is not None and any(
            _overlap(self.box_at(current), _grown(b, TAG_BYSTANDER_REACH)) for b in faces
        )

    def apply(
        self, rgb: np.ndarray, faces: Sequence[Box] | None, *, avoid: Sequence[Box] = (), in_place: bool = False
    ) -> np.ndarray:
        """Update with this frame's ``faces`` (and other faces ``avoid``) and blend the tag into
        ``rgb`` (uint8 (H, W, 3))."""
        _check_frame(rgb, expected=(self.height, self.width))
        out = rgb if in_place else rgb.copy()
        position = self.update(faces, avoid=avoid)
        if position is not None:
            self._blender.blend(out, *position)
        return out

    def _follow(self, boxes: list[Box]) -> tuple[np.ndarray, bool]:
        """The face to follow in this frame, and whether it is a different face than before."""
        largest = max(boxes, key=_area)
        if self._face is None:
            return np.array(largest, np.float64), True
        previous = tuple(self._face)
        best = max(boxes, key=lambda b: _iou(b, previous))
        if _iou(best, previous) >= 0.1:
            return np.array(best, np.float64), False
        return np.array(largest, np.float64), True

    def _target(self, face: Box, faces: list[Box]) -> np.ndarray:
        """Top-left of the tag beside ``face``: the current side while it stays usable, else the
        first usable of below, above, right, left (else the least bad, clamped into the frame)."""
        candidates = self._candidates(face)
        blockers = [_grown(b, FACE_CLEARANCE) for b in faces]
        if self._label_box is not None:
            blockers.append(self._label_box)

        def cost(index: int) -> float:
            box = self._box_of(candidates[index])
            outside = _area(box) - _area(_intersection(box, (0, 0, self.width, self.height)))
            return outside + sum(_area(_intersection(box, b)) for b in blockers)

        order = ([self._side] if self._side is not None else []) + list(range(len(candidates)))
        chosen = next((i for i in order if cost(i) == 0), None)
        if chosen is None:
            chosen = min(range(len(candidates)), key=cost)
        self._side = chosen
        x, y = candidates[chosen]
        x = min(max(x, 0.0), self.width - self.size[0])
        y = min(max(y, 0.0), self.height - self.size[1])
        return np.array([x, y], np.float64)

    def _candidates(self, face: Box) -> list[tuple[float, float]]:
        x0, y0, x1, y1 = face
        width, height = self.size
        gap = TAG_GAP * (y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return [
            (cx - width / 2, y1 + gap),  # below the chin
            (cx - width / 2, y0 - gap - height),  # above the head
            (x1 + gap, cy - height / 2),  # right
            (x0 - gap - width, cy - height / 2),  # left
        ]

    def _box_of(self, top_left: tuple[float, float]) -> Box:
        return (top_left[0], top_left[1], top_left[0] + self.size[0], top_left[1] + self.size[1])


def burn_visible_label(
    rgb: np.ndarray, *, placement: Placement = "safe", text: str = LABEL_TEXT, avoid: Sequence[Box] = ()
) -> np.ndarray:
    """Return ``rgb`` (uint8 (H, W, 3)) with the visible AI label burned in at ``placement``,
    clear of the face boxes ``avoid`` where the safe area allows."""
    _check_frame(rgb, expected=None)
    boxes = tuple(tuple(float(v) for v in b) for b in _checked_boxes(avoid))
    return _cached_label(rgb.shape[1], rgb.shape[0], placement, text, boxes).apply(rgb)


@lru_cache(maxsize=16)
def _cached_label(width: int, height: int, placement: Placement, text: str, avoid: tuple[Box, ...]) -> VisibleLabel:
    return VisibleLabel(width, height, placement, text=text, avoid=avoid)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(label_font_path()), size)


def label_font_px(width: int, height: int, text: str = LABEL_TEXT, *, max_box_width: float | None = None) -> int:
    """The label's font size for a ``width`` x ``height`` frame: 4.5 % of the short side, at
    least 18 px, shrunk (not below :data:`MIN_FIT_FONT_PX`) until its box is at most
    ``max_box_width`` wide (default: the width less two margins)."""
    font_px = max(MIN_FONT_PX, round(FONT_SCALE * min(width, height)))
    box_w, _, _, margin, _ = _box(font_px, text)
    limit = max_box_width if max_box_width is not None else width - 2 * margin
    if box_w > limit:
        # Text width is ~linear in the font size.
        font_px = max(MIN_FIT_FONT_PX, int(font_px * limit / box_w))
        while _box(font_px, text)[0] > limit and font_px > MIN_FIT_FONT_PX:
            font_px -= 1
    return font_px


def tag_font_px(width: int, height: int, text: str = LABEL_TEXT) -> int:
    """The face tag's font size: :data:`TAG_SCALE` of the label's, at least 14 px."""
    return max(MIN_TAG_FONT_PX, round(TAG_SCALE * label_font_px(width, height, text)))


def label_geometry(
    width: int,
    height: int,
    placement: Placement = "safe",
    text: str = LABEL_TEXT,
    *,
    avoid: Sequence[Box] = (),
) -> LabelGeometry:
    """Font size, box and position of the label for a ``width`` x ``height`` frame."""
    if placement == "safe":
        font_px = label_font_px(width, height, text, max_box_width=(1 - 2 * SAFE_INSET) * width)
    else:
        font_px = label_font_px(width, height, text)
    box_w, box_h, pad, _, text_h = _box(font_px, text)
    # A frame smaller than the box gets a clipped label (still marked, no longer legible).
    box_w, box_h = min(box_w, width), min(box_h, height)
    if placement == "safe":
        x0, y0 = _safe_slot(width, height, box_w, box_h, avoid)
    else:
        x0, y0 = _corner_slot(width, height, box_w, box_h, placement)
    return LabelGeometry(font_px, x0, y0, box_w, box_h, text_h, pad)


def label_patch(font_px: int, text: str = LABEL_TEXT) -> LabelPatch:
    """The label (text on its box) rendered at ``font_px``, exactly as frames get it."""
    return _label_patch(int(font_px), text)


@lru_cache(maxsize=64)
def _label_patch(font_px: int, text: str) -> LabelPatch:
    box_w, box_h, pad, _, text_h = _box(font_px, text)
    font = _font(font_px)
    left, top, _, _ = font.getbbox(text)
    text_mask = Image.new("L", (box_w, box_h), 0)
    ImageDraw.Draw(text_mask).text((pad - left, pad - top), text, font=font, fill=255)
    coverage = np.asarray(text_mask, dtype=np.float32)[..., None] / 255.0
    # Text over box: alpha composite of white text (opaque) on the semi-opaque box.
    alpha = coverage + (1.0 - coverage) * BOX_OPACITY
    colour = coverage * np.array(TEXT_RGB, np.float32) + (1.0 - coverage) * BOX_OPACITY * np.array(BOX_RGB, np.float32)
    colour = (colour / np.maximum(alpha, 1e-6)).astype(np.float32)
    alpha = alpha.astype(np.float32)
    colour.flags.writeable = alpha.flags.writeable = False  # cached and shared
    return LabelPatch(colour, alpha, font_px, pad, text_h)


def _box(font_px: int, text: str) -> tuple[int, int, int, int, int]:
    left, top, right, bottom = (int(v) for v in _font(font_px).getbbox(text))  # whole pixels for a TrueType font
    pad = max(2, round(font_px * 0.35))
    margin = max(2, round(font_px * 0.6))
    return (right - left) + 2 * pad, (bottom - top) + 2 * pad, pad, margin, bottom - top


def _corner_slot(width: int, height: int, box_w: int, box_h: int, corner: Placement) -> tuple[int, int]:
    inset_x = min(round(CORNER_INSET * width), (width - box_w) // 2)
    inset_y = min(round(CORNER_INSET * height), (height - box_h) // 2)
    x0 = inset_x if corner.endswith("left") else width - inset_x - box_w
    y0 = inset_y if corner.startswith("top") else height - inset_y - box_h
    return x0, y0


def _safe_slot(width: int, height: int, box_w: int, box_h: int, avoid: Sequence[Box]) -> tuple[int, int]:
    """The first of the safe-area slots whose box covers no face in ``avoid`` (grown by
    :data:`FACE_CLEARANCE`); the least-covering one when every slot covers some face."""
    left = min(round(SAFE_INSET * width), (width - box_w) // 2)
    right = max(width - left - box_w, left)
    centre = (width - box_w) // 2
    top = min(round(SAFE_INSET * height), (height - box_h) // 2)
    bottom = max(height - top - box_h, top)
    slots = [(centre, bottom), (left, bottom), (right, bottom), (centre, top), (left, top), (right, top)]
    if not avoid:
        return slots[0]
    faces = [_grown(b, FACE_CLEARANCE) for b in avoid]

    def covered(slot: tuple[int, int]) -> float:
        box = (slot[0], slot[1], slot[0] + box_w, slot[1] + box_h)
        return sum(_area(_intersection(box, face)) for face in faces)

    return min(slots, key=covered)  # min keeps the first of equal slots


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _intersection(a: Box, b: Box) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _overlap(a: Box, b: Box) -> bool:
    return _area(_intersection(a, b)) > 0


def _iou(a: Box, b: Box) -> float:
    inter = _area(_intersection(a, b))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _grown(box: Box, fraction: float) -> Box:
    dx, dy = fraction * (box[2] - box[0]), fraction * (box[3] - box[1])
    return (box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy)


def _checked_boxes(boxes: Sequence[Box] | None) -> list[Box]:
    checked: list[Box] = []
    for box in boxes or ():
        try:
            values = tuple(float(v) for v in box)
        except (TypeError, ValueError):
            raise ProvenanceError(f"face box must be four numbers (x0, y0, x1, y1), got {box!r}") from None
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ProvenanceError(f"face box must be four finite numbers (x0, y0, x1, y1), got {box!r}")
        checked.append(values)
    return checked


def _check_size(width: object, height: object) -> None:
    if not (isinstance(width, int | np.integer) and isinstance(height, int | np.integer)) or width < 1 or height < 1:
        raise ProvenanceError(f"label frame size must be positive integers, got {width!r}x{height!r}")


def _check_placement(placement: object) -> None:
    if placement not in PLACEMENTS:
        raise ProvenanceError(f"label placement must be one of {', '.join(PLACEMENTS)}; got {placement!r}")


def _check_text(text: str) -> None:
    if not text or not text.strip():
        raise ProvenanceError("label text is empty")


def _check_frame(rgb: np.ndarray, *, expected: tuple[int, int] | None) -> None:
    if not isinstance(rgb, np.ndarray):
        raise ProvenanceError(f"label expects a numpy RGB frame, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ProvenanceError(f"label expects uint8 (H, W, 3) RGB, got {rgb.dtype} {rgb.shape}")
    if expected is not None and rgb.shape[:2] != expected:
        raise ProvenanceError(
            f"label was prepared for {expected[1]}x{expected[0]} frames, got {rgb.shape[1]}x{rgb.shape[0]}"
        )
