"""Invisible watermark under what platforms do to re-uploads: downscaled copies kept small,
letterbox / pillarbox to another aspect ratio, crops of 20 % per side, mirroring, JPEG; unmarked
media stays unmarked and the number of CRC-32 trials per read stays bounded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from likeness.media.synthetic import grace_hopper
from likeness.provenance import watermark as wm
from likeness.provenance.watermark import (
    MAX_DECODES,
    TILE_SIZE,
    WatermarkEmbedder,
    extract_watermark,
    extract_watermark_frames,
    tile_period,
)

PAYLOAD = bytes.fromhex("0badc0de5eed1e55")


def fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop ``rgb`` to the aspect of ``width`` x ``height`` and resize: a render's frame."""
    h, w = rgb.shape[:2]
    target_h = round(w * height / width)
    if target_h <= h:
        y0 = (h - target_h) // 2
        rgb = rgb[y0 : y0 + target_h]
    else:
        target_w = round(h * width / height)
        x0 = (w - target_w) // 2
        rgb = rgb[:, x0 : x0 + target_w]
    interpolation = cv2.INTER_AREA if rgb.shape[1] > width else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interpolation))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def rescaled(rgb: np.ndarray, factor: float) -> np.ndarray:
    """A copy at ``factor`` of the size, kept at that size (what a re-upload does)."""
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)


def padded(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` fitted into a black ``width`` x ``height`` frame (letterbox / pillarbox)."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    size = (round(w * scale), round(h * scale))
    inner = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - size[1]) // 2, (width - size[0]) // 2
    out[y0 : y0 + size[1], x0 : x0 + size[0]] = inner
    return out


@pytest.fixture(scope="module")
def marked_540p() -> np.ndarray:
    """A 960x540 portrait render with the mark (tiles of 192 px)."""
    return WatermarkEmbedder(PAYLOAD, 960, 540).embed(fit(skdata.astronaut(), 960, 540))


def test_larger_frames_carry_larger_tiles() -> None:
    assert tile_period(640, 360) == TILE_SIZE == tile_period(320, 240)
    assert tile_period(1920, 1080) == 3 * TILE_SIZE == tile_period(1080, 1920)
    assert WatermarkEmbedder(PAYLOAD, 960, 540).period == pytest.approx(192.0)
    # A v1 mark (128 px tiles at any size) is still written on request and still read.
    v1 = WatermarkEmbedder(PAYLOAD, 960, 540, period=TILE_SIZE).embed(fit(grace_hopper(), 960, 540))
    reading = extract_watermark(v1)
    assert reading.payload == PAYLOAD and reading.period == pytest.approx(TILE_SIZE, rel=0.01)


@pytest.mark.parametrize("short_side", [360, 270])
def test_downscaled_copy_kept_small(marked_540p: np.ndarray, short_side: int) -> None:
    small = rescaled(marked_540p, short_side / 540)
    reading = extract_watermark(small)
    assert reading.payload == PAYLOAD
    assert reading.period == pytest.approx(192 * short_side / 540, rel=0.01)


def test_vertical_letterbox_and_square(marked_540p: np.ndarray) -> None:
    assert extract_watermark(padded(marked_540p, 540, 960)).payload == PAYLOAD  # 16:9 -> 9:16
    assert extract_watermark(padded(marked_540p, 600, 600)).payload == PAYLOAD  # 16:9 -> 1:1


def test_vertical_render_pillarboxed() -> None:
    marked = WatermarkEmbedder(PAYLOAD, 405, 720).embed(fit(grace_hopper(), 405, 720))
    assert extract_watermark(padded(marked, 854, 480)).payload == PAYLOAD  # 9:16 -> 16:9 at 480p


def test_crop_20_percent_per_side_of_a_smaller_copy(marked_540p: np.ndarray) -> None:
    copy = rescaled(marked_540p, 0.75)
    h, w = copy.shape[:2]
    cropped = np.ascontiguousarray(copy[round(0.2 * h) : h - round(0.2 * h), round(0.2 * w) : w - round(0.15 * w)])
    assert extract_watermark(cropped).payload == PAYLOAD


def test_mirrored(marked_540p: np.ndarray) -> None:
    reading = extract_watermark(np.ascontiguousarray(marked_540p[:, ::-1]))
    assert reading.payload == PAYLOAD and reading.mirrored
    assert not extract_watermark(marked_540p).mirrored


def test_jpeg_of_a_half_size_copy(marked_540p: np.ndarray) -> None:
    assert extract_watermark(jpeg(rescaled(marked_540p, 0.5), 60)).payload == PAYLOAD


def test_clip_letterboxed_and_downscaled() -> None:
    embedder = WatermarkEmbedder(PAYLOAD, 768, 432)
    frames = [embedder.embed(fit(image, 768, 432)) for image in (skdata.astronaut(), grace_hopper()) * 3]
    copies = [jpeg(padded(rgb[:, ::-1], 360, 640), 70) for rgb in frames]
    assert extract_watermark_frames(copies).payload == PAYLOAD


@pytest.mark.parametrize("transform", ["downscale", "letterbox", "mirror", "crop", "jpeg"])
def test_unmarked_copies_read_as_no_mark(transform: str) -> None:
    pictures = [
        fit(skdata.astronaut(), 960, 540),
        fit(skdata.coffee(), 960, 540),
        fit(grace_hopper(), 640, 360),
        fit(skdata.chelsea(), 854, 480),
    ]
    for rgb in pictures:
        copy = {
            "downscale": lambda x: rescaled(x, 0.5),
            "letterbox": lambda x: padded(x, 405, 720),
            "mirror": lambda x: np.ascontiguousarray(x[:, ::-1]),
            "crop": lambda x: np.ascontiguousarray(x[40:-40, 90:-60]),
            "jpeg": lambda x: jpeg(rescaled(x, 0.75), 40),
        }[transform](rgb)
        assert extract_watermark(copy).payload is None
    # A clip of black bars and flat frames is not a mark either.
    assert extract_watermark(np.zeros((720, 1280, 3), np.uint8)).payload is None
    assert extract_watermark_frames([padded(p, 405, 720) for p in pictures[:2]] * 2).payload is None


def test_crc_trials_per_read_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The false-mark bound counts CRC-32 trials: even with the sync gate (and a still's screen)
    removed, one read of an image or a clip makes at most MAX_DECODES of them."""
    calls = []
    original_decode = wm.decode_payload
    original_sync = wm._sync_candidates

    def counting_decode(soft: np.ndarray) -> bytes | None:
        calls.append(1)
        return original_decode(soft)

    monkeypatch.setattr(wm, "decode_payload", counting_decode)
    monkeypatch.setattr(
        wm,
        "_sync_candidates",
        lambda folded, threshold=0.0, count=3: original_sync(folded, threshold=-np.inf, count=count),
    )
    monkeypatch.setattr(wm, "SCREEN_THRESHOLD", -np.inf)
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert extract_watermark(noise).payload is None
    assert 0 < len(calls) <= MAX_DECODES
    calls.clear()
    assert extract_watermark_frames([noise, noise[::-1].copy(), noise[:, ::-1].copy()]).payload is None
    assert 0 < len(calls) <= MAX_DECODES
    # A clip whose later frames follow the first (ECC finds their motion) also reads its
    # host-cancelled first frame, whose trials count within the same cap.
    calls.clear()
    jittered = [np.clip(noise + rng.integers(-8, 9, noise.shape), 0, 255).astype(np.uint8) for _ in range(4)]
    assert extract_watermark_frames(jittered).payload is None
    assert 0 < len(calls) <= MAX_DECODES
