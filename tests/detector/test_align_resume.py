"""Detector training's alignment keeps each face it finishes: a Ctrl-C during alignment used to
keep nothing, and every rerun aligned every image again (the slow first stage of training)."""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.detector import train as detector_train
from likeness.detector.aligned_store import ALIGNED_FOLDER, NOT_KEPT, AlignedFaceStore
from likeness.detector.train import AlignedFaceSample, AlignmentInterrupted, align_each, align_recipe
from likeness.errors import ModelError
from likeness.media import read_image, write_image
from tests.detector.handmade import write_portraits

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="module")
def portraits(tmp_path_factory) -> list[Path]:
    """Four portraits and a faceless picture, as a training folder holds them."""
    folder = tmp_path_factory.mktemp("portraits")
    paths = write_portraits(folder / "real", 4)
    gradient = np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None].repeat(192, 0).repeat(3, 2)
    paths.insert(2, write_image(folder / "real" / "landscape.png", gradient))
    return paths


@pytest.fixture(scope="module")
def straight(portraits) -> list[AlignedFaceSample | None]:
    """An uninterrupted alignment, with no store."""
    aligned = align_each(portraits, [p.stem for p in portraits])
    assert [s is None for s in aligned] == [False, False, True, False, False]  # the landscape has no face
    return aligned


class Aligner:
    """Counts the images aligned (not taken from the store); ``ctrl_c_at``: the image, counted
    from 1, inside whose alignment a Ctrl-C arrives."""

    def __init__(self, monkeypatch, ctrl_c_at: int | None = None) -> None:
        self.aligned: list[str] = []
        original = detector_train.align_largest

        def align_largest(detector, rgb, *, identity):
            self.aligned.append(identity)
            if len(self.aligned) == ctrl_c_at:
                os.kill(os.getpid(), signal.SIGINT)
            return original(detector, rgb, identity=identity)

        monkeypatch.setattr(detector_train, "align_largest", align_largest)


def _same(got: list[AlignedFaceSample | None], expected: list[AlignedFaceSample | None]) -> None:
    assert [s is None for s in got] == [s is None for s in expected]
    for mine, theirs in zip(got, expected, strict=True):
        if mine is not None and theirs is not None:
            assert mine.identity == theirs.identity
            np.testing.assert_array_equal(mine.image, theirs.image)
            np.testing.assert_array_equal(mine.landmarks, theirs.landmarks)
            assert mine.landmarks.dtype == theirs.landmarks.dtype


def _store(tmp_path: Path, recipe: str | None = None) -> AlignedFaceStore:
    return AlignedFaceStore.open(tmp_path / ALIGNED_FOLDER, recipe=recipe or align_recipe())


def test_a_ctrl_c_keeps_the_faces_aligned_and_a_rerun_aligns_only_the_rest(
    portraits, straight, tmp_path, monkeypatch
) -> None:
    identities = [p.stem for p in portraits]
    stopped = Aligner(monkeypatch, ctrl_c_at=2)
    with pytest.raises(AlignmentInterrupted) as interrupted:
        align_each(portraits, identities, store=_store(tmp_path))
    # the image in flight is finished and kept: the first Ctrl-C stops after it
    assert (interrupted.value.done, interrupted.value.total) == (2, 5)
    assert interrupted.value.folder == tmp_path / ALIGNED_FOLDER and stopped.aligned == identities[:2]

    rerun = Aligner(monkeypatch)
    _same(align_each(portraits, identities, store=_store(tmp_path)), straight)
    assert rerun.aligned == identities[2:]

    again = Aligner(monkeypatch)
    _same(align_each(portraits, identities, store=_store(tmp_path)), straight)
    assert again.aligned == []  # a face, and that an image has none, are both kept


def test_a_second_ctrl_c_stops_at_once_and_keeps_what_was_finished(portraits, tmp_path, monkeypatch) -> None:
    original = detector_train.align_largest
    calls: list[str] = []

    def interrupted_inside(detector, rgb, *, identity):
        calls.append(identity)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a second Ctrl-C does, inside the face detector
        return original(detector, rgb, identity=identity)

    monkeypatch.setattr(detector_train, "align_largest", interrupted_inside)
    with pytest.raises(AlignmentInterrupted) as interrupted:
        align_each(portraits, [p.stem for p in portraits], store=_store(tmp_path))
    assert interrupted.value.done == 2
    assert [_store(tmp_path).read(_digest(p)) is NOT_KEPT for p in portraits] == [False, False, True, True, True]


def _digest(path: Path) -> str:
    from likeness.digests import sha256_file

    return sha256_file(path)


def test_a_kept_face_is_used_only_for_the_same_bytes_and_recipe(portraits, straight, tmp_path, monkeypatch) -> None:
    images = tmp_path / "images"
    images.mkdir()
    copies = [images / p.name for p in portraits]
    for source, copy in zip(portraits, copies, strict=True):
        copy.write_bytes(source.read_bytes())
    identities = [p.stem for p in copies]
    align_each(copies, identities, store=_store(tmp_path))

    # An edited image is aligned again (its kept face is of other bytes); the others are not.
    write_image(copies[0], np.ascontiguousarray(read_image(copies[0])[:, ::-1]))
    edited = Aligner(monkeypatch)
    got = align_each(copies, identities, store=_store(tmp_path))
    assert edited.aligned == [identities[0]]
    assert got[0] is not None and straight[0] is not None and not np.array_equal(got[0].image, straight[0].image)

    # An unreadable or foreign entry is aligned again, and replaced.
    entry = _store(tmp_path).entry(_digest(copies[3]))
    entry.write_bytes(b"not an npz")
    _store(tmp_path).keep(_digest(copies[4]), (np.zeros((4, 4, 3), np.float32), np.zeros((478, 2), np.float32)))
    damaged = Aligner(monkeypatch)
    _same(align_each(copies, identities, store=_store(tmp_path))[3:], straight[3:])
    assert damaged.aligned == identities[3:]

    # Another recipe (crop size, coverage, face detector or likeness release): every image again.
    other = Aligner(monkeypatch)
    align_each(copies, identities, store=_store(tmp_path, recipe='{"size": 256}'))
    assert other.aligned == identities


def test_an_entry_that_is_not_a_kept_face_is_not_read(tmp_path) -> None:
    """A link, a huge file, pickled objects, a torn write, a crop of another shape, a FIFO: each is
    aligned again instead (``NOT_KEPT``), never loaded as a face or run."""
    store = _store(tmp_path)
    face = (np.zeros((128, 128, 3), np.uint8), np.zeros((478, 2), np.float32))
    store.keep("a" * 64, face)
    good = store.entry("a" * 64)
    assert isinstance(store.read("a" * 64), tuple) and good.stat().st_mode & 0o777 == 0o600
    store.entry("b" * 64).symlink_to(good)
    store.entry("c" * 64).write_bytes(good.read_bytes() + b"\0" * (1024 * 1024))
    np.savez(store.entry("d" * 64), recipe=np.array(store.recipe), found=np.array(True), image=np.array([face], object))
    store.entry("e" * 64).write_bytes(good.read_bytes()[:1000])
    store.keep("f" * 64, (np.zeros((128, 96, 3), np.uint8), face[1]))
    store.keep("0" * 64, (face[0], np.full((478, 2), np.nan, np.float32)))
    big = np.zeros((1024, 1024, 3), np.uint8)  # 3 MB that deflate to a few kB
    kept = {"recipe": np.array(store.recipe), "found": np.array(True), "landmarks": face[1]}
    np.savez_compressed(store.entry("1" * 64), image=big, **kept)
    assert store.entry("1" * 64).stat().st_size < 100_000
    os.mkfifo(store.entry("2" * 64))  # read without waiting for a writer that never comes
    assert all(store.read(key * 64) is NOT_KEPT for key in "bcdef012")


def test_a_store_in_place_of_a_file_or_link_is_refused(tmp_path) -> None:
    (tmp_path / ALIGNED_FOLDER).write_bytes(b"")
    with pytest.raises(ModelError, match=f"{tmp_path / ALIGNED_FOLDER}: not a folder"):
        _store(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / ALIGNED_FOLDER).symlink_to(elsewhere)
    with pytest.raises(ModelError, match="not a folder"):
        _store(tmp_path / "linked")


def test_ctrl_c_while_aligning_says_what_was_kept_and_the_rerun_aligns_the_rest(tmp_path, monkeypatch) -> None:
    """The CLI: one line, exit 130, no traceback; the rerun trains and removes the kept crops."""
    write_portraits(tmp_path / "real", 14)
    out = tmp_path / "out"
    args = ["detector", "train", "--real", str(tmp_path / "real"), "--out", str(out), "--steps", "1"]
    stopped = Aligner(monkeypatch, ctrl_c_at=5)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, result.output
    resume = shlex.join(["likeness", *args, "--threads", "1", "--target-fpr", "0.05"])
    assert result.output.strip().splitlines()[-1] == (
        f"interrupted while aligning faces: 5 of 14 image(s) aligned and kept in {out / ALIGNED_FOLDER}; "
        f"continue with: {resume}"
    )
    assert "Traceback" not in result.output and len(stopped.aligned) == 5
    assert not (out / "checkpoint.pt").exists()

    rerun = Aligner(monkeypatch)
    resumed = CliRunner().invoke(app, shlex.split(resume)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert rerun.aligned == [f"person{k:02d}" for k in range(5, 14)]
    assert (out / "detector.onnx").is_file() and not (out / ALIGNED_FOLDER).exists()


def test_a_face_that_cannot_be_kept_is_a_model_error_naming_its_entry(tmp_path, monkeypatch) -> None:
    from tests.durability import failing_placements

    store = _store(tmp_path)
    failing_placements(monkeypatch)  # a full or failing disk
    with pytest.raises(ModelError, match=f"{store.entry('a' * 64)}: cannot keep this aligned face"):
        store.keep("a" * 64, None)
    assert list(store.folder.iterdir()) == []
