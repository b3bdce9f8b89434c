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
def test_zero_or_tiny_sample_counts_still_run_the_content_check(trained_world, performer_clip, tmp_path,
                                                                monkeypatch, samples):
    _CountingExplicitDetector.calls = 0
    monkeypatch.setattr(content, "ContentDetector", _CountingExplicitDetector)
    out = tmp_path / "out.mp4"
    with pytest.raises(ConsentError) as refused:
        render_media(trained_world.workspace, trained_world.model_dir, performer_clip, out,
                     use="music_video", org="studio", options=RenderOptions(content_samples=samples))
    assert refused.value.reason == "prohibited_content"
    assert _CountingExplicitDetector.calls >= 1
    assert not out.exists()
    assert MIN_CONTENT_SAMPLES >= 8
