"""``likeness detector evaluate | register | list``: the gates are measured on held-out media,
never written in; a detector that fails one, or whose card claims a pass its figures do not
support, is refused; evaluation media that were training data are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from likeness.cli import app
from likeness.detector.evaluation import GateFailed, evaluate_detector
from likeness.detector.registered import REGISTERED_EVENT, register_detector, registered_detectors
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.errors import ModelError

from .handmade import GateMedia, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture
def chroma(media: GateMedia, tmp_path: Path) -> Path:
    """A detector whose statistic sees the tint: it separates real from fake."""
    return write_detector(tmp_path / "chroma", "chroma", media.calibration)


@pytest.fixture
def luma(media: GateMedia, tmp_path: Path) -> Path:
    """A detector whose statistic is blind to the tint (the fakes keep their luma)."""
    return write_detector(tmp_path / "luma", "luma", media.calibration)


def test_a_detector_that_separates_passes_every_gate(chroma: Path, media: GateMedia) -> None:
    evaluation = evaluate_detector(chroma, media.real, media.fake)
    figures = evaluation["figures"]
    assert figures["video_auc"] == 1.0 and figures["frame_auc"] == 1.0
    assert figures["units"] == {"real": 5, "fake": 5} and figures["faces"] == {"real": 10, "fake": 10}
    for baseline in figures["baselines"].values():  # computed on the same files, best direction
        assert 0.5 <= baseline["video_auc"] <= 0.9
    assert figures["authentic_false_positive_rate"]["frame"] <= 0.075
    assert [g["gate"] for g in evaluation["gates"]] == [
        "video_auc",
        "beats_face_size",
        "beats_high_frequency_energy",
        "authentic_false_positive_rate",
        "fake_recall",
    ]
    assert evaluation["passed"] and all(g["holds"] for g in evaluation["gates"])
    card = json.loads((chroma / CARD_FILE).read_text())
    assert card["evaluation"] == evaluation  # written into the card
    assert evaluation["onnx_sha256"] == card["sha256"]
    assert len(evaluation["files_sha256"]["real"]) == 10 and len(evaluation["files_sha256"]["fake"]) == 10


def test_a_failing_evaluation_is_refused_at_register(luma: Path, media: GateMedia, workspace, mina) -> None:
    evaluation = evaluate_detector(luma, media.real, media.fake, subject=mina)
    assert not evaluation["passed"]
    video_gate = evaluation["gates"][0]
    assert video_gate["gate"] == "video_auc" and not video_gate["holds"] and video_gate["figure"] < 0.9
    with pytest.raises(GateFailed) as refused:
        register_detector(workspace, luma, "mina")
    assert refused.value.gate == "video_auc"
    assert f"video AUC {video_gate['figure']:.3f}" in str(refused.value)
    assert workspace.ledger.events(REGISTERED_EVENT) == []
    assert not (workspace.home / "detectors").exists()


def test_a_card_that_claims_a_pass_its_figures_do_not_support_is_refused(luma, media, workspace, mina) -> None:
    evaluate_detector(luma, media.real, media.fake, subject=mina)
    card = json.loads((luma / CARD_FILE).read_text())
    card["evaluation"]["passed"] = True
    for gate in card["evaluation"]["gates"]:
        gate["holds"] = True
    (luma / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(GateFailed, match="video_auc"):
        register_detector(workspace, luma, "mina")


def test_an_unevaluated_detector_is_refused(chroma: Path, workspace, mina) -> None:
    with pytest.raises(GateFailed, match="no evaluation") as refused:
        register_detector(workspace, chroma, "mina")
    assert refused.value.gate == "evaluated"


def test_an_evaluation_of_another_onnx_file_is_refused(chroma: Path, media: GateMedia, workspace, mina) -> None:
    from tests.detector.handmade import statistic_onnx

    evaluate_detector(chroma, media.real, media.fake, subject=mina)
    card = json.loads((chroma / CARD_FILE).read_text())
    swapped = statistic_onnx("luma")
    (chroma / MODEL_FILE).write_bytes(swapped)
    import hashlib

    card["sha256"] = hashlib.sha256(swapped).hexdigest()  # the card follows the file, the evaluation does not
    (chroma / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="evaluation was of another ONNX file"):
        register_detector(workspace, chroma, "mina")


def test_evaluation_files_from_the_training_data_are_refused(chroma: Path, media: GateMedia) -> None:
    with pytest.raises(ModelError, match="was in the detector's training data"):
        evaluate_detector(chroma, [media.calibration, *media.real], media.fake)
    assert "evaluation" not in json.loads((chroma / CARD_FILE).read_text())


def test_a_file_cannot_be_both_real_and_fake(chroma: Path, media: GateMedia) -> None:
    with pytest.raises(ModelError, match="given as both real and fake; a file is either real or fake"):
        evaluate_detector(chroma, media.real, [media.real[0], *media.fake])
    with pytest.raises(ModelError, match="given twice; "):
        evaluate_detector(chroma, [*media.real, media.real[0]], media.fake)


def test_too_few_units_is_a_clear_error(chroma: Path, media: GateMedia) -> None:
    with pytest.raises(ModelError, match="at least 2 fake"):
        evaluate_detector(chroma, media.real, media.fake[:1])


def test_cli_evaluate_register_list_and_replace(
    chroma: Path, luma: Path, media: GateMedia, settings, workspace, mina
) -> None:
    runner = CliRunner()
    home = ["--home", str(settings.home)]

    def fakes_and_reals() -> list[str]:
        return [a for p in media.real for a in ("--real", str(p))] + [a for p in media.fake for a in ("--fake", str(p))]

    failed = runner.invoke(app, [*home, "detector", "evaluate", str(luma), *fakes_and_reals(), "--subject", "mina"])
    assert failed.exit_code == 1 and "fails  video_auc" in failed.output and "Traceback" not in failed.output
    refused = runner.invoke(app, [*home, "detector", "register", str(luma), "--subject", "mina"])
    assert refused.exit_code == 1 and "gate video_auc fails" in refused.output

    passed = runner.invoke(app, [*home, "detector", "evaluate", str(chroma), *fakes_and_reals(), "--subject", "mina"])
    assert passed.exit_code == 0, passed.output
    assert "high-frequency energy" in passed.output and "holds  authentic_false_positive_rate" in passed.output
    for _ in range(2):  # a second registration for the same subject replaces the first
        done = runner.invoke(app, [*home, "detector", "register", str(chroma), "--subject", "mina"])
        assert done.exit_code == 0, done.output
    events = workspace.ledger.events(REGISTERED_EVENT)
    assert len(events) == 2 and events[1].payload["replaces_seq"] == events[0].seq
    current = registered_detectors(workspace)
    assert len(current) == 1 and current[0].ledger_seq == events[1].seq
    folder = workspace.home / "detectors" / workspace.registry.get_subject("mina").id
    assert (folder / MODEL_FILE).read_bytes() == (chroma / MODEL_FILE).read_bytes()
    assert oct((folder / MODEL_FILE).stat().st_mode & 0o777) == "0o644"
    listed = runner.invoke(app, [*home, "detector", "list"])
    assert listed.exit_code == 0 and "mina  test.handmade-chroma" in listed.output
    assert f"ledger #{events[1].seq}" in listed.output and "used by verify" in listed.output
    # a command that only reads writes nothing: the gallery is made in memory (before, `detector
    # list` synced it into HOME/gallery, which a read-only workspace cannot take)
    shutil.rmtree(settings.home / "gallery")
    listed = runner.invoke(app, [*home, "detector", "list"])
    assert "used by verify" in listed.output and not (settings.home / "gallery").exists(), listed.output
    (folder / CARD_FILE).write_text("{}")
    listed = runner.invoke(app, [*home, "detector", "list"])
    assert "NOT used by verify: the card of its registered detector" in listed.output


def test_audit_names_an_edited_registered_detector(chroma: Path, media: GateMedia, workspace, mina) -> None:
    from likeness.consent.audit import audit_workspace

    evaluate_detector(chroma, media.real, media.fake, subject=mina)
    registered = register_detector(workspace, chroma, "mina")
    assert not [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]
    (registered.folder / MODEL_FILE).write_bytes(b"not the registered model")
    problems = [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]
    assert len(problems) == 1 and problems[0].subject == "detector of mina"
    assert "ONNX file of its registered detector" in problems[0].message


def test_the_false_positive_gate_counts_flagged_clips_as_verify_flags_tracks() -> None:
    """Few flagged faces can still flag a clip: verify's verdict is per track, so the gate is too."""
    from likeness.detector.evaluation import recheck_gates

    figures = {
        "video_auc": 0.95,
        "baselines": {"face_size": {"video_auc": 0.6}, "high_frequency_energy": {"video_auc": 0.7}},
        "authentic_false_positive_rate": {"frame": 0.02, "video": 0.2},
        "fake_recall_at_threshold": {"video": 1.0},
        "units": {"real": 5, "fake": 5},
    }
    gates = {g["gate"]: g for g in recheck_gates({"figures": figures}, target_fpr=0.05)}
    assert gates["video_auc"]["holds"] and not gates["authentic_false_positive_rate"]["holds"]
    assert gates["authentic_false_positive_rate"]["figure"] == 0.2


def test_a_video_unit_is_sampled_as_verify_samples_it(tmp_path: Path) -> None:
    """The gates must measure the scores verify computes: a 3 s clip gives verify's 1-per-second
    faces (3), not an average over 30 frames verify never scores."""
    from likeness.detector.evaluation import unit_faces
    from likeness.faces import FaceDetector
    from likeness.media.synthetic import grace_hopper, write_clip
    from likeness.verify.pipeline import VIDEO_SAMPLE_FPS

    clip = write_clip(tmp_path / "real.mp4", grace_hopper(), seconds=3.0, fps=25, size=(320, 240), seed=3)
    with FaceDetector(mode="image", max_faces=2) as detector:
        unit = unit_faces(detector, clip)
    assert len(unit.crops) == round(3.0 * VIDEO_SAMPLE_FPS) == len(unit.sizes)


def test_a_phone_clip_unit_is_looked_at_upright_as_verify_looks(tmp_path: Path) -> None:
    """A phone clip stored sideways with a display rotation: verify looks for faces in the
    picture players show (``VideoFrame.shown``), so the gates must too; in the stored pixels the
    face lies on its side and most samples find none."""
    import cv2
    import numpy as np

    from likeness.detector.evaluation import unit_faces
    from likeness.faces import FaceDetector
    from likeness.media import VideoEncoder
    from likeness.media.synthetic import grace_hopper
    from likeness.verify.pipeline import VIDEO_SAMPLE_FPS

    upright = cv2.resize(grace_hopper(), (240, 320))
    clip = tmp_path / "phone.mp4"
    with VideoEncoder(clip, width=320, height=240, fps=25, rotation=90) as encoder:
        for _ in range(75):
            encoder.write(np.ascontiguousarray(np.rot90(upright, k=-1)))
    with FaceDetector(mode="image", max_faces=2) as detector:
        unit = unit_faces(detector, clip)
    assert len(unit.crops) == round(3.0 * VIDEO_SAMPLE_FPS)
