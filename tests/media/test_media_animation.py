"""Animated GIF, WebP and APNG read as clips, and hostile animations refused with MediaError."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from likeness.errors import MediaError
from likeness.media import read_image
from likeness.media.animation import (
    AnimationTimeline,
    animation_timeline,
    sample_animation_frames,
    sampled_indices,
)
from likeness.media.synthetic import astronaut

FORMATS = {"gif": ("GIF", {}), "webp": ("WEBP", {"quality": 80}), "png": ("PNG", {})}


def shifted_frames(count: int, side: int = 128) -> list[np.ndarray]:
    base = np.ascontiguousarray(astronaut()[:: 512 // side, :: 512 // side])
    return [np.roll(base, 4 * i, axis=1) for i in range(count)]


def write_animation(path: Path, frames: list[np.ndarray], *, delay_ms: int = 100) -> Path:
    fmt, options = FORMATS[path.suffix[1:]]
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=delay_ms, loop=0, **options)
    return path


def tiny_gif(frames: int, *, width: int = 1, height: int = 1, trailer: bool = True) -> bytes:
    """A GIF of ``frames`` 1x1 frames on a ``width`` x ``height`` canvas, written by hand."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6))
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 100 ms
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
        + b"\x02\x02\x44\x01\x00"
    )  # LZW data of one pixel
    out += frame * frames
    if trailer:
        out += b"\x3b"
    return bytes(out)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_timeline_and_samples_of_each_format(tmp_path, suffix):
    frames = shifted_frames(30)
    path = write_animation(tmp_path / f"clip.{suffix}", frames)
    timeline = animation_timeline(path)
    assert timeline is not None and timeline.container == suffix
    assert (timeline.width, timeline.height, timeline.frames) == (128, 128, 30)
    assert timeline.duration_s == pytest.approx(3.0)
    sampled = list(sample_animation_frames(path))
    assert [round(f.pts_s, 3) for f in sampled] == [0.0, 1.0, 2.0]
    for frame in sampled:
        expected = frames[round(frame.pts_s * 10)].astype(np.int16)
        assert frame.rgb.shape == (128, 128, 3) and frame.rgb.dtype == np.uint8
        assert np.abs(frame.rgb.astype(np.int16) - expected).mean() < 8  # the right frame


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_a_still_is_not_an_animation(tmp_path, suffix):
    path = tmp_path / f"still.{suffix}"
    Image.fromarray(shifted_frames(1)[0]).save(path, format=FORMATS[suffix][0])
    assert animation_timeline(path) is None


def test_zero_delays_play_as_100_ms(tmp_path):
    path = tmp_path / "fast.gif"
    path.write_bytes(tiny_gif(20).replace(b"\x21\xf9\x04\x00\x0a\x00", b"\x21\xf9\x04\x00\x00\x00"))
    timeline = animation_timeline(path)
    assert timeline.delays_s == (0.1,) * 20


def test_sampled_indices_spread_over_long_animations():
    timeline = AnimationTimeline("gif", 8, 8, (0.04,) * 1000)  # 40 s at 25 fps
    indices = sampled_indices(timeline, every_s=1.0, max_frames=16)
    assert len(indices) == 16 and indices[0] == 0 and indices[-1] > 900


# ---- hostile animations: typed errors, quickly, never a hang


def test_huge_frame_count_is_refused_before_decoding(tmp_path):
    path = tmp_path / "million.gif"
    path.write_bytes(tiny_gif(20_001))
    started = time.perf_counter()
    with pytest.raises(MediaError, match="more than 10000 frames"):
        animation_timeline(path)
    with pytest.raises(MediaError, match="more than 10000 frames"):
        sample_animation_frames(path)
    assert time.perf_counter() - started < 5


def test_huge_declared_canvas_is_refused(tmp_path):
    path = tmp_path / "bomb.gif"
    path.write_bytes(tiny_gif(3, width=65535, height=65535))
    with pytest.raises(MediaError, match="animation too large"):
        animation_timeline(path)


def test_a_frame_reaching_past_a_tiny_canvas_is_refused_by_the_canvas_it_grows(tmp_path):
    # Trial 9: a 1x1 screen passed the canvas check, while frame 1's descriptor (a few bytes)
    # made Pillow grow the canvas to hold it: a 130 KB GIF with a 13300x13300 frame took 10 GB.
    data = tiny_gif(3)
    first = data.index(b"\x2c", data.index(b"\x2c") + 1)  # frame 1's image descriptor
    grown = data[: first + 1] + struct.pack("<HHHH", 0, 0, 5000, 5000) + data[first + 9 :]
    path = tmp_path / "grows.gif"
    path.write_bytes(grown)
    with pytest.raises(MediaError, match="a frame reaches 5000x5000 on a 1x1 canvas"):
        animation_timeline(path)
    with pytest.raises(MediaError, match="a frame reaches 5000x5000"):
        sample_animation_frames(path)


def past_the_screen_gif(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """Three 80x80 frames on a GIF whose logical screen says 64x64 (some encoders write these)."""
    frames = shifted_frames(3, side=128)
    frames = [np.ascontiguousarray(f[:80, :80]) for f in frames]
    path = write_animation(tmp_path / "wide.gif", frames, delay_ms=1000)
    data = bytearray(path.read_bytes())
    data[6:10] = struct.pack("<HH", 64, 64)
    path.write_bytes(bytes(data))
    return path, frames


def test_frames_reaching_past_the_screen_are_shown_clipped_to_it(tmp_path):
    path, frames = past_the_screen_gif(tmp_path)
    sampled = list(sample_animation_frames(path))  # before: MediaError "frame is 80x80, canvas 64x64"
    assert len(sampled) == 3
    for frame, original in zip(sampled, frames, strict=True):
        assert frame.rgb.shape == (64, 64, 3)  # what a browser shows: the frame clipped to the screen
        assert np.abs(frame.rgb.astype(np.int16) - original[:64, :64]).mean() < 8
    timeline = animation_timeline(path)
    assert (timeline.width, timeline.height, timeline.decoded_pixels) == (64, 64, 80 * 80)


def test_a_canvas_grown_past_the_walked_size_is_refused_before_its_frame_decodes(tmp_path):
    path, _ = past_the_screen_gif(tmp_path)
    understated = AnimationTimeline("gif", 64, 64, (1.0, 1.0, 1.0))  # as if the walk had missed the frame
    with pytest.raises(MediaError, match="grows the canvas to 80x80"):
        list(sample_animation_frames(path, timeline=understated))


def test_an_apng_default_image_outside_the_animation_is_not_sampled(tmp_path):
    # Trial 9: Pillow counts such a default image as frame 0, browsers never show it; the timeline
    # lists the animation's frames, so every sample was the frame before the one meant.
    default, first, second = (np.full((64, 64, 3), grey, np.uint8) for grey in (200, 150, 100))
    path = tmp_path / "default.png"
    images = [Image.fromarray(picture) for picture in (default, first, second)]
    images[0].save(
        path, format="PNG", save_all=True, append_images=images[1:], default_image=True, duration=[1000, 1000]
    )
    sampled = list(sample_animation_frames(path))
    assert [int(frame.rgb.mean()) for frame in sampled] == [150, 100]
    assert [frame.pts_s for frame in sampled] == [0.0, 1.0]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_apng_with_too_many_frame_chunks_is_refused(tmp_path):
    fctl = png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 1, 1, 0, 0, 1, 10, 0, 0))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + png_chunk(b"acTL", struct.pack(">II", 2**31 - 1, 0))
        + fctl * 10_001
        + png_chunk(b"IEND", b"")
    )
    path = tmp_path / "many.png"
    path.write_bytes(data)
    with pytest.raises(MediaError, match="more than 10000 frames"):
        animation_timeline(path)


def test_webp_with_too_many_frames_is_refused(tmp_path):
    anmf = b"ANMF" + struct.pack("<I", 16) + bytes(12) + (100).to_bytes(3, "little") + b"\x00"
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x02\x00\x00\x00" + (0).to_bytes(3, "little") * 2
    body = b"WEBP" + vp8x + anmf * 10_001
    path = tmp_path / "many.webp"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(MediaError, match="more than 10000 frames"):
        animation_timeline(path)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_truncated_animation_yields_frames_before_the_damage_then_a_media_error(tmp_path, suffix):
    path = write_animation(tmp_path / f"clip.{suffix}", shifted_frames(40))
    data = path.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    timeline = animation_timeline(cut)
    assert timeline is not None and timeline.truncated
    frames = []
    with pytest.raises(MediaError) as raised:
        for frame in sample_animation_frames(cut):
            frames.append(frame)
    if suffix == "webp":
        # libwebp's demuxer refuses a cut file as a whole: an error before the first frame.
        assert not frames and "corrupt animation" in raised.value.reason
        return
    assert frames and frames[0].pts_s == 0.0
    assert "truncated" in raised.value.reason or "stopped" in raised.value.reason


def test_decoding_budget_drops_late_samples_with_a_media_error(tmp_path):
    path = write_animation(tmp_path / "long.gif", shifted_frames(60), delay_ms=100)
    frames = []
    with pytest.raises(MediaError, match="decoding budget"):
        for frame in sample_animation_frames(path, max_decode_pixels=128 * 128 * 25):
            frames.append(frame)
    assert [f.pts_s for f in frames] == pytest.approx([0.0, 1.0, 2.0])


def test_corrupt_frame_data_is_a_media_error(tmp_path):
    path = write_animation(tmp_path / "clip.gif", shifted_frames(20))
    data = bytearray(path.read_bytes())
    # Garble the LZW data of the later frames (after the first third of the file).
    for i in range(len(data) // 3, len(data) - 1, 7):
        data[i] = 0xFF
    broken = tmp_path / "broken.gif"
    broken.write_bytes(bytes(data))
    try:
        timeline = animation_timeline(broken)
    except MediaError:
        return  # refused by the walk: fine
    if timeline is None:
        return
    with pytest.raises(MediaError):
        list(sample_animation_frames(broken))


def with_declared_frames(data: bytes, declared: int) -> bytes:
    """``data`` (a PNG) with its acTL chunk's frame count set to ``declared``, CRC made good."""
    at = data.index(b"acTL") - 4
    plays = data[at + 12 : at + 16]
    return data[:at] + png_chunk(b"acTL", struct.pack(">I", declared) + plays) + data[at + 20 :]


@pytest.mark.parametrize("declared", [1, 2, 1000, 2**31])
def test_an_apng_is_sampled_by_the_frames_it_holds_not_its_declared_count(tmp_path, declared):
    # The acTL count must equal the fcTL chunks (APNG spec); Pillow seeks no further than the
    # count, so 2 declared of 6 held stopped the samples at frame 2 with an error.
    greys = (250, 210, 170, 130, 90, 50)
    written = write_animation(
        tmp_path / "held.png", [np.full((32, 32, 3), grey, np.uint8) for grey in greys], delay_ms=1000
    )
    path = tmp_path / "declared.png"
    path.write_bytes(with_declared_frames(written.read_bytes(), declared))
    timeline = animation_timeline(path)
    assert timeline is not None and timeline.frames == 6
    sampled = list(sample_animation_frames(path, max_frames=16))
    assert [int(frame.rgb.mean()) for frame in sampled] == list(greys)


def test_an_apng_declaring_no_frames_is_read_as_its_still_image(tmp_path):
    # 0 frames is no valid acTL: browsers and Pillow show the PNG's image as a still.
    written = write_animation(tmp_path / "held.png", [np.full((32, 32, 3), g, np.uint8) for g in (250, 50)])
    path = tmp_path / "none.png"
    path.write_bytes(with_declared_frames(written.read_bytes(), 0))
    assert animation_timeline(path) is None
    assert int(read_image(path).mean()) == 250
