"""The explicit-content check cannot be turned off through render options."""

from __future__ import annotations

import pytest

from likeness.errors import ConsentError
from likeness.render import content
from likeness.render.pipeline import MIN_CONTENT_SAMPLES, RenderOptions, render_media


class _CountingExplicitDetector:
    calls = 0

    def detect(self, rgb):
        type(self).calls += 1
        return [{"class": "FEMALE_GENITALIA_EXPOSED", "score": 0.95, "box": [0, 0, 8, 8]}]


@pytest.mark.parametrize("samples", [0, -5, 1])
def test_zero_or_tiny_sample_counts_still_run_the_content_check(
    trained_world, performer_clip, tmp_path, monkeypatch, samples
):
    _CountingExplicitDetector.calls = 0
    monkeypatch.setattr(content, "ContentDetector", _CountingExplicitDetector)
    out = tmp_path / "out.mp4"
    with pytest.raises(ConsentError) as refused:
        render_media(
            trained_world.workspace,
            trained_world.model_dir,
            performer_clip,
            out,
            use="music_video",
            org="studio",
            options=RenderOptions(content_samples=samples),
        )
    assert refused.value.reason == "prohibited_content"
    assert _CountingExplicitDetector.calls >= 1
    assert not out.exists()
    assert MIN_CONTENT_SAMPLES >= 8


def test_the_check_sees_at_least_the_floor_of_distinct_frames_spread_over_the_clip(
    trained_world, performer_clip, tmp_path, monkeypatch
):
    seen: list[bytes] = []

    class _RecordingCleanDetector:
        def detect(self, rgb):
            seen.append(rgb.tobytes())
            return []

    monkeypatch.setattr(content, "ContentDetector", _RecordingCleanDetector)
    report = render_media(
        trained_world.workspace,
        trained_world.model_dir,
        performer_clip,
        tmp_path / "out.mp4",
        use="music_video",
        org="studio",
        options=RenderOptions(content_samples=0),
    )
    # 30 frames of a moving head: the samples (seeked, not decoded one by one) are all different.
    assert report.content_check["frames_checked"] == len(seen) >= MIN_CONTENT_SAMPLES
    assert len(set(seen)) == len(seen)
