"""Training fixtures: signed faceset folders made from generated faces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from likeness.digests import sha256_file
from likeness.faceset.extract import record_faceset
from likeness.faceset.format import FaceRecord, FacesetManifest, index_sha256
from likeness.media import write_image
from likeness.train import generated_face_samples


def write_faceset(folder: Path, workspace, authz, *, identity: int, n: int = 12, open_mouth: int = 0) -> Path:
    """A faceset folder in the product's format, from generated faces of one identity, signed and
    recorded on the ledger under ``authz`` (a training Authorization or a performer's release).
    The first ``open_mouth`` faces are recorded with an open mouth, the others closed."""
    grant_id, release_id = getattr(authz, "grant_id", None), getattr(authz, "release_id", None)
    subject = workspace.registry.get_subject(getattr(authz, "subject_id", None) or authz.performer_id)
    samples = generated_face_samples(n, identity=identity, size=48, seed=identity)
    (folder / "faces").mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"faces/{i:06d}.png"
        write_image(folder / name, samples.images[i])
        record = FaceRecord(
            file=name,
            source="generated",
            frame_index=i,
            timestamp_s=None,
            track_id=0,
            landmarks=samples.landmarks[i],
            affine=np.eye(2, 3),
            yaw=float(samples.yaw[i]),
            pitch=0.0,
            roll=0.0,
            sharpness=100.0,
            face_size=48.0,
            eye_openness=0.3,
            mouth_openness=0.6 if i < open_mouth else 0.02,
            brightness=120.0,
            identity_distance=0.2,
            grant_id=grant_id,
            release_id=release_id,
            image_sha256=sha256_file(folder / name),
        )
        lines.append(record.to_json())
    (folder / "index.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = FacesetManifest(
        faceset_sha256=index_sha256(folder / "index.jsonl"),
        subject_id=subject.id,
        subject_slug=subject.slug,
        grant_id=grant_id,
        release_id=release_id,
        org_id=authz.org_id,
        created_at="2026-01-01T00:00:00Z",
        counts={"faces": n},
        size=48,
    )
    record_faceset(workspace, authz, folder, manifest)
    return folder


@pytest.fixture
def faceset_writer() -> Callable[..., Path]:
    """``write_faceset(folder, workspace, authz, *, identity, n=12, open_mouth=0) -> folder``."""
    return write_faceset
