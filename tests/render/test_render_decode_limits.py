"""A render reads its target within the workspace's configured ``video_*`` limits (the defaults
would let this 30-frame clip through); enrolment, extraction and scans are in
tests/media/test_decode_limits_configured.py."""

from __future__ import annotations

import pytest

from likeness.errors import MediaError
from tests.media.test_decode_limits_configured import LIMIT, limit_frames


def test_a_render_honours_the_configured_frame_limit(trained_world, performer_clip, tmp_path):
    from likeness.render import RenderOptions, render_media

    limit_frames(trained_world.workspace)
    with pytest.raises(MediaError, match=LIMIT):
        render_media(
            trained_world.workspace,
            trained_world.model_dir,
            performer_clip,
            tmp_path / "out.mp4",
            use="music_video",
            org="studio",
            options=RenderOptions(),
        )
    assert not (tmp_path / "out.mp4").exists()
