"""Verify says whether the visible AI label is there: in the JSON result, the text and the HTML
evidence; a label without a watermark or manifest is called a claim, not proof."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from likeness.media import write_image
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper
from likeness.provenance.label_detect import PRESENT_SCORE
from likeness.provenance.visible_label import burn_visible_label
from likeness.provenance.writer import LabelledWriter, RenderJob
from likeness.verify.pipeline import Verifier, verify_path
from likeness.verify.report import render_html
from likeness.verify.result import C2paEvidence, FacesEvidence, LabelEvidence, VerificationResult, WatermarkEvidence
from likeness.verify.verdict import LABEL_WITHOUT_PROVENANCE, decide, label_sentences

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def test_label_only_image_is_called_a_claim_not_proof(consent_world, tmp_path: Path) -> None:
    # Someone draws our label onto an ordinary photo: no watermark, no manifest.
    painted = tmp_path / "painted.jpg"
    write_image(painted, burn_visible_label(grace_hopper()), quality=90)
    verifier = Verifier(consent_world.workspace)
    try:
        result, media = verifier.verify(painted, evidence=True)
    finally:
        verifier.close()
    assert result.visible_label is not None and result.visible_label.present
    assert result.visible_label.score >= PRESENT_SCORE and result.visible_label.where is not None
    assert not result.watermark.found and not result.c2pa.present
    assert result.verdict.code == "no-enrolled-artist"  # the label decides nothing
    assert result.verdict.evidence[1] == LABEL_WITHOUT_PROVENANCE
    record = result.to_dict()
    assert record["visible_label"]["present"] is True and len(record["visible_label"]["where"]) == 4
    assert VerificationResult.from_dict(json.loads(result.to_json())).visible_label == result.visible_label
    html = render_html(result, media)
    assert "Visible AI label" in html and "the label alone proves nothing about who made it" in html
    assert media is not None and media.label_crop is not None and media.label_crop.shape[1] >= 100


def test_render_has_label_and_provenance_and_plain_photo_has_no_label(mina_world_labels, tmp_path: Path) -> None:
    world = mina_world_labels
    out = LabelledWriter(world.workspace).write_image(
        world.authorize("music_video"), RenderJob.new("image"), astronaut(), tmp_path / "render.png"
    )
    rendered = verify_path(world.workspace, out.path)
    assert rendered.verdict.code == "authorized-synthetic"
    assert rendered.visible_label.present
    assert LABEL_WITHOUT_PROVENANCE not in rendered.verdict.evidence
    assert any(s.startswith("a visible AI label is present too") for s in rendered.verdict.evidence)
    event = world.workspace.ledger.events("verification.completed")[-1]
    assert event.payload["visible_label"] is True

    photo = tmp_path / "photo.jpg"
    write_image(photo, grace_hopper(), quality=90)
    plain = verify_path(world.workspace, photo)
    assert plain.visible_label is not None and not plain.visible_label.present
    assert plain.to_dict()["visible_label"]["where"] is None
    assert not any("visible AI label" in s for s in plain.verdict.evidence)


def test_cropped_and_downscaled_reupload_still_shows_the_label(consent_world, tmp_path: Path) -> None:
    frame = next(iter(animate_portrait(astronaut(), n_frames=1, size=(1280, 720), seed=4)))
    labelled = burn_visible_label(frame)
    cropped = labelled[72:-72, 128:]  # 10 % off top, bottom and left
    small = cv2.resize(cropped, (round(cropped.shape[1] * 360 / cropped.shape[0]), 360), interpolation=cv2.INTER_AREA)
    path = tmp_path / "reupload.jpg"
    write_image(path, np.ascontiguousarray(small), quality=75)
    result = verify_path(consent_world.workspace, path, record=False)
    assert result.visible_label.present, result.visible_label
    assert LABEL_WITHOUT_PROVENANCE in result.verdict.evidence


def test_video_label_is_found_on_a_sampled_frame(consent_world, tmp_path: Path) -> None:
    job = RenderJob.new("video")
    out = tmp_path / "clip.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"), job, out, width=320, height=240, fps=10
    ) as video:
        for frame in animate_portrait(astronaut(), n_frames=30, size=(320, 240), seed=1):
            video.write(frame)
    result = verify_path(consent_world.workspace, out, record=False)
    assert result.visible_label.present and result.visible_label.frame_timestamp_s is not None
    assert 1 <= result.visible_label.frames_searched <= 4


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_the_label_of_a_phone_render_is_found_as_players_show_it(consent_world, tmp_path: Path, rotation) -> None:
    """A render of phone footage keeps the display matrix: the label is drawn upright and stored
    turned. Verify searched the stored pixels and said no label was there (trial 13)."""
    job = RenderJob.new("video")
    out = tmp_path / "phone.mp4"
    with LabelledWriter(consent_world.workspace).open_video(
        consent_world.authorize("music_video"), job, out, width=240, height=320, fps=10, rotation=rotation
    ) as video:
        for frame in animate_portrait(astronaut(), n_frames=30, size=(240, 320), seed=1):
            video.write(frame)
    result = verify_path(consent_world.workspace, out, record=False)
    assert result.visible_label.present, result.visible_label


def test_cli_prints_whether_the_label_is_there(consent_world, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    painted = tmp_path / "painted.png"
    write_image(painted, burn_visible_label(grace_hopper()))
    home = str(consent_world.workspace.home)
    result = CliRunner().invoke(app, ["--home", home, "verify", str(painted), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "the label alone proves nothing" in result.output
    # Said once, with where it was read: not a second line repeating the evidence sentence.
    assert result.output.count("visible AI label") == 1, result.output
    assert "proves nothing about who made it (match 0." in result.output


# ---- the decision table's sentences, as pure functions


def _faces() -> FacesEvidence:
    return FacesEvidence(
        frames_analysed=1, frame_timestamps_s=(0.0,), gallery_subjects=0, gallery_references=0, threshold=0.4
    )


def test_label_sentences_never_change_the_verdict() -> None:
    label = LabelEvidence(present=True, score=0.8, where=(1, 2, 3, 4))
    none = C2paEvidence.absent()
    no_mark = WatermarkEvidence.no_mark("likeness")
    with_label = decide(c2pa=none, watermark=no_mark, faces=_faces(), visible_label=label)
    without = decide(c2pa=none, watermark=no_mark, faces=_faces())
    assert with_label.code == without.code == "no-face"
    assert with_label.evidence == (without.evidence[0], LABEL_WITHOUT_PROVENANCE, *without.evidence[1:])
    # A manifest or a mark behind the label: no "claim only" sentence.
    signed = C2paEvidence(present=True, state="Valid", declares_ai=False)
    assert label_sentences(label, signed, no_mark) == ["a visible AI label is present too (score 0.80)"]
    marked = WatermarkEvidence(algorithm="likeness", found=True, payload="00" * 8)
    assert label_sentences(label, none, marked)[0].startswith("a visible AI label is present too")
    # Not found, or not searched: nothing said.
    assert label_sentences(LabelEvidence(present=False, score=0.3), none, no_mark) == []
    assert label_sentences(None, none, no_mark) == []
    # Unreadable C2PA and watermark stages: still no provenance behind the label.
    assert label_sentences(label, None, None) == [LABEL_WITHOUT_PROVENANCE]


@pytest.fixture
def mina_world_labels(consent_world):
    from likeness.faceset import enroll_reference_photos

    enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")])
    return consent_world
