"""Verify with an artist's registered detector: the score enters the verdict only from a
detector that passed its measured gates and whose files and ledger row still match; our own
provenance still decides for our own media."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from likeness.detector.registered import register_detector
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.media import write_image
from likeness.media.synthetic import astronaut
from likeness.provenance.writer import LabelledWriter, RenderJob
from likeness.verify.pipeline import verify_path
from likeness.verify.result import SCHEMA_VERSION, VerificationResult
from tests.detector.handmade import GateMedia, evaluated_for_mina, face_box, gate_media, tint_face, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="module")
def chroma(tmp_path_factory) -> tuple[Path, GateMedia]:
    """The chroma detector and generated held-out media (evaluated for mina, it passes every gate)."""
    root = tmp_path_factory.mktemp("detector")
    media = gate_media(root / "media")
    return write_detector(root / "chroma", "chroma", media.calibration), media


@pytest.fixture
def mina_detector(consent_world, chroma, tmp_path):
    from likeness.faceset import enroll_reference_photos

    assert enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")]).added == 1
    evaluated = evaluated_for_mina(consent_world.workspace, *chroma, tmp_path / "chroma")
    registered = register_detector(consent_world.workspace, evaluated, "mina")
    return consent_world, registered


def tinted_astronaut() -> np.ndarray:
    rgb = astronaut()
    return tint_face(rgb, face_box(rgb), amount=30)


def test_unlabelled_fake_of_the_artist_is_suspected_with_per_face_scores(mina_detector, tmp_path) -> None:
    world, registered = mina_detector
    fake = write_image(tmp_path / "fake.png", tinted_astronaut())
    result = verify_path(world.workspace, fake, report_dir=tmp_path / "evidence")
    assert result.verdict.code == "enrolled-artist-suspected-manipulation", result.verdict
    assert result.verdict.rule == "R5a"
    assert "detector test.handmade-chroma scores" in result.verdict.evidence[0]
    obj = result.to_dict()
    assert obj["schema"] == SCHEMA_VERSION == "likeness.verify/1.1"
    m = obj["manipulation"]
    assert m["status"] == "analysed" and m["suspected"] is True
    assert m["model"] == {
        "id": "test.handmade-chroma",
        "sha256": registered.onnx_sha256,
        "ledger_seq": registered.ledger_seq,
    }
    assert m["threshold"]["target_false_positive_rate"] == 0.05
    assert m["score"] >= m["threshold"]["calibrated_logit"] and 0.5 < m["calibrated_probability"] <= 1
    assert m["analysed_frames"] == 1 and len(m["tracks"]) == 1
    track = m["tracks"][0]
    assert track["face_id"] == obj["faces"]["faces"][0]["face_id"] and len(track["face_scores"]) == 1
    assert track["face_scores"][0] == pytest.approx(m["score"], abs=1e-3)
    # The JSON reads back, and the evidence page shows the scores.
    again = VerificationResult.from_dict(json.loads(result.to_json()))
    assert again.manipulation.suspected and again.to_dict()["manipulation"] == m
    html = next((tmp_path / "evidence").glob("*.html")).read_text()
    assert "Manipulation analysis: <strong>suspected</strong>" in html
    assert 'alt="detector heatmap of face 0"' in html and "red = greying there lowers its score most" in html
    payload = world.workspace.ledger.events("verification.completed")[-1].payload
    assert payload["manipulation"] == "suspected" and payload["schema"] == SCHEMA_VERSION


def test_authentic_photo_is_analysed_and_not_suspected(mina_detector, tmp_path) -> None:
    world, _ = mina_detector
    photo = write_image(tmp_path / "photo.png", astronaut())
    result = verify_path(world.workspace, photo)
    assert result.verdict.code == "enrolled-artist-unlabelled"
    assert result.manipulation.analysed and not result.manipulation.suspected
    assert any("under its threshold" in sentence for sentence in result.verdict.evidence)


def test_a_labelled_render_stays_authorized_synthetic(mina_detector, tmp_path) -> None:
    world, _ = mina_detector
    out = LabelledWriter(world.workspace).write_image(
        world.authorize("music_video"), RenderJob.new("image"), tinted_astronaut(), tmp_path / "render.png"
    )
    result = verify_path(world.workspace, out.path)
    assert result.verdict.code == "authorized-synthetic"
    assert result.manipulation.suspected  # the detector still says so, as evidence beside the verdict


def _edit_onnx(world, registered) -> str:
    path = registered.folder / MODEL_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    return "the ONNX file of its registered detector"


def _edit_card(world, registered) -> str:
    path = registered.folder / CARD_FILE
    card = json.loads(path.read_text())
    card["calibration"]["threshold_logit"] = 1e6  # an attacker wants a pass
    path.write_text(json.dumps(card))
    return "the card of its registered detector"


def _edit_ledger_row(world, registered) -> str:
    from sqlalchemy import text

    with world.workspace.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        payload = conn.execute(
            text("SELECT payload FROM ledger WHERE seq = :s"), {"s": registered.ledger_seq}
        ).scalar_one()
        edited = payload.replace(registered.onnx_sha256, "0" * 64)
        assert edited != payload
        conn.execute(text("UPDATE ledger SET payload = :p WHERE seq = :s"), {"p": edited, "s": registered.ledger_seq})
    return "does not verify (edited)"


@pytest.mark.parametrize("edit", [_edit_onnx, _edit_card, _edit_ledger_row], ids=["onnx", "card", "ledger-row"])
def test_an_edited_detector_is_not_used_and_says_why(mina_detector, tmp_path, edit) -> None:
    world, registered = mina_detector
    fake = write_image(tmp_path / "fake.png", tinted_astronaut())
    assert verify_path(world.workspace, fake).manipulation.suspected
    why = edit(world, registered)
    result = verify_path(world.workspace, fake)
    assert result.verdict.code == "enrolled-artist-unlabelled"  # neither a flag nor a pass
    m = result.to_dict()["manipulation"]
    assert m["status"] == "not analysed" and why in m["reason"] and "score" not in m
    assert any(why in sentence for sentence in result.verdict.evidence)


def test_no_registered_detector_says_not_analysed_with_the_reason(consent_world, tmp_path) -> None:
    photo = write_image(tmp_path / "photo.png", astronaut())
    m = verify_path(consent_world.workspace, photo).to_dict()["manipulation"]
    assert m == {"status": "not analysed", "reason": "no detector is registered in this workspace", "skipped": []}


def test_a_version_1_object_still_reads() -> None:
    old = VerificationResult.failed("x.png", sha256=None, size_bytes=0, stage="read", reason="empty").to_dict()
    old["schema"], old["manipulation"] = "likeness.verify/1", "not analysed"
    read = VerificationResult.from_dict(old)
    assert read.manipulation.status == "not analysed" and not read.manipulation.analysed


def test_a_video_track_is_scored_on_each_sampled_sighting(mina_detector, tmp_path) -> None:
    from likeness.media.synthetic import write_clip

    world, _ = mina_detector
    clip = write_clip(tmp_path / "fake.mp4", tinted_astronaut(), seconds=3.0, fps=10, size=(480, 480), with_audio=False)
    result = verify_path(world.workspace, clip)
    assert result.verdict.code == "enrolled-artist-suspected-manipulation", result.verdict
    m = result.to_dict()["manipulation"]
    track = m["tracks"][0]
    assert len(track["face_scores"]) == len(track["face_timestamps_s"]) == result.faces.faces[0].frames >= 2
    assert m["analysed_frames"] == sum(len(t["face_scores"]) for t in m["tracks"])
    assert track["score"] == pytest.approx(float(np.mean(track["face_scores"])), abs=1e-3)


def test_occlusion_heat_is_where_the_detector_looks(chroma) -> None:
    """The chroma detector reads the crop's centre (48:80): greying a cell elsewhere changes
    nothing, greying the tinted centre lowers the score."""
    from likeness.detector.heatmap import heat_overlay, occlusion_heat
    from likeness.detector.score import load_detector
    from likeness.detector.train import COVERAGE, DETECTOR_INPUT
    from likeness.faces.align import align_face
    from likeness.faces.detect import FaceDetector

    rgb = tinted_astronaut()
    with FaceDetector(mode="image") as detector:
        crop = align_face(rgb, detector.detect(rgb)[0].landmarks, size=DETECTOR_INPUT, coverage=COVERAGE).image
    heat = occlusion_heat(load_detector(chroma[0]), crop)
    assert heat.shape == (8, 8)
    centre = np.zeros((8, 8), bool)
    centre[3:5, 3:5] = True  # cells 3 and 4 of 16 px cover pixels 48..79
    assert np.abs(heat[~centre]).max() < 1e-4
    assert heat[centre].min() > 0.5
    overlay = heat_overlay(crop, heat)
    assert overlay.shape == crop.shape and overlay.dtype == np.uint8
    assert np.array_equal(overlay[:32, :32], crop[:32, :32])  # no heat, no colour


def test_a_running_verifier_notices_an_edited_file(mina_detector, tmp_path) -> None:
    """A scan's verifier keeps the loaded model, but files edited mid-scan stop its use."""
    from likeness.verify.pipeline import Verifier

    world, registered = mina_detector
    fake = write_image(tmp_path / "fake.png", tinted_astronaut())
    verifier = Verifier(world.workspace)
    try:
        assert verifier.verify(fake)[0].manipulation.suspected
        assert verifier.verify(fake)[0].manipulation.suspected  # unchanged files: not hashed again
        why = _edit_onnx(world, registered)
        again, _ = verifier.verify(fake)
    finally:
        verifier.close()
    assert again.manipulation.status == "not analysed" and why in again.manipulation.reason
