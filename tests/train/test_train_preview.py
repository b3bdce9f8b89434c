"""Training previews show swapped faces, so they are marked like render outputs: the visible
label and the watermark of a preview job recorded on the ledger (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.digests import sha256_file
from likeness.errors import ConsentError
from likeness.media import read_image
from likeness.provenance.watermark import extract_watermark
from likeness.provenance.writer import watermark_payload_for
from likeness.train import generated_face_samples
from likeness.train.preview import PREVIEW_EVENT, PREVIEW_MIN_SIDE, preview_grid, write_training_preview

from .conftest import face_pair, tiny_config, train_consented

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def _grid(resolution: int = 32) -> np.ndarray:
    column = generated_face_samples(4, identity=1, size=resolution, seed=0).images
    return preview_grid([column] * 4, titles=["source", "src recon", "target", "target as source"])


def test_a_preview_carries_the_watermark_of_a_ledger_recorded_job(consent_world, tmp_path) -> None:
    paths = [tmp_path / "previews" / "preview_0000004.png", tmp_path / "preview_latest.png"]
    paths[0].parent.mkdir()
    job_id = write_training_preview(consent_world.authorize(), _grid(), paths, iteration=4)
    for path in paths:
        pixels = read_image(path)
        assert min(pixels.shape[:2]) >= PREVIEW_MIN_SIDE
        assert extract_watermark(pixels).payload == watermark_payload_for(job_id)
    events = consent_world.workspace.ledger.find(PREVIEW_EVENT)
    assert [e.payload["job_id"] for e in events] == [job_id]
    assert events[0].payload["watermark_payload"] == watermark_payload_for(job_id).hex()
    assert events[0].payload["grant_id"] == consent_world.grant_id
    # every copy is the same file, whose hash the event records (the portal's thumbnail finds it by it)
    assert {sha256_file(p) for p in paths} == {events[0].payload["output_sha256"]}


def test_no_preview_is_written_after_revocation(consent_world, tmp_path) -> None:
    authz = consent_world.authorize()
    consent_world.revoke_grant()
    with pytest.raises(ConsentError):
        write_training_preview(authz, _grid(), [tmp_path / "p.png"], iteration=1)
    assert not (tmp_path / "p.png").exists()


def test_training_writes_marked_previews(consent_world, tmp_path) -> None:
    out = tmp_path / "model"
    config = tiny_config(preview_every=2, log_every=2, seed=3, validation_fraction=0.1)
    train_consented(consent_world, face_pair(12, 32), out, config)
    events = consent_world.workspace.ledger.find(PREVIEW_EVENT)
    assert events
    payloads = {watermark_payload_for(e.payload["job_id"]) for e in events}
    for path in (out / "preview_latest.png", *sorted((out / "previews").iterdir())):
        assert extract_watermark(read_image(path)).payload in payloads, path.name
