"""A training preview that leaks from a model folder is traced like a render: to its preview job,
its grant and the grant's state today, not called a mark "not on this workspace's ledger"."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from likeness.media.synthetic import astronaut
from likeness.train.preview import preview_grid, write_training_preview
from likeness.verify.pipeline import verify_path


def _faces(n: int = 3, size: int = 64) -> np.ndarray:
    face = cv2.resize(astronaut()[30:250, 140:360], (size, size), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(face, 4 * k, axis=1) for k in range(n)])


def test_a_leaked_training_preview_is_traced_to_its_preview_job_and_grant(consent_world, tmp_path: Path) -> None:
    authz = consent_world.authorize("training")
    grid = preview_grid([_faces(), _faces()[::-1].copy()], titles=["source", "swap"])
    leaked = tmp_path / "preview_000250.png"
    job_id = write_training_preview(authz, grid, [leaked], iteration=250)

    result = verify_path(consent_world.workspace, leaked, record=False)

    render = result.watermark.render
    assert render is not None, result.verdict.evidence
    assert (render.job_id, render.kind, render.grant_id) == (job_id, "training_preview", authz.grant_id)
    assert render.output_name == leaked.name
    assert result.watermark.grant is not None and result.watermark.grant.state == "active"
    assert result.verdict.code == "authorized-synthetic", result.verdict
    assert any(f"training preview job {job_id}" in sentence for sentence in result.verdict.evidence)
    assert not any("not on this workspace's ledger" in sentence for sentence in result.verdict.evidence)
