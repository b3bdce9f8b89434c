"""Resume state of an extraction: what ``.progress.json`` holds, and opening, checkpointing,
truncating and discarding an unfinished run's folder.

Work is checkpointed atomically (index flushed and synced, then the state written through a
temporary file), so an interrupted run resumes where it stopped when called again with the
same ``out`` folder, options, subject and grant.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from likeness import strict_json
from likeness.durable import remove_stale_temporaries, write_atomic
from likeness.errors import FacesetError
from likeness.faceset import selection
from likeness.faceset.format import FACES_DIR, INDEX_NAME, MANIFEST_NAME

PROGRESS_NAME = ".progress.json"


@dataclass
class RunState:
    """Everything a checkpoint must restore; saved as ``.progress.json``."""

    subject_id: str
    consent_id: str
    shaping: dict[str, Any]
    finished_inputs: list[str] = field(default_factory=list)
    next_frame: dict[str, int] = field(default_factory=dict)
    index_lines: int = 0
    next_track_id: int = 0
    frames_read: int = 0
    faces_seen: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(selection.REJECTION_REASONS, 0))
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)
    inputs_used: list[str] = field(default_factory=list)
    # Per-input tallies of the input in progress, so a resumed video is judged as a whole.
    input_seen: dict[str, int] = field(default_factory=dict)
    input_kept: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: list[dict[str, str]] = field(default_factory=list)
    #: Near-duplicates dropped per input (all of them, unlike the capped list above).
    duplicates_by_input: dict[str, int] = field(default_factory=dict)
    #: Inputs read as clips, so the report groups their frames whatever the files are named.
    clip_inputs: list[str] = field(default_factory=list)
    #: Faces dropped as another rights holder's subject's, per subject slug:
    #: ``{"org": enrolling organisation, "faces": count, "first": the first face's label}``.
    other_holders: dict[str, dict[str, Any]] = field(default_factory=dict)


def write_checkpoint(out_dir: Path, state: RunState, index: IO[str]) -> None:
    """Make the index durable, then record ``state`` atomically: a crash leaves either the
    previous checkpoint or this one."""
    index.flush()
    os.fsync(index.fileno())
    write_atomic(out_dir / PROGRESS_NAME, json.dumps(asdict(state), indent=1).encode("utf-8"))


def open_run(out_dir: Path, subject_id: str, consent_id: str, shaping: dict[str, Any]) -> tuple[RunState, bool]:
    """Create ``out_dir`` or reopen an unfinished run there; returns (state, resumed)."""
    progress_path = out_dir / PROGRESS_NAME
    if (out_dir / MANIFEST_NAME).exists():
        raise FacesetError(f"{out_dir}: a finished faceset is already there; choose another --out")
    if progress_path.exists():
        try:
            raw = strict_json.loads(progress_path.read_text(encoding="utf-8"))
            state = RunState(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise FacesetError(
                f"{progress_path}: unreadable checkpoint ({exc}); delete the folder to start over"
            ) from None
        if state.subject_id != subject_id or state.consent_id != consent_id:
            raise FacesetError(
                f"{out_dir}: holds an unfinished extraction for another subject or grant; choose another --out"
            )
        if state.shaping != shaping:
            raise FacesetError(
                f"{out_dir}: unfinished extraction used options {state.shaping}; "
                f"resume with the same options (got {shaping})"
            )
        truncate_to_checkpoint(out_dir, state.index_lines)
        return state, True
    if out_dir.exists() and not out_dir.is_dir():
        raise FacesetError(f"{out_dir}: not a folder; --out names a new folder for the faceset")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FacesetError(f"{out_dir}: folder is not empty; choose a new folder for the faceset")
    try:
        (out_dir / FACES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacesetError(f"{out_dir}: cannot create the faceset folder ({exc})") from None
    (out_dir / INDEX_NAME).touch()
    return RunState(subject_id=subject_id, consent_id=consent_id, shaping=shaping), False


def truncate_to_checkpoint(out_dir: Path, index_lines: int) -> None:
    """Drop index lines and crops written after the last checkpoint (work that will be redone)."""
    index_path = out_dir / INDEX_NAME
    lines = index_path.read_text(encoding="utf-8").splitlines(keepends=True) if index_path.exists() else []
    if len(lines) < index_lines:
        raise FacesetError(f"{index_path}: shorter than its checkpoint; delete the folder to start over")
    write_atomic(index_path, "".join(lines[:index_lines]).encode("utf-8"))
    faces_dir = out_dir / FACES_DIR
    faces_dir.mkdir(exist_ok=True)
    for crop in faces_dir.iterdir():
        stem = crop.stem
        if stem.isdigit() and int(stem) >= index_lines:
            crop.unlink()


def discard_unfinished(out_dir: Path) -> None:
    """Remove what this run wrote (crops, index, checkpoint); never anything else."""
    shutil.rmtree(out_dir / FACES_DIR, ignore_errors=True)
    for name in (INDEX_NAME, PROGRESS_NAME):
        (out_dir / name).unlink(missing_ok=True)
        remove_stale_temporaries(out_dir / name)
    try:
        out_dir.rmdir()
    except OSError:
        pass
