"""A clip's analysis that ends early (an exception while its frames are analysed, a deadline
checked between frames) stops the decoder thread at its next packet, not at its next sampled
frame, which a crafted clip puts thousands of decoded frames away (trial finding 3)."""

from __future__ import annotations

import time

import pytest

from likeness.verify.pipeline import Verifier
from tests.media.crafted_clips import skip_frame_clip

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


class Boom(Exception):
    """Raised by the test's face detector on the first frame."""


class ExplodingDetector:
    def __init__(self) -> None:
        self.called_at: float | None = None

    def detect(self, rgb):
        self.called_at = time.monotonic()
        raise Boom("the analysis stopped")


def test_an_analysis_that_stops_early_stops_the_decoder_at_its_next_packet(workspace, tmp_path, monkeypatch):
    # 30,000 frames of 4K: sampled targets are 75 s (1,875 reference frames, seconds of
    # decoding) apart, and the decoder runs one sample ahead of the analysis.
    crafted = skip_frame_clip(tmp_path / "skip4k.mp4", 30_000, size=(3840, 2160))
    verifier = Verifier(workspace)
    detector = ExplodingDetector()
    monkeypatch.setattr(verifier, "_detector", lambda media_type: detector)
    try:
        with pytest.raises(Boom):
            verifier.verify(crafted)
        # Before: the decoder thread was joined only once it reached the next sampled frame.
        assert detector.called_at is not None and time.monotonic() - detector.called_at < 1.0
    finally:
        verifier.close()
