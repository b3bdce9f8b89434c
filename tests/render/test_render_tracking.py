"""Track ids that survive a resume, output timestamps that stay valid, content-check sampling."""

from __future__ import annotations

import math

import pytest

from likeness.render.frame import TrackIds
from likeness.render.pipeline import _content_sample_indices, _OutputClock


def test_track_ids_are_stable_and_survive_a_restore() -> None:
    tracks = TrackIds()
    assert tracks.update([(0, 0, 100, 100), (300, 0, 400, 100)]) == [0, 1]
    assert tracks.update([(305, 2, 405, 102), (4, 2, 104, 102)]) == [1, 0]  # order-independent
    restored = TrackIds.from_state(tracks.state())
    assert restored.active_ids == {0, 1}
    # Continuing faces keep their ids; a new face gets the next unused id, never a reused one.
    assert restored.update([(8, 4, 108, 104), (600, 0, 700, 100)]) == [0, 2]
    assert tracks.update([(8, 4, 108, 104), (600, 0, 700, 100)]) == [0, 2]


def test_track_ids_retire_after_missed_frames() -> None:
    tracks = TrackIds(max_missed=2)
    tracks.update([(0, 0, 50, 50)])
    for _ in range(3):
        tracks.update([])
    assert tracks.active_ids == set()
    assert tracks.update([(0, 0, 50, 50)]) == [1]


def test_output_clock_keeps_source_times_and_repairs_bad_ones() -> None:
    clock = _OutputClock(25.0)
    assert [clock.next(t) for t in (0.0, 0.04, 0.08)] == [0.0, 0.04, 0.08]
    assert not clock.variable
    assert clock.next(0.08) == pytest.approx(0.12)  # duplicate timestamp -> one period later
    assert clock.next(0.05) == pytest.approx(0.16)  # backwards -> one period later
    assert clock.next(0.5) == 0.5
    assert clock.variable
    assert _OutputClock(30.0).next(-0.02) == 0.0  # negative start clamped


@pytest.mark.parametrize("frames", [1, 5, 8, 9, 90, 300, 7201])
def test_content_samples_are_spread_on_a_common_step(frames: int) -> None:
    indices = _content_sample_indices(frames, 8)
    assert len(indices) == min(frames, 8)
    assert indices[0] == 0 and indices[-1] < frames
    step = math.gcd(*indices) if len(indices) > 1 else 1
    assert all(i % step == 0 for i in indices)
    if frames > 8:
        assert indices[-1] >= frames - 1 - step  # the last sample sits within one step of the end
