"""The burned-in "AI 생성 · AI-generated" label, in Korean and English.

Drawn with NanumGothic Bold, which ships inside the ``koreanize_matplotlib`` package (SIL OFL),
so no system font is assumed. The font size follows the frame's short side (4.5 %, at least
18 px: Hangul glyphs >= 15 px tall at 360p, ~95 px at 4K) and shrinks only when the label
would not fit the frame's width. White text on a 60 % opaque dark box, inset from the chosen
corner by a margin proportional to the font size.

``burn_visible_label(rgb)`` is the pure one-shot function; ``VisibleLabel(width, height,
corner)`` renders the label patch once and alpha-blends it into every frame of a video.

Example::

    labelled = burn_visible_label(frame, corner="bottom-right")   # (H, W, 3) uint8 -> same
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from likeness.errors import ProvenanceError

LABEL_TEXT = "AI 생성 · AI-generated"
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")

FONT_FILE = "NanumGothicBold.ttf"
FONT_SCALE = 0.045  # of the frame's short side
MIN_FONT_PX = 18
MIN_FIT_FONT_PX = 6  # below this a tiny frame gets a clipped label rather than none
BOX_OPACITY = 0.6
BOX_RGB = (16, 16, 16)
TEXT_RGB = (255, 255, 255)


def label_font_path() -> Path:
    """Path of the bundled NanumGothic Bold TTF (found without importing the package,
    whose import reconfigures matplotlib)."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ProvenanceError("koreanize-matplotlib is not installed: it ships the label font")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / FONT_FILE
    if not path.is_file():
        raise ProvenanceError(f"{path}: label font missing from koreanize-matplotlib")
    return path


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


class VisibleLabel:
    """The label patch for one frame size, rendered once and blended into each frame.

    ``apply(rgb)`` takes ``uint8 (height, width, 3)`` and returns a labelled copy
    (``apply(rgb, in_place=True)`` labels ``rgb`` itself).
    """

    def __init__(self, width: int, height: int, corner: Corner = "bottom-right", *, text: str = LABEL_TEXT) -> None:
        if not (isinstance(width, int | np.integer) and isinstance(height, int | np.integer)) or width < 1 or height < 1:
            raise ProvenanceError(f"label frame size must be positive integers, got {width!r}x{height!r}")
        if corner not in CORNERS:
            raise ProvenanceError(f"label corner must be one of {', '.join(CORNERS)}; got {corner!r}")
        if not text or not text.strip():
            raise ProvenanceError("label text is empty")
        self.width, self.height, self.corner, self.text = int(width), int(height), corner, text
        patch_rgb, patch_alpha, geometry = _render_patch(self.width, self.height, corner, text)
        self.geometry = geometry
        # Premultiplied colour and (1 - alpha) so apply() is one multiply-add per pixel.
        self._premultiplied = patch_rgb * patch_alpha
        self._keep = 1.0 - patch_alpha
        g = geometry
        self._rows = slice(g.y0, g.y0 + g.box_height)
        self._cols = slice(g.x0, g.x0 + g.box_width)

    def apply(self, rgb: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """Blend the label into a copy of ``rgb`` (uint8, (height, width, 3)), or into ``rgb``
        itself with ``in_place=True`` (and return it)."""
        _check_frame(rgb, expected=(self.height, self.width))
        out = rgb if in_place else rgb.copy()
        region = out[self._rows, self._cols].astype(np.float32)
        blended = region * self._keep + self._premultiplied
        out[self._rows, self._cols] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


def burn_visible_label(
    rgb: np.ndarray, *, corner: Corner = "bottom-right", text: str = LABEL_TEXT
) -> np.ndarray:
    """Return ``rgb`` (uint8 (H, W, 3)) with the visible AI label burned into ``corner``."""
    _check_frame(rgb, expected=None)
    return _cached_label(rgb.shape[1], rgb.shape[0], corner, text).apply(rgb)


@lru_cache(maxsize=16)
def _cached_label(width: int, height: int, corner: Corner, text: str) -> VisibleLabel:
    return VisibleLabel(width, height, corner, text=text)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(label_font_path()), size)


def label_geometry(width: int, height: int, corner: Corner, text: str = LABEL_TEXT) -> LabelGeometry:
    """Font size, box and position of the label for a ``width`` x ``height`` frame."""
    font_px = max(MIN_FONT_PX, round(FONT_SCALE * min(width, height)))
    box_w, box_h, pad, margin, text_h = _box(font_px, text)
    if box_w + 2 * margin > width:
        # Narrow frame: shrink to fit the width (text width is ~linear in the font size).
        font_px = max(MIN_FIT_FONT_PX, int(font_px * (width - 2 * margin) / box_w))
        box_w, box_h, pad, margin, text_h = _box(font_px, text)
        while box_w + 2 * margin > width and font_px > MIN_FIT_FONT_PX:
            font_px -= 1
            box_w, box_h, pad, margin, text_h = _box(font_px, text)
    # A frame smaller than the box gets a clipped label (still marked, no longer legible).
    box_w, box_h = min(box_w, width), min(box_h, height)
    margin_x = min(margin, (width - box_w) // 2)
    margin_y = min(margin, (height - box_h) // 2)
    x0 = margin_x if corner.endswith("left") else width - margin_x - box_w
    y0 = margin_y if corner.startswith("top") else height - margin_y - box_h
    return LabelGeometry(font_px, x0, y0, box_w, box_h, text_h, pad)


def _box(font_px: int, text: str) -> tuple[int, int, int, int, int]:
    left, top, right, bottom = _font(font_px).getbbox(text)
    pad = max(2, round(font_px * 0.35))
    margin = max(2, round(font_px * 0.6))
    return (right - left) + 2 * pad, (bottom - top) + 2 * pad, pad, margin, bottom - top


def _render_patch(
    width: int, height: int, corner: Corner, text: str
) -> tuple[np.ndarray, np.ndarray, LabelGeometry]:
    geometry = label_geometry(width, height, corner, text)
    font = _font(geometry.font_px)
    left, top, _, _ = font.getbbox(text)
    pad = geometry.pad
    text_mask = Image.new("L", (geometry.box_width, geometry.box_height), 0)
    ImageDraw.Draw(text_mask).text((pad - left, pad - top), text, font=font, fill=255)
    coverage = np.asarray(text_mask, dtype=np.float32)[..., None] / 255.0
    # Text over box: alpha composite of white text (opaque) on the semi-opaque box.
    alpha = coverage + (1.0 - coverage) * BOX_OPACITY
    colour = (coverage * np.array(TEXT_RGB, np.float32) + (1.0 - coverage) * BOX_OPACITY * np.array(BOX_RGB, np.float32))
    colour = colour / np.maximum(alpha, 1e-6)
    return colour.astype(np.float32), alpha.astype(np.float32), geometry


def _check_frame(rgb: np.ndarray, *, expected: tuple[int, int] | None) -> None:
    if not isinstance(rgb, np.ndarray):
        raise ProvenanceError(f"label expects a numpy RGB frame, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ProvenanceError(f"label expects uint8 (H, W, 3) RGB, got {rgb.dtype} {rgb.shape}")
    if expected is not None and rgb.shape[:2] != expected:
        raise ProvenanceError(
            f"label was prepared for {expected[1]}x{expected[0]} frames, got {rgb.shape[1]}x{rgb.shape[0]}"
        )
