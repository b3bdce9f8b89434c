"""Animated GIF, WebP and APNG are verified as clips; hostile animations get typed error verdicts."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from PIL import Image

from likeness.media.synthetic import astronaut, grace_hopper
from likeness.verify.pipeline import verify_path

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")

FORMATS = {"gif": ("GIF", {}), "webp": ("WEBP", {"quality": 85}), "png": ("PNG", {})}


@pytest.fixture
def mina_world(consent_world):
    """Only mina (astronaut) is enrolled."""
    from likeness.faceset import enroll_reference_photos

    report = enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")])
    assert report.added == 1
    return consent_world


def write_animation(path, frames, *, delay_ms=250):
    fmt, options = FORMATS[path.suffix[1:]]
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=delay_ms, loop=0, **options)
    return path


def stranger_then_mina(count: int = 16) -> list[np.ndarray]:
    """2 s of a stranger on the left, then 2 s of mina on the right (4 s at 4 fps, 768x512): a
    single still would show only the stranger (the first frame)."""
    stranger = np.ascontiguousarray(grace_hopper()[44:556])
    frames = []
    for i in range(count):
        canvas = np.full((512, 768, 3), 200, np.uint8)
        if i < count // 2:
            canvas[:, : 512 - 2 * i] = stranger[:, 2 * i :]
        else:
            shift = 2 * (i - count // 2)
            canvas[:, 256 + shift :] = astronaut()[:, : 512 - shift]
        frames.append(canvas)
    return frames


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_animated_image_is_sampled_as_a_clip(mina_world, tmp_path, suffix):
    path = write_animation(tmp_path / f"reaction.{suffix}", stranger_then_mina())
    result = verify_path(mina_world.workspace, path)
    assert result.media_type == "image"
    assert result.faces.frames_analysed == 4 and result.faces.frame_timestamps_s == pytest.approx((0, 1, 2, 3))
    assert result.verdict.code == "enrolled-artist-unlabelled", result.verdict
    matched = result.faces.matched
    assert [f.match.slug for f in matched] == ["mina"]
    assert min(matched[0].timestamps_s) >= 2.0  # mina appears in the second half only
    assert result.watermark is not None and len(result.watermark.frame_timestamps_s) == 4


def tiny_gif(frames: int, *, width: int = 1, height: int = 1) -> bytes:
    import struct

    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6))
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    )
    return bytes(out + frame * frames + b"\x3b")


def test_hostile_animations_get_error_verdicts_quickly(mina_world, tmp_path):
    many = tmp_path / "many_frames.gif"
    many.write_bytes(tiny_gif(50_000))
    huge = tmp_path / "huge_canvas.gif"
    huge.write_bytes(tiny_gif(3, width=60000, height=60000))
    grows = tmp_path / "grows_the_canvas.gif"  # a 1x1 screen, frame 1 of 5000x5000 (trial 9)
    data = tiny_gif(3)
    second = data.index(b"\x2c", data.index(b"\x2c") + 1)
    grows.write_bytes(data[: second + 1] + struct.pack("<HHHH", 0, 0, 5000, 5000) + data[second + 9 :])
    started = time.perf_counter()
    cases = ((many, "more than 10000 frames"), (huge, "animation too large"), (grows, "a frame reaches 5000x5000"))
    for path, reason in cases:
        result = verify_path(mina_world.workspace, path)
        assert result.verdict.code == "error", result.verdict
        assert any(reason in e.reason for e in result.errors), result.errors
    assert time.perf_counter() - started < 20
    assert not mina_world.workspace.ledger.events("verification.completed")


def test_truncated_animated_gif_is_judged_on_the_frames_before_the_damage(mina_world, tmp_path):
    frames = [np.roll(astronaut(), 2 * i, axis=1) for i in range(16)]
    path = write_animation(tmp_path / "full.gif", frames)
    data = path.read_bytes()
    cut = tmp_path / "cut.gif"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    result = verify_path(mina_world.workspace, cut)
    assert result.verdict.code == "enrolled-artist-unlabelled", result.verdict
    assert 1 <= result.faces.frames_analysed < 4
    read_errors = [e.reason for e in result.errors if e.stage == "read"]
    assert read_errors and ("truncated" in read_errors[0] or "stopped" in read_errors[0])
    event = mina_world.workspace.ledger.events("verification.completed")[-1]
    assert event.payload["partial"] is True


def test_an_apng_with_zero_delays_is_sampled_as_browsers_play_it(mina_world, tmp_path):
    # Trial 9: APNG delays were taken as written, so 0 ms frames made a 0-second animation and only
    # its last frame (a blank card) was analysed, while browsers play each frame for 100 ms.
    blank = np.full((512, 512, 3), 200, np.uint8)
    frames = [np.roll(astronaut(), 2 * i, axis=1) for i in range(20)] + [blank]
    path = write_animation(tmp_path / "flash.png", frames, delay_ms=0)
    result = verify_path(mina_world.workspace, path)
    assert result.verdict.code == "enrolled-artist-unlabelled", result.verdict
    assert result.faces.frames_analysed >= 2


def test_a_face_after_an_apng_default_image_is_analysed(mina_world, tmp_path):
    # Trial 9: a default image outside the animation (browsers never show it) shifted every
    # sample one frame back, so the face shown for 5 s after a 0.1 s blank frame went unseen.
    blank, grey = (Image.fromarray(np.full((512, 512, 3), level, np.uint8)) for level in (200, 190))
    path = tmp_path / "hidden.png"
    face = Image.fromarray(np.ascontiguousarray(astronaut()))
    blank.save(path, format="PNG", save_all=True, append_images=[grey, face], default_image=True, duration=[100, 5000])
    result = verify_path(mina_world.workspace, path)
    assert result.verdict.code == "enrolled-artist-unlabelled", result.verdict
    # With a single animation frame, the file was read as a still: its default image.
    single = tmp_path / "single.png"
    blank.save(single, format="PNG", save_all=True, append_images=[face], default_image=True, duration=[5000])
    result = verify_path(mina_world.workspace, single)
    assert result.verdict.code == "enrolled-artist-unlabelled", result.verdict
