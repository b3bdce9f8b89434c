"""Training fixtures: signed faceset folders made from generated faces, generated faces of mina
and jun, a tiny training configuration, and ``likeness train`` command lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from likeness.digests import sha256_file
from likeness.faceset.extract import record_faceset
from likeness.faceset.format import FaceRecord, FacesetManifest, index_sha256
from likeness.media import write_image
from likeness.train import TrainConfig, generated_face_samples, train_swap_model

#: ``likeness train`` options: the tiny model at 32 px; and what a test's run does without
#: (previews, metrics, a second thread).
TINY_32 = ("--model", "df_tiny", "--res", "32")
QUIET_RUN = (
    "--preview-every",
    "0",
    "--no-identity-metrics",
    "--no-expression-metrics",
    "--org",
    "studio",
    "--threads",
    "1",
)


def tiny_config(**overrides: Any) -> TrainConfig:
    """``df_tiny`` at 32 px for two iterations on one thread, without previews or metrics: runs
    that test what training records and refuses rather than what it learns."""
    base: dict[str, Any] = dict(
        model="df_tiny",
        resolution=32,
        iterations=2,
        batch_size=4,
        checkpoint_every=2,
        preview_every=0,
        identity_metrics=False,
        expression_metrics=False,
        threads=1,
        workers=1,
        validation_fraction=0.2,
    )
    return TrainConfig(**(base | overrides))


def face_pair(n: int, size: int) -> tuple[Any, Any]:
    """Generated faces: ``n`` of mina's (identity 1, seed 0) and ``n`` of jun's (identity 2, seed 1)."""
    return (
        generated_face_samples(n, identity=1, size=size, seed=0),
        generated_face_samples(n, identity=2, size=size, seed=1),
    )


def train_consented(consent_world, faces: tuple[Any, Any], out: Path, config: TrainConfig, **options: Any):
    """``train_swap_model`` of mina for jun under the consent world's training grant and release."""
    return train_swap_model(
        consent_world.authorize(),
        consent_world.authorize_release(),
        *faces,
        out,
        config,
        workspace=consent_world.workspace,
        **options,
    )


def train_command(home: Path, source: Path, target: Path, *options: object) -> list[str]:
    """``likeness --home HOME train --source SOURCE --target TARGET OPTIONS...`` for CliRunner."""
    return ["--home", str(home), "train", "--source", str(source), "--target", str(target), *map(str, options)]


def write_faceset(
    folder: Path, workspace, authz, *, identity: int, n: int = 12, open_mouth: int = 0, face_size: float = 48.0
) -> Path:
    """A faceset folder in the product's format, from generated faces of one identity, signed and
    recorded on the ledger under ``authz`` (a training Authorization or a performer's release).
    The first ``open_mouth`` faces are recorded with an open mouth, the others closed; every face
    is recorded as ``face_size`` source pixels across (the crops stay 48 px)."""
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
            face_size=face_size,
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
    """``write_faceset(folder, workspace, authz, *, identity, n=12, open_mouth=0, face_size=48.0) -> folder``."""
    return write_faceset


@pytest.fixture
def facesets(consent_world, faceset_writer, tmp_path) -> tuple[Path, Path]:
    """Signed facesets of mina (under her training grant) and jun (under his release), 12 faces each."""
    workspace = consent_world.workspace
    source = faceset_writer(tmp_path / "mina", workspace, consent_world.authorize(), identity=1)
    target = faceset_writer(tmp_path / "jun", workspace, consent_world.authorize_release(), identity=2)
    return source, target


@pytest.fixture(scope="module")
def faces() -> tuple[Any, Any]:
    """20 generated faces each of mina and jun at 48 px (some modules define their own ``faces``)."""
    return face_pair(20, 48)
