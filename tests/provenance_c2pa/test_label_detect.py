"""Finding the visible label again after what a re-upload does to it, and nowhere else."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from likeness.errors import MediaError
from likeness.media import synthetic
from likeness.provenance.label_detect import detect_visible_label
from likeness.provenance.visible_label import LABEL_TEXT, FaceTag, VisibleLabel, burn_visible_label, label_font_path

SIDES = ("left", "right", "top", "bottom")
SIDE_COMBINATIONS = [c for n in range(1, 5) for c in itertools.combinations(SIDES, n)]


@pytest.fixture(scope="module")
def frame_720p() -> np.ndarray:
    return next(iter(synthetic.animate_portrait(synthetic.astronaut(), n_frames=1, size=(1280, 720), seed=3)))


@pytest.fixture(scope="module")
def frame_1080p() -> np.ndarray:
    return next(iter(synthetic.animate_portrait(synthetic.grace_hopper(), n_frames=1, size=(1920, 1080), seed=5)))


def crop(rgb: np.ndarray, sides: tuple[str, ...], fraction: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    dx, dy = round(width * fraction), round(height * fraction)
    return np.ascontiguousarray(
        rgb[
            dy if "top" in sides else 0 : height - dy if "bottom" in sides else height,
            dx if "left" in sides else 0 : width - dx if "right" in sides else width,
        ]
    )


def to_short_side(rgb: np.ndarray, short: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = short / min(height, width)
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def letterbox_9x16(rgb: np.ndarray, width: int = 720) -> np.ndarray:
    height = width * 16 // 9
    content = cv2.resize(rgb, (width, round(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top = (height - content.shape[0]) // 2
    canvas[top : top + content.shape[0]] = content
    return canvas


def caption(rgb: np.ndarray, text: str, font_path: str, *, at: tuple[float, float] = (0.3, 0.72)) -> np.ndarray:
    """White text on a 60 % dark box, like the label but saying something else."""
    picture = Image.fromarray(rgb).convert("RGBA")
    height, width = rgb.shape[:2]
    font = ImageFont.truetype(font_path, max(14, round(0.045 * min(height, width))))
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    x, y = at[0] * width, at[1] * height
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    draw.rectangle((left - 8, top - 8, right + 8, bottom + 8), fill=(16, 16, 16, 153))
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(picture, overlay).convert("RGB"))


@pytest.mark.parametrize("fraction", [0.10, 0.20])
def test_label_is_found_after_a_crop_of_any_sides(frame_720p: np.ndarray, fraction: float) -> None:
    labelled = burn_visible_label(frame_720p)
    for sides in SIDE_COMBINATIONS:
        found = detect_visible_label(crop(labelled, sides, fraction))
        assert found.present, (sides, fraction, found)


def test_label_is_found_where_it_is_at_its_size(frame_1080p: np.ndarray) -> None:
    label = VisibleLabel(1920, 1080)
    found = detect_visible_label(label.apply(frame_1080p))
    assert found.present and found.score > 0.6 and not found.mirrored
    assert found.where is not None
    for got, expected in zip(found.where, label.geometry.box):
        assert abs(got - expected) <= 6
    assert abs(found.font_px - label.geometry.font_px) <= 0.06 * label.geometry.font_px


def test_label_is_found_after_reupload_transforms(frame_1080p: np.ndarray) -> None:
    labelled = burn_visible_label(frame_1080p)
    copies = {
        "360p": to_short_side(labelled, 360),
        "480p jpeg 60": jpeg(to_short_side(labelled, 480), 60),
        "9:16 letterbox": letterbox_9x16(labelled),
        "mirrored": np.ascontiguousarray(labelled[:, ::-1]),
        "crop 15 % + 360p + jpeg 70": jpeg(to_short_side(crop(labelled, SIDES, 0.15), 360), 70),
        "crop 20 % scaled back up": cv2.resize(crop(labelled, SIDES, 0.20), (1920, 1080)),
    }
    for name, copy in copies.items():
        found = detect_visible_label(copy)
        assert found.present, (name, found)
    assert detect_visible_label(copies["mirrored"]).mirrored


def test_face_tag_alone_is_found_when_a_reframe_cuts_the_label_off(frame_720p: np.ndarray) -> None:
    label = VisibleLabel(1280, 720)
    tag = FaceTag(1280, 720, label_box=label.geometry.box)
    face = (1000.0, 120.0, 1180.0, 300.0)  # the performer off to the right
    labelled = tag.apply(label.apply(frame_720p), [face])
    vertical = np.ascontiguousarray(labelled[:, 1280 - 405 :])  # a 9:16 reframe around the performer
    assert label.geometry.box[2] < 1280 - 405  # the main label is gone from it
    assert tag.box_at(tag.position)[0] >= 1280 - 405
    found = detect_visible_label(vertical)
    assert found.present, found


def test_only_coarse_hits_a_label_could_have_are_refined(monkeypatch: pytest.MonkeyPatch) -> None:
    from likeness.provenance import label_detect

    refined: list[float] = []
    refine = label_detect._refine

    def counted(*args, **kwargs):
        found = refine(*args, **kwargs)
        refined.append(found.score)
        return found

    monkeypatch.setattr(label_detect, "_refine", counted)
    group = synthetic.compose_group([synthetic.astronaut(), synthetic.grace_hopper()], size=(1920, 1080))
    hits = label_detect._coarse_hits(cv2.cvtColor(group, cv2.COLOR_RGB2GRAY).astype(np.float32), LABEL_TEXT)
    coarse = [hit.score for hit in label_detect._distinct(sorted(hits, key=lambda h: -h.score), 4)]
    kept = sum(score >= label_detect.FINE_MIN_COARSE for score in coarse)
    assert 0 < kept < len(coarse) == label_detect.FINE_CANDIDATES  # this picture has both kinds
    assert not detect_visible_label(group).present and len(refined) == kept
    refined.clear()
    monkeypatch.setattr(label_detect, "FINE_MIN_COARSE", 0.0)
    assert not detect_visible_label(group).present and len(refined) == label_detect.FINE_CANDIDATES
    monkeypatch.undo()
    assert detect_visible_label(burn_visible_label(group)).present


def test_the_screen_finds_what_correlating_every_coarse_image_whole_finds(
    frame_1080p: np.ndarray, frame_720p: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from likeness.provenance import label_detect

    labelled = burn_visible_label(frame_1080p)
    pictures = {
        "1080p labelled": labelled,
        "crop 20 % + 720p": to_short_side(crop(labelled, SIDES, 0.20), 720),
        "9:16 letterbox": letterbox_9x16(labelled),
        "mirrored, jpeg 60": jpeg(np.ascontiguousarray(labelled[:, ::-1]), 60),
        "tag": FaceTag(1280, 720).apply(frame_720p, [(540.0, 160.0, 740.0, 360.0)]),
        "unlabelled 1080p": frame_1080p,
        "caption": caption(frame_1080p, "AI 기술 세미나 · AI seminar", str(label_font_path())),
    }
    coarse = label_detect._template(label_detect.COARSE_FONT_PX, label_detect.LABEL_TEXT, blur=True).shape
    at_coarse_resolution: list[tuple[int, ...]] = []
    correlate = label_detect._correlate

    def recorded(image: np.ndarray, *templates: np.ndarray) -> list[np.ndarray]:
        if templates[0].shape == coarse:
            at_coarse_resolution.append(image.shape)
        return correlate(image, *templates)

    monkeypatch.setattr(label_detect, "_correlate", recorded)
    screened = {name: detect_visible_label(picture) for name, picture in pictures.items()}
    # Coarse images of SCREEN_MIN_PIXELS or more are correlated only in windows around the screen's spots.
    window = (coarse[0] + 2 * label_detect.SCREEN_REACH, coarse[1] + 2 * label_detect.SCREEN_REACH)
    assert any(s[0] <= window[0] and s[1] <= window[1] for s in at_coarse_resolution)
    assert all(s[0] * s[1] < label_detect.SCREEN_MIN_PIXELS for s in at_coarse_resolution)
    monkeypatch.setattr(label_detect, "SCREEN_MIN_PIXELS", 10**9)  # every coarse image whole
    for name, picture in pictures.items():
        whole = detect_visible_label(picture)
        assert screened[name].present == whole.present, (name, screened[name], whole)
        assert screened[name].where == whole.where and abs(screened[name].score - whole.score) < 1e-4, name


def test_nothing_is_found_on_unlabelled_pictures(frame_720p: np.ndarray, frame_1080p: np.ndarray) -> None:
    font = str(label_font_path())
    pictures = {
        "astronaut": synthetic.astronaut(),
        "grace hopper": synthetic.grace_hopper(),
        "720p frame": frame_720p,
        "1080p frame 360p": to_short_side(frame_1080p, 360),
        "9:16 letterbox": letterbox_9x16(frame_1080p),
        "group": synthetic.compose_group([synthetic.astronaut(), synthetic.grace_hopper()]),
        "caption, same font": caption(frame_720p, "오늘의 무대 · Today's stage", font),
        "korean words, same font": caption(frame_1080p, "AI 기술 세미나 · AI seminar", font),
        "black": np.zeros((360, 640, 3), np.uint8),
        "noise": np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    }
    for name, picture in pictures.items():
        found = detect_visible_label(picture)
        assert not found.present, (name, found)


def test_clip_frames_without_the_label_are_clean() -> None:
    frames = [
        *list(synthetic.animate_portrait(synthetic.astronaut(), n_frames=30, size=(640, 360), seed=2))[::6],
        *list(synthetic.animate_portrait(synthetic.grace_hopper(), n_frames=30, size=(360, 640), seed=9))[::10],
    ]
    assert not any(detect_visible_label(frame).present for frame in frames)


def test_grey_pictures_and_bad_input() -> None:
    grey = cv2.cvtColor(burn_visible_label(synthetic.astronaut()), cv2.COLOR_RGB2GRAY)
    assert detect_visible_label(grey).present
    assert not detect_visible_label(np.zeros((4, 4, 3), np.uint8)).present  # too small to hold it
    with pytest.raises(MediaError, match="uint8"):
        detect_visible_label(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(MediaError, match="channels"):
        detect_visible_label(np.zeros((100, 100, 4), np.uint8))
    with pytest.raises(MediaError, match="uint8"):
        detect_visible_label([[1, 2, 3]])  # type: ignore[arg-type]


def test_letterbox_bars_are_left_out_of_the_search() -> None:
    from likeness.provenance.label_detect import content_box

    picture = np.zeros((1280, 720), np.float32)
    picture[300:900] = np.random.default_rng(0).uniform(0, 255, (600, 720))
    x0, y0, x1, y1 = content_box(picture)
    assert (x0, x1) == (0, 720) and 290 <= y0 <= 300 and 900 <= y1 <= 910
    pillarbox = np.full((360, 640), 30, np.float32)
    pillarbox[:, 100:540] = np.random.default_rng(1).uniform(0, 255, (360, 440))
    assert content_box(pillarbox)[0] >= 90 and content_box(pillarbox)[2] <= 550
    assert content_box(np.zeros((100, 100), np.float32)) == (0, 0, 100, 100)  # all flat: no bars
    # Found in a letterbox, the label's box is given in the whole picture's pixels.
    square = burn_visible_label(synthetic.astronaut())
    boxed = np.zeros((910, 512, 3), np.uint8)
    boxed[199:711] = square
    found = detect_visible_label(boxed)
    direct = detect_visible_label(square)
    assert found.present and abs(found.where[1] - (direct.where[1] + 199)) <= 2
