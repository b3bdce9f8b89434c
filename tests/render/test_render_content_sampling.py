"""Which frames of a video the content check sees: at least one per second (and the floor),
plus the first frame after every cut or change of scene, so a short scene between two cuts
cannot hide between evenly spaced samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from likeness.errors import ConsentError
from likeness.media import DecodeLimits, VideoEncoder
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper
from likeness.render import content
from likeness.render.content import ContentSampler, content_sample_interval, frame_signature, sample_indices
from likeness.render.pipeline import MIN_CONTENT_SAMPLES, _content_frames, render_media

FPS = 10
SIZE = (320, 180)
MAGENTA = (230, 20, 210)
# The hidden scene: 0.5 s between two cuts, between the 1 s samples and away from the 8 even ones.
HIDDEN = range(43, 48)


def _clip_frames(seconds: float, hidden: range = HIDDEN) -> list[np.ndarray]:
    frames = list(animate_portrait(astronaut(), n_frames=int(seconds * FPS), size=SIZE, seed=2))
    for index in hidden:
        frames[index] = np.full((SIZE[1], SIZE[0], 3), MAGENTA, np.uint8)
    return frames


def _picked(frames: list[np.ndarray], *, floor: int = MIN_CONTENT_SAMPLES) -> dict[int, str]:
    sampler = ContentSampler(interval_s=content_sample_interval(len(frames) / FPS, floor=floor))
    picks = {i: sampler.pick(i / FPS, frame_signature(rgb)) for i, rgb in enumerate(frames)}
    return {i: why for i, why in picks.items() if why is not None}


def _is_magenta(rgb: np.ndarray) -> bool:
    return bool(np.abs(rgb.reshape(-1, 3).mean(axis=0) - MAGENTA).max() < 20)


@pytest.fixture(scope="module")
def hidden_scene_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 10 fps of a moving portrait with 0.5 s of flat magenta at 4.3-4.8 s."""
    path = tmp_path_factory.mktemp("clips") / "hidden.mp4"
    with VideoEncoder(path, width=SIZE[0], height=SIZE[1], fps=FPS) as encoder:
        for rgb in _clip_frames(10.0):
            encoder.write(rgb)
    return path


def test_even_samples_and_one_per_second_both_miss_the_hidden_scene() -> None:
    # Why the cut detector is needed: the old plan (8 even samples) and a 1 s grid both miss it.
    assert not set(sample_indices(100, 8)) & set(HIDDEN)
    assert not set(range(0, 100, FPS)) & set(HIDDEN)


def test_the_first_frame_after_each_cut_is_picked() -> None:
    picked = _picked(_clip_frames(10.0))
    assert picked[HIDDEN.start] == "cut"
    assert picked[HIDDEN.stop] == "cut"  # and the cut back
    assert sum(why == "time" for why in picked.values()) == 10
    assert len(picked) <= 14  # slow head motion alone triggers nothing else


def test_a_dissolve_into_new_content_is_picked_once_it_has_drifted() -> None:
    frames = _clip_frames(10.0, hidden=range(0))
    other = list(animate_portrait(grace_hopper(), n_frames=10, size=SIZE, seed=4))
    # Between the samples at 5 s and 6 s: 0.5 s dissolving in, 0.4 s dissolving out; no step is a cut.
    for index, weight in zip(range(51, 60), (0.2, 0.4, 0.6, 0.8, 1.0, 0.75, 0.5, 0.25, 0.0)):
        frames[index] = np.uint8(np.rint((1 - weight) * frames[index] + weight * other[index - 51]))
    picked = _picked(frames)
    assert "cut" not in picked.values()
    assert any(why == "change" and 52 <= i <= 58 for i, why in picked.items()), picked


@pytest.mark.parametrize(("seconds", "fps", "expected"), [(60.0, 30, 60), (60.0, 24, 60), (1.0, 30, 8), (0.5, 25, 8)])
def test_samples_scale_with_length_and_keep_the_floor(seconds: float, fps: int, expected: int) -> None:
    sampler = ContentSampler(interval_s=content_sample_interval(seconds, floor=MIN_CONTENT_SAMPLES))
    still = frame_signature(np.full((36, 64, 3), 90, np.uint8))
    picks = [sampler.pick(i / fps, still) for i in range(int(round(seconds * fps)))]
    assert expected <= sum(p is not None for p in picks) <= expected + 1


def test_content_frames_of_a_real_clip_include_the_hidden_scene(hidden_scene_clip: Path) -> None:
    frames = list(_content_frames(hidden_scene_clip, 100, 10.0, MIN_CONTENT_SAMPLES, DecodeLimits()))
    assert any(_is_magenta(rgb) for rgb in frames)
    assert 10 <= len(frames) <= 14
    assert max(frames[0].shape[:2]) == SIZE[0]  # small clips are not upscaled


def test_a_60_s_clip_is_sampled_at_least_once_per_second(tmp_path: Path) -> None:
    clip = tmp_path / "minute.mp4"
    with VideoEncoder(clip, width=64, height=36, fps=5, crf=35) as encoder:
        for i in range(300):
            encoder.write(np.full((36, 64, 3), 60 + (i // 50) * 5, np.uint8))
    frames = list(_content_frames(clip, 300, 60.0, MIN_CONTENT_SAMPLES, DecodeLimits()))
    assert 60 <= len(frames) <= 66


def test_every_frame_of_a_clip_shorter_than_the_floor_is_checked(tmp_path: Path) -> None:
    clip = tmp_path / "short.mp4"
    with VideoEncoder(clip, width=64, height=36, fps=25) as encoder:
        for _i in range(6):
            encoder.write(np.full((36, 64, 3), 80, np.uint8))
    assert len(list(_content_frames(clip, 6, 0.24, MIN_CONTENT_SAMPLES, DecodeLimits()))) == 6


def test_render_refuses_a_clip_whose_only_explicit_frames_are_a_short_scene(
    trained_world, hidden_scene_clip, tmp_path, monkeypatch
):
    seen: list[bool] = []

    class _FlagsMagenta:
        """Stands in for NudeNet: 'explicit' exactly on the hidden scene's frames."""

        def detect(self, rgb):
            seen.append(_is_magenta(rgb))
            return [{"class": "BUTTOCKS_EXPOSED", "score": 0.9, "box": [0, 0, 8, 8]}] if seen[-1] else []

    monkeypatch.setattr(content, "ContentDetector", _FlagsMagenta)
    out = tmp_path / "out.mp4"
    with pytest.raises(ConsentError) as refused:
        render_media(
            trained_world.workspace, trained_world.model_dir, hidden_scene_clip, out, use="music_video", org="studio"
        )
    assert refused.value.reason == "prohibited_content"
    assert seen[-1] and len(seen) >= 5  # refused at the hidden scene, after the 1 s samples before it
    assert not out.exists()
