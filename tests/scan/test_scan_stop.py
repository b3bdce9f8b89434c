"""A scan's process pool stops at once when the scan is stopped (Ctrl-C), and a terminal's Ctrl-C
reaching its workers is the parent's to answer. Before, the pool waited for every file in flight
(``shutdown(wait=True)``): ``likeness scan`` on 8 s clips took 4 to 10 s to exit after Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from likeness.config import Settings
from likeness.scan import engines
from likeness.scan.engines import LocalPoolEngine, WorkerSetup
from likeness.scan.sources import ScanItem
from tests.scan.stand_ins import timed_file


def _pool_engine(tmp_path: Path, monkeypatch) -> LocalPoolEngine:
    # Workers start as in a scan, with a home that holds no workspace: their verifier is not
    # built (the reason is kept for a file that needs it), and the stand-in needs none.
    monkeypatch.setattr(engines, "scan_in_worker", timed_file)
    setup = WorkerSetup(Settings(home=tmp_path / "nowhere"), (), None, None)  # type: ignore[arg-type]
    return LocalPoolEngine(setup, workers=2)


def _pids_once_started(markers: list[Path]) -> list[int]:
    given_up = time.monotonic() + 60
    while not all(m.exists() and m.read_text() for m in markers):
        assert time.monotonic() < given_up, "the workers never took their files"
        time.sleep(0.05)
    return [int(m.read_text()) for m in markers]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_stopped_scan_ends_its_workers_instead_of_waiting_for_their_files(tmp_path, monkeypatch) -> None:
    engine = _pool_engine(tmp_path, monkeypatch)
    fast, *slow = (tmp_path / name for name in ("fast", "slow-1", "slow-2"))
    items = [ScanItem(str(fast), "0")] + [ScanItem(str(marker), "20") for marker in slow]
    with engine:
        outcomes = engine.run(items, version="v")
        assert next(outcomes) == str(fast)
        pids = _pids_once_started(slow)  # both workers are 20 s into a file
        stopping = time.monotonic()
        outcomes.close()  # what a Ctrl-C in the engine or in the caller's loop does
        took = time.monotonic() - stopping
    assert took < 5, f"the stop waited {took:.1f} s for the files in flight"
    assert all(_gone(pid) for pid in pids)


def test_a_ctrl_c_reaching_the_workers_is_left_to_the_parent(tmp_path, monkeypatch) -> None:
    """A terminal's Ctrl-C reaches every process of the command. A worker interrupted in its file
    sent the ``KeyboardInterrupt`` back as that file's result, and one waiting for a file died
    printing a traceback; the parent alone now decides (and ends them, the test above)."""
    engine = _pool_engine(tmp_path, monkeypatch)
    fast, *markers = (tmp_path / name for name in ("fast", "one", "two"))
    with engine:
        outcomes = engine.run([ScanItem(str(fast), "0")] + [ScanItem(str(m), "1.5") for m in markers], version="v")
        assert next(outcomes) == str(fast)
        for pid in _pids_once_started(markers):  # each worker in a file
            os.kill(pid, signal.SIGINT)
        try:
            finished = sorted(outcomes)
        except KeyboardInterrupt:
            pytest.fail("a worker's Ctrl-C came back as its file's result")
    assert finished == sorted(str(m) for m in markers)
