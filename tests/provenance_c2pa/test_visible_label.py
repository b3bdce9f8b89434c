"""The burned-in "AI 생성 · AI-generated" label: placement that survives crops, the face tag,
size, contrast, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from likeness.errors import ProvenanceError
from likeness.provenance.visible_label import (
    CORNERS,
    LABEL_TEXT,
    SAFE_INSET,
    FaceTag,
    VisibleLabel,
    burn_visible_label,
    label_font_path,
    label_geometry,
)

SIDES = ("left", "right", "top", "bottom")
#: Every non-empty combination of sides a crop can take away.
SIDE_COMBINATIONS = [c for n in range(1, 5) for c in itertools.combinations(SIDES, n)]


def _text_extent(labelled_black: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1) of near-white text pixels on a black frame."""
    ys, xs = np.nonzero(labelled_black.min(axis=-1) > 200)
    assert ys.size, "no text pixels found"
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _kept(width: int, height: int, sides: tuple[str, ...], fraction: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of what a crop of ``fraction`` from each of ``sides`` keeps."""
    return (
        round(width * fraction) if "left" in sides else 0,
        round(height * fraction) if "top" in sides else 0,
        width - (round(width * fraction) if "right" in sides else 0),
        height - (round(height * fraction) if "bottom" in sides else 0),
    )


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080), (1080, 1920), (512, 512), (360, 640)])
def test_safe_label_lies_inside_what_any_20_percent_crop_keeps(size: tuple[int, int]) -> None:
    width, height = size
    x0, y0, x1, y1 = label_geometry(width, height).box
    for sides in SIDE_COMBINATIONS:
        for fraction in (0.10, 0.20):
            k0, k1, k2, k3 = _kept(width, height, sides, fraction)
            assert k0 <= x0 and k1 <= y0 and x1 <= k2 and y1 <= k3, (sides, fraction)
    # Below the middle, where subtitles sit, and centred: a centred 9:16 reframe keeps it too.
    assert y0 > height / 2 and abs((x0 + x1) / 2 - width / 2) <= 1
    if width > height:
        reframe = height * 9 / 16
        assert x0 >= (width - reframe) / 2 and x1 <= (width + reframe) / 2


def test_old_corner_position_was_lost_to_a_10_percent_crop_and_corners_are_now_inset() -> None:
    # The corner label used to sit 0.6 font sizes from the edge: a 10 % crop cut it off.
    width, height = 1280, 720
    for corner in CORNERS:
        x0, y0, x1, y1 = label_geometry(width, height, corner).box
        sides = ("left" if corner.endswith("left") else "right", "top" if corner.startswith("top") else "bottom")
        k0, k1, k2, k3 = _kept(width, height, sides, 0.10)
        assert k0 <= x0 and k1 <= y0 and x1 <= k2 and y1 <= k3, corner


@pytest.mark.parametrize("corner", CORNERS)
def test_corner_label_changes_only_its_corner(corner: str) -> None:
    frame = np.random.default_rng(7).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    out = burn_visible_label(frame, placement=corner)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = np.any(out != frame, axis=-1)
    ys, xs = np.nonzero(changed)
    assert ys.size > 2000  # a real box, not a few pixels
    top, left = corner.startswith("top"), corner.endswith("left")
    assert (ys.max() < 180) if top else (ys.min() >= 180)
    assert (xs.max() < 320) if left else (xs.min() >= 320)
    assert not np.shares_memory(out, frame)


def test_safe_label_moves_off_the_faces_it_is_told_about() -> None:
    width, height = 640, 360
    plain = label_geometry(width, height).box
    # A face right where the label would go (a close portrait's chin), then faces in both bands.
    chin = (plain[0] - 20.0, plain[1] - 60.0, plain[2] + 20.0, plain[3] + 10.0)
    moved = label_geometry(width, height, avoid=[chin]).box
    assert not _overlaps(moved, chin)
    assert moved[1] < height / 2  # the top band of the safe area
    left_face = (0.0, 0.0, 300.0, 360.0)
    beside = label_geometry(width, height, avoid=[left_face]).box
    assert not _overlaps(beside, left_face) and beside[0] >= SAFE_INSET * width - 1
    # A face everywhere: the label still goes into the safe area (it is never dropped).
    everywhere = label_geometry(width, height, avoid=[(0.0, 0.0, 640.0, 360.0)]).box
    assert everywhere == plain
    out = burn_visible_label(np.zeros((height, width, 3), np.uint8), avoid=[chin])
    assert np.any(out[: height // 2] != 0) and not np.any(out[height // 2 :] != 0)


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

    big = burn_visible_label(np.zeros((2160, 3840, 3), np.uint8), placement="top-left")
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
    for height, width in ((1920, 1080), (568, 320), (180, 320), (64, 64)):
        label = VisibleLabel(width, height)
        geometry = label.geometry
        assert geometry.x0 >= 0 and geometry.x0 + geometry.box_width <= width
        assert geometry.y0 >= 0 and geometry.y0 + geometry.box_height <= height
        out = label.apply(np.zeros((height, width, 3), np.uint8))
        assert np.any(out != 0)


def test_video_fast_path_matches_one_shot_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    label = VisibleLabel(640, 360, "top-right")
    for _ in range(3):
        frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
        assert np.array_equal(label.apply(frame), burn_visible_label(frame, placement="top-right"))
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert np.array_equal(VisibleLabel(640, 360).apply(frame), VisibleLabel(640, 360).apply(frame))


# ---- the face tag (video)


def _overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _face_path(frames: int, *, jitter: float, seed: int = 0) -> list[tuple[float, float, float, float]]:
    """A face walking left to right and back, with detector jitter of +-``jitter`` px."""
    rng = np.random.default_rng(seed)
    boxes = []
    for t in range(frames):
        cx = 640 + 350 * np.sin(t / 40)
        cy = 300 + 40 * np.sin(t / 23)
        side = 180 + 20 * np.sin(t / 31)
        noise = rng.uniform(-jitter, jitter, 4)
        boxes.append(
            tuple(float(v) for v in np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]) + noise)
        )
    return boxes


def test_face_tag_never_covers_a_face_and_stays_beside_it() -> None:
    label = VisibleLabel(1280, 720)
    tag = FaceTag(1280, 720, fps=25, label_box=label.geometry.box)
    other = (100.0, 420.0, 220.0, 560.0)  # a second face that stays put
    for face in _face_path(400, jitter=3.0):
        position = tag.update([face, other])
        assert position is not None
        box = tag.box_at(position)
        assert not _overlaps(box, face) and not _overlaps(box, other)
        assert box[0] >= 0 and box[2] <= 1280 and box[1] >= 0 and box[3] <= 720
        # Near the face: within one face size of it.
        side = face[2] - face[0]
        gap_x = max(face[0] - box[2], box[0] - face[2], 0)
        gap_y = max(face[1] - box[3], box[1] - face[3], 0)
        assert max(gap_x, gap_y) <= side


def test_face_tag_does_not_jitter_with_the_detector() -> None:
    tag = FaceTag(1280, 720, fps=25)
    still = (560.0, 200.0, 740.0, 380.0)
    rng = np.random.default_rng(1)
    positions = [tag.update([tuple(np.array(still) + rng.uniform(-4, 4, 4))]) for _ in range(200)]
    assert len(set(positions[5:])) == 1  # a face that only jitters leaves the tag where it is
    # When it really moves, the tag glides after it (a few px per frame, no jumps).
    moved = (760.0, 200.0, 940.0, 380.0)
    path = [tag.update([moved]) for _ in range(60)]
    steps = [abs(b[0] - a[0]) + abs(b[1] - a[1]) for a, b in zip(path, path[1:])]
    assert path[-1][0] > positions[-1][0] + 150 and max(steps) <= 80


def test_face_tag_holds_through_a_short_miss_then_goes() -> None:
    tag = FaceTag(640, 360, fps=10)
    face = (250.0, 60.0, 390.0, 200.0)
    first = tag.update([face])
    assert first is not None
    assert tag.update(None) == first  # faces unknown this frame: hold
    held = [tag.update([]) for _ in range(10)]
    assert all(p == first for p in held)  # up to one second
    assert tag.update([]) is None


def test_a_held_face_tag_goes_at_once_when_another_face_stands_where_the_performer_stood() -> None:
    """A hard cut from the performer to a person with no release at the same place: the tag
    held for a second beside her face, labelling her "AI-generated". Held only while no other
    face is near it; a face elsewhere in the frame leaves the hold as it was."""
    tag = FaceTag(640, 360, fps=10)
    face = (250.0, 60.0, 390.0, 200.0)
    first = tag.update([face])
    assert first is not None
    far = (20.0, 20.0, 80.0, 80.0)  # a face in the corner, well away from the tag
    assert tag.update([], avoid=[far]) == first
    bystander = (255.0, 65.0, 385.0, 195.0)  # after the cut, where the performer stood
    assert tag.update([], avoid=[bystander]) is None
    assert tag.update([face]) is not None  # the performer back: tagged again


def test_face_tag_blends_a_smaller_label_beside_the_face() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    tag = FaceTag(1280, 720)
    face = (560.0, 150.0, 740.0, 330.0)
    out = tag.apply(frame, [face])
    ys, xs = np.nonzero(out.min(axis=-1) > 200)
    assert ys.size and ys.min() > 330  # below the chin
    tag_height = ys.max() - ys.min()
    label_text = burn_visible_label(frame).min(axis=-1) > 200
    label_rows = np.nonzero(label_text.any(axis=1))[0]
    assert tag_height < label_rows.max() - label_rows.min()
    assert not np.any(out[150:330, 560:740])  # the face itself untouched


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
    with pytest.raises(ProvenanceError, match="placement"):
        burn_visible_label(np.zeros((360, 640, 3), np.uint8), placement="middle")  # type: ignore[arg-type]
    with pytest.raises(ProvenanceError, match="640x360"):
        VisibleLabel(640, 360).apply(np.zeros((480, 640, 3), np.uint8))
    with pytest.raises(ProvenanceError, match="positive"):
        VisibleLabel(0, 360)
    with pytest.raises(ProvenanceError, match="numpy"):
        burn_visible_label([[0, 0, 0]])  # type: ignore[arg-type]
    with pytest.raises(ProvenanceError, match="face box"):
        burn_visible_label(np.zeros((360, 640, 3), np.uint8), avoid=[(0, 0, 10)])  # type: ignore[list-item]
    with pytest.raises(ProvenanceError, match="face box"):
        FaceTag(640, 360).update([(0, 0, float("nan"), 10)])
