"""Interlaced footage decoded as progressive pictures (``iter_video_frames(deinterlace=True)``):
no combing, one instant a frame, the source's indices and times; progressive footage untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from likeness.media import iter_video_frames, probe_video, synthetic
from tests.media.crafted_clips import comb_energy, interlaced_clip

SIZE = (160, 96)
BAR, STEP = 24, 6  # a bright bar 24 px wide moving 6 px a field


def bar_instants(count: int) -> list[np.ndarray]:
    """A bright bar moving right on a dark plate, one picture per field."""
    width, height = SIZE
    instants = []
    for n in range(count):
        picture = np.full((height, width, 3), 40, np.uint8)
        picture[:, 10 + STEP * n : 10 + STEP * n + BAR] = 220
        instants.append(picture)
    return instants


def bar_left_edge(rgb: np.ndarray) -> float:
    """Column where the bar starts, from the middle rows' brightness profile."""
    profile = rgb[20:-20].astype(np.float32).mean(axis=(0, 2))
    return float(np.argmax(profile > 130))


@pytest.mark.parametrize("top_first", [True, False])
def test_an_interlaced_clip_comes_out_as_one_instant_a_frame(tmp_path: Path, top_first: bool) -> None:
    """Before, each frame came out woven: the bar's edges combed (the [1,-2,1] energy of a field
    6 px apart), and a face swapped on it held one instant in both fields."""
    source = interlaced_clip(tmp_path / "i.mp4", bar_instants(16), top_first=top_first)
    assert probe_video(source).field_order == ("tt" if top_first else "bb")
    woven = list(iter_video_frames(source, exact=True))
    pictures = list(iter_video_frames(source, exact=True, deinterlace=True))
    assert [p.index for p in pictures] == [w.index for w in woven] == list(range(8))
    assert [p.pts_s for p in pictures] == [w.pts_s for w in woven]
    for picture, frame in zip(pictures, woven, strict=True):
        assert comb_energy(frame.rgb) > 10.0  # the source combs
        assert comb_energy(picture.rgb) < 0.1 * comb_energy(frame.rgb), f"frame {frame.index} still combs"
        # The picture shows the instant of the field shown first (frame k: instant 2k).
        assert abs(bar_left_edge(picture.rgb) - (10 + STEP * 2 * picture.index)) <= 1


def test_progressive_footage_is_untouched(tmp_path: Path) -> None:
    clip = synthetic.write_clip(tmp_path / "p.mp4", synthetic.astronaut(), seconds=0.4, fps=25, size=SIZE, seed=4)
    assert probe_video(clip).field_order is None
    plain = list(iter_video_frames(clip, exact=True))
    asked = list(iter_video_frames(clip, exact=True, deinterlace=True))
    assert len(asked) == len(plain) == 10
    for a, b in zip(asked, plain, strict=True):
        assert (a.index, a.pts_s) == (b.index, b.pts_s)
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_start_and_step_match_a_full_deinterlaced_decode(tmp_path: Path) -> None:
    source = interlaced_clip(tmp_path / "i.mp4", bar_instants(16))
    full = {p.index: p for p in iter_video_frames(source, deinterlace=True)}
    picked = list(iter_video_frames(source, deinterlace=True, start=3, step=2))
    assert [p.index for p in picked] == [3, 5, 7]
    for picture in picked:
        np.testing.assert_array_equal(picture.rgb, full[picture.index].rgb)
