"""Track ids that survive a resume, output timestamps that stay valid (content-check sampling: test_render_content_sampling.py)."""

from __future__ import annotations

import pytest

from likeness.render.frame import TrackIds
from likeness.render.pipeline import _OutputClock


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
