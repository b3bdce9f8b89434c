"""Faceset on disk: records round-trip, the manifest hash binds index and pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from likeness.digests import sha256_file
from likeness.errors import FacesetError
from likeness.faceset import FaceRecord, load_faceset
from likeness.faceset.format import (
    FacesetManifest,
    index_sha256,
    read_index,
)
from likeness.media import write_image

SIZE = 64


def make_record(rng: np.random.Generator, file: str, image_sha256: str, **overrides) -> FaceRecord:
    values = dict(
        file=file,
        source="clip.mp4",
        frame_index=int(rng.integers(0, 1000)),
        timestamp_s=float(rng.uniform(0, 40)),
        track_id=int(rng.integers(0, 5)),
        landmarks=rng.uniform(0, SIZE, (478, 2)).astype(np.float32),
        affine=np.array([[0.5, 0.01, -10.0], [-0.01, 0.5, -20.0]]),
        yaw=float(rng.uniform(-60, 60)),
        pitch=float(rng.uniform(-30, 30)),
        roll=float(rng.uniform(-10, 10)),
        sharpness=float(rng.uniform(50, 500)),
        face_size=float(rng.uniform(80, 400)),
        eye_openness=float(rng.uniform(0.05, 0.35)),
        mouth_openness=float(rng.uniform(0, 0.6)),
        brightness=float(rng.uniform(0.2, 0.8)),
        identity_distance=float(rng.uniform(0, 0.45)),
        grant_id="grant-1",
        image_sha256=image_sha256,
        perceptual_hash="00ff00ff00ff00ff",
    )
    values.update(overrides)
    return FaceRecord(**values)


def build_faceset(root: Path, n: int = 4, *, seed: int = 0, records_override=None) -> Path:
    """A faceset folder written with the format module's own pieces (no extraction)."""
    rng = np.random.default_rng(seed)
    (root / "faces").mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"faces/{i:06d}.png"
        write_image(root / name, rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        overrides = records_override(i) if records_override else {}
        lines.append(make_record(rng, name, sha256_file(root / name), **overrides).to_json())
    (root / "index.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
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
    return root


def test_record_round_trips_through_json() -> None:
    rng = np.random.default_rng(1)
    record = make_record(rng, "faces/000000.png", "ab" * 32)
    parsed = FaceRecord.from_mapping(json.loads(record.to_json()))
    assert parsed.landmarks.dtype == np.float32 and parsed.landmarks.shape == (478, 2)
    assert np.allclose(parsed.landmarks, record.landmarks, atol=1e-3)
    assert np.array_equal(parsed.affine, record.affine)
    assert parsed.yaw == pytest.approx(record.yaw, abs=1e-4)
    assert parsed.grant_id == "grant-1" and parsed.release_id is None
    # Serialisation is canonical: same record, same bytes (the faceset hash depends on it).
    assert parsed.to_json() == record.to_json()


def test_record_rejects_non_finite_metric() -> None:
    record = make_record(np.random.default_rng(2), "faces/000000.png", "", yaw=float("nan"))
    with pytest.raises(FacesetError, match="yaw"):
        record.to_json()


def test_load_faceset_reads_records_and_images(tmp_path: Path) -> None:
    root = build_faceset(tmp_path / "fs", n=3)
    faceset = load_faceset(root, verify_images=True)
    assert len(faceset) == 3
    assert faceset.subject_slug == "mina" and faceset.grant_id == "grant-1"
    crop = faceset.image(1)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    assert faceset.landmarks().shape == (3, 478, 2)
    assert [r.file for r in faceset] == [f"faces/{i:06d}.png" for i in range(3)]


def test_edited_index_is_detected(tmp_path: Path) -> None:
    root = build_faceset(tmp_path / "fs")
    index = root / "index.jsonl"
    first, *rest = index.read_text().splitlines(keepends=True)
    index.write_text(first.replace("grant-1", "grant-2") + "".join(rest))
    with pytest.raises(FacesetError, match="altered"):
        load_faceset(root)


def test_removed_record_is_detected(tmp_path: Path) -> None:
    root = build_faceset(tmp_path / "fs")
    index = root / "index.jsonl"
    index.write_text("".join(index.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(FacesetError, match="altered"):
        load_faceset(root)


def test_swapped_face_image_is_detected(tmp_path: Path) -> None:
    root = build_faceset(tmp_path / "fs")
    write_image(root / "faces/000002.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    faceset = load_faceset(root)  # cheap load: hashes checked lazily ...
    with pytest.raises(FacesetError, match="altered"):
        faceset.image(2)  # ... when the crop is read
    faceset.image(1)
    with pytest.raises(FacesetError, match="000002.png.*altered"):
        load_faceset(root, verify_images=True)


def test_missing_face_image_is_detected(tmp_path: Path) -> None:
    root = build_faceset(tmp_path / "fs")
    (root / "faces/000001.png").unlink()
    with pytest.raises(FacesetError, match="missing"):
        load_faceset(root)


def test_unfinished_or_absent_faceset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FacesetError, match="not found"):
        load_faceset(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(FacesetError, match="no manifest.json"):
        load_faceset(tmp_path / "half")


def test_malformed_index_line_is_named(tmp_path: Path) -> None:
    index = tmp_path / "index.jsonl"
    good = make_record(np.random.default_rng(3), "faces/000000.png", "").to_json()
    index.write_text(good + "\n" + '{"file": "x"}\n')
    with pytest.raises(FacesetError, match=r"index.jsonl:2: missing field"):
        read_index(index)
    index.write_text("{not json\n")
    with pytest.raises(FacesetError, match=r"index.jsonl:1: not valid JSON"):
        read_index(index)
