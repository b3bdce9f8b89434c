"""The burned-in "AI 생성 · AI-generated" label: placement, size, contrast, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.errors import ProvenanceError
from likeness.provenance.visible_label import (
    CORNERS,
    LABEL_TEXT,
    VisibleLabel,
    burn_visible_label,
    label_font_path,
)


def _text_extent(labelled_black: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1) of near-white text pixels on a black frame."""
    ys, xs = np.nonzero(labelled_black.min(axis=-1) > 200)
    assert ys.size, "no text pixels found"
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


@pytest.mark.parametrize("corner", CORNERS)
def test_label_changes_only_its_corner(corner: str) -> None:
    frame = np.random.default_rng(7).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    out = burn_visible_label(frame, corner=corner)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = np.any(out != frame, axis=-1)
    ys, xs = np.nonzero(changed)
    assert ys.size > 2000  # a real box, not a few pixels
    top, left = corner.startswith("top"), corner.endswith("left")
    assert (ys.max() < 180) if top else (ys.min() >= 180)
    assert (xs.max() < 320) if left else (xs.min() >= 320)
    # Inset from the edges by a margin.
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < 359 and xs.max() < 639
    assert not np.shares_memory(out, frame)


def test_label_in_place_draws_into_the_frame_itself() -> None:
    frame = np.random.default_rng(8).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    label = VisibleLabel(640, 360)
    copied = label.apply(frame)
    assert not np.array_equal(copied, frame)
    labelled = label.apply(frame, in_place=True)
    assert labelled is frame and np.array_equal(frame, copied)


def test_legible_at_360p_and_scales_at_4k() -> None:
    small = burn_visible_label(np.zeros((360, 640, 3), np.uint8))
    y0, y1, x0, x1 = _text_extent(small)
    assert y1 - y0 >= 14  # glyphs at least 14 px tall at 360p
    assert 150 <= x1 - x0 <= 640 // 2

    big = burn_visible_label(np.zeros((2160, 3840, 3), np.uint8), corner="top-left")
    y0, y1, x0, x1 = _text_extent(big)
    assert 70 <= y1 - y0 <= 2160 // 10
    assert x1 - x0 <= 3840 // 2
    assert y1 < 2160 // 2 and x1 < 3840 // 2


def test_text_contrasts_on_bright_and_dark_frames() -> None:
    black = burn_visible_label(np.zeros((360, 640, 3), np.uint8))
    text = black.min(axis=-1) > 200
    white = burn_visible_label(np.full((360, 640, 3), 255, np.uint8))
    box = np.any(white != 255, axis=-1)
    background = box & ~text
    assert np.median(white[background]) < 140  # dark box behind the text on white
    assert np.all(white[text] > 200)  # text stays white


def test_portrait_and_narrow_frames_keep_the_label_inside() -> None:
    for height, width in ((1920, 1080), (568, 320), (64, 64)):
        label = VisibleLabel(width, height)
        geometry = label.geometry
        assert 0 <= geometry.x0 and geometry.x0 + geometry.box_width <= width
        assert 0 <= geometry.y0 and geometry.y0 + geometry.box_height <= height
        out = label.apply(np.zeros((height, width, 3), np.uint8))
        assert np.any(out != 0)


def test_video_fast_path_matches_one_shot_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    label = VisibleLabel(640, 360, "top-right")
    for _ in range(3):
        frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
        assert np.array_equal(label.apply(frame), burn_visible_label(frame, corner="top-right"))
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert np.array_equal(VisibleLabel(640, 360).apply(frame), VisibleLabel(640, 360).apply(frame))


def test_font_ships_in_a_package_and_has_hangul() -> None:
    from PIL import ImageFont

    path = label_font_path()
    assert "koreanize_matplotlib" in path.parts and path.suffix == ".ttf"
    font = ImageFont.truetype(str(path), 24)
    # A missing glyph renders as the same .notdef box; real Hangul glyphs differ.
    masks = [np.asarray(font.getmask(ch)) for ch in "생성"]
    assert masks[0].shape != masks[1].shape or not np.array_equal(masks[0], masks[1])
    assert "생성" in LABEL_TEXT and "AI-generated" in LABEL_TEXT


def test_bad_input_gets_typed_errors() -> None:
    with pytest.raises(ProvenanceError, match="uint8"):
        burn_visible_label(np.zeros((360, 640, 3), np.float32))
    with pytest.raises(ProvenanceError, match="uint8"):
        burn_visible_label(np.zeros((360, 640), np.uint8))
    with pytest.raises(ProvenanceError, match="corner"):
        burn_visible_label(np.zeros((360, 640, 3), np.uint8), corner="middle")  # type: ignore[arg-type]
    with pytest.raises(ProvenanceError, match="640x360"):
        VisibleLabel(640, 360).apply(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ProvenanceError, match="positive"):
        VisibleLabel(0, 360)
    with pytest.raises(ProvenanceError, match="numpy"):
        burn_visible_label([[0, 0, 0]])  # type: ignore[arg-type]
