"""The lazy faceset index: bounded memory, same behaviour as the parsed one, tamper checks."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from likeness.errors import FacesetError
from likeness.faceset import load_faceset
from likeness.faceset.format import FaceIndex, FaceRecord, FacesetManifest, index_sha256, read_index
from likeness.train import faceset_samples

SIZE = 32


def _base_record(rng: np.random.Generator) -> dict:
    record = FaceRecord(
        file="faces/000000.png",
        source="clip.mp4",
        frame_index=0,
        timestamp_s=0.0,
        track_id=1,
        landmarks=rng.uniform(0, SIZE, (478, 2)).astype(np.float32),
        affine=np.array([[0.5, 0.0, -10.0], [0.0, 0.5, -20.0]]),
        yaw=0.0,
        pitch=1.0,
        roll=0.5,
        sharpness=100.0,
        face_size=120.0,
        eye_openness=0.2,
        mouth_openness=0.1,
        brightness=0.5,
        identity_distance=0.3,
        grant_id="grant-1",
        image_sha256="",
        perceptual_hash="",
    )
    return record.as_dict()


def write_index_faceset(root: Path, n: int, *, seed: int = 0, blank_every: int = 0) -> tuple[Path, np.ndarray]:
    """A faceset of ``n`` records with one-byte placeholder crops (the index is what is tested).

    Returns the folder and the float32 (n,) yaws written. ``image_sha256`` is empty, so crops are
    not hash-checked: this builds the index side of a 50k-face faceset cheaply.
    """
    rng = np.random.default_rng(seed)
    base = _base_record(rng)
    (root / "faces").mkdir(parents=True)
    yaws = np.round(rng.uniform(-60, 60, n), 4)
    with open(root / "index.jsonl", "w", encoding="utf-8") as handle:
        for i in range(n):
            name = f"faces/{i:06d}.png"
            (root / name).write_bytes(b"\0")
            base["file"], base["yaw"], base["frame_index"] = name, float(yaws[i]), i
            base["landmarks"][0] = [float(i % SIZE), float(i // SIZE % SIZE)]
            handle.write(json.dumps(base, separators=(",", ":")) + "\n")
            if blank_every and i % blank_every == 0:
                handle.write("\n")
    manifest = FacesetManifest(
        faceset_sha256=index_sha256(root / "index.jsonl"),
        subject_id="subject-1",
        subject_slug="mina",
        grant_id="grant-1",
        release_id=None,
        org_id="org-1",
        created_at="2025-01-01T00:00:00Z",
        counts={"faces": n},
        size=SIZE,
    )
    (root / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return root, yaws.astype(np.float32)


def test_lazy_index_behaves_like_the_parsed_records(tmp_path: Path) -> None:
    root, yaws = write_index_faceset(tmp_path / "fs", 60, blank_every=7)
    faceset = load_faceset(root)
    parsed = read_index(root / "index.jsonl")
    assert isinstance(faceset.records, FaceIndex)
    assert len(faceset) == len(parsed) == 60
    assert [r.file for r in faceset] == [r.file for r in parsed]
    assert faceset[-1].file == "faces/000059.png" and faceset[np.int64(3)].frame_index == 3
    assert [r.frame_index for r in faceset.records[10:13]] == [10, 11, 12]
    assert np.array_equal(faceset.landmarks(), np.stack([r.landmarks for r in parsed]))
    assert faceset.landmarks().dtype == np.float32 and faceset.landmarks().shape == (60, 478, 2)
    assert np.allclose(faceset.yaws(), yaws, atol=1e-4)
    assert faceset.image_path(5) == root / "faces/000005.png"
    assert faceset.mask(faceset[5]).shape == (SIZE, SIZE)
    with pytest.raises(IndexError):
        faceset[60]
    with pytest.raises(TypeError):
        faceset["0"]  # type: ignore[index]
    # Training reads the yaw range from the kept column, not by re-parsing every record.
    assert faceset_samples(faceset).yaw_range() == pytest.approx([float(yaws.min()), float(yaws.max())], abs=1e-4)


def test_loading_a_large_index_keeps_a_few_bytes_per_face(tmp_path: Path) -> None:
    n = 300
    root, _ = write_index_faceset(tmp_path / "fs", n)
    tracemalloc.start()
    try:
        faceset = load_faceset(root)
        _, peak = tracemalloc.get_traced_memory()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    parsed_landmarks_bytes = n * 478 * 2 * 4  # what the parsed records' landmarks alone would hold
    assert faceset.records.nbytes <= 32 * n
    assert held < parsed_landmarks_bytes / 4, f"{held} bytes held after loading {n} faces"
    assert peak < parsed_landmarks_bytes / 2, f"{peak} bytes peak while loading {n} faces"
    assert faceset[n - 1].frame_index == n - 1


def test_index_edited_after_loading_is_refused(tmp_path: Path) -> None:
    root, _ = write_index_faceset(tmp_path / "fs", 5)
    faceset = load_faceset(root)
    index = root / "index.jsonl"
    text = index.read_text(encoding="utf-8")
    index.write_text(text.replace('"track_id":1', '"track_id":7', 1), encoding="utf-8")
    with pytest.raises(FacesetError, match="changed after the faceset was loaded"):
        faceset[0]


def test_malformed_line_is_named_and_an_edited_index_is_reported_as_altered(tmp_path: Path) -> None:
    root, _ = write_index_faceset(tmp_path / "fs", 4)
    index = root / "index.jsonl"
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = '{"file": "faces/000002.png"}\n'
    index.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(FacesetError, match="faceset altered"):
        load_faceset(root)
    with pytest.raises(FacesetError, match=r"index.jsonl:3: missing field"):
        FaceIndex.scan(index)


def test_missing_crop_is_still_caught_at_load(tmp_path: Path) -> None:
    root, _ = write_index_faceset(tmp_path / "fs", 4)
    (root / "faces/000003.png").unlink()
    with pytest.raises(FacesetError, match="000003.png: face image missing"):
        load_faceset(root)
