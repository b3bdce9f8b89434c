"""The extraction's checkpoint (``likeness.faceset.resume``) is written whole: a power loss leaves
the previous ``progress.json`` or this one, and a write that fails leaves no temporary."""

from __future__ import annotations

from pathlib import Path

import pytest

from likeness.faceset.format import INDEX_NAME
from likeness.faceset.resume import PROGRESS_NAME, open_run, write_checkpoint
from tests.durability import assert_written_whole, failing_placements, hidden_files, watch_disk


def _run(out_dir: Path):
    state, resumed = open_run(out_dir, "s" * 32, "g" * 32, {"min_face": 64})
    assert not resumed
    return state


def test_the_extraction_checkpoint_is_fsynced_placed_and_its_folder_fsynced(tmp_path: Path, monkeypatch) -> None:
    out_dir = tmp_path / "faces"
    state = _run(out_dir)
    log = watch_disk(monkeypatch)
    with open(out_dir / INDEX_NAME, "a", encoding="utf-8") as index:
        write_checkpoint(out_dir, state, index)
    assert_written_whole(log, out_dir / PROGRESS_NAME)


def test_a_checkpoint_that_cannot_be_placed_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    out_dir = tmp_path / "faces"
    state = _run(out_dir)
    failing_placements(monkeypatch)
    with open(out_dir / INDEX_NAME, "a", encoding="utf-8") as index, pytest.raises(OSError, match="Input/output"):
        write_checkpoint(out_dir, state, index)
    assert hidden_files(out_dir) == [] and not (out_dir / PROGRESS_NAME).exists()
