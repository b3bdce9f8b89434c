"""A detector's card cannot be bent after (or before) its evaluation, and a registration cannot be
broken or redirected through the workspace's files (attacker trial 3). Each case registered, or
broke the working registration, before the calibration binding, the fake-recall gate and the
staged registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likeness.detector.evaluation import GateFailed, evaluate_detector
from likeness.detector.registered import (
    REGISTERED_EVENT,
    check_registered,
    detector_folder,
    register_detector,
    registered_detectors,
)
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.errors import ModelError

from .handmade import GateMedia, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture
def evaluated(media: GateMedia, tmp_path: Path, mina) -> Path:
    """A detector that separates real from fake, evaluated for mina: it passes every gate."""
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    return folder


def edit_calibration(folder: Path, **changes: float) -> None:
    card = json.loads((folder / CARD_FILE).read_text())
    card["calibration"].update(changes)
    (folder / CARD_FILE).write_text(json.dumps(card))


def test_a_threshold_nothing_reaches_fails_the_fake_recall_gate(media: GateMedia, tmp_path, workspace, mina) -> None:
    """Set before evaluating, a huge threshold made the false-positive rate 0 and AUC ignored it:
    every gate held for a detector that flags nothing."""
    folder = write_detector(tmp_path / "deaf", "chroma", media.calibration)
    edit_calibration(folder, threshold_logit=1000.0)
    evaluation = evaluate_detector(folder, media.real, media.fake, subject=mina)
    gates = {g["gate"]: g for g in evaluation["gates"]}
    assert gates["video_auc"]["holds"] and gates["authentic_false_positive_rate"]["holds"]
    assert not gates["fake_recall"]["holds"] and gates["fake_recall"]["figure"] == 0.0
    with pytest.raises(GateFailed) as refused:
        register_detector(workspace, folder, "mina")
    assert refused.value.gate == "fake_recall"


@pytest.mark.parametrize(
    "changes",
    [
        {"threshold_logit": -50.0},  # flags every authentic face
        {"threshold_logit": 1000.0},  # silences the detector
        {"temperature": -1.0, "threshold_logit": -7.0},  # inverts it
        {"temperature": 0.0},
        {"temperature": float("nan")},
        {"threshold_logit": float("nan")},
        {"target_false_positive_rate": 0.7},  # a failed FPR gate made to pass
        {"target_false_positive_rate": 0.1},  # within bounds, but not what was evaluated
    ],
)
def test_a_calibration_edited_after_evaluating_is_refused(evaluated: Path, workspace, mina, changes) -> None:
    edit_calibration(evaluated, **changes)
    with pytest.raises(GateFailed) as refused:
        register_detector(workspace, evaluated, "mina")
    assert refused.value.gate == "calibration"
    assert workspace.ledger.events(REGISTERED_EVENT) == []
    assert not detector_folder(workspace.home, mina.subject_id).exists()


def test_a_failed_registration_leaves_the_working_one_in_use(
    evaluated: Path, media: GateMedia, tmp_path, workspace, mina, monkeypatch
) -> None:
    first = register_detector(workspace, evaluated, "mina")
    assert not isinstance(check_registered(workspace, first), str)
    # another card (its threshold set at 10 %), so its files differ from the working one's
    other = write_detector(tmp_path / "other", "chroma", media.calibration, target_fpr=0.1)
    assert evaluate_detector(other, media.real, media.fake, subject=mina)["passed"]

    def refuse(*args, **kwargs):
        raise RuntimeError("the ledger is busy")

    monkeypatch.setattr(workspace.ledger, "append", refuse)
    with pytest.raises(RuntimeError):
        register_detector(workspace, other, "mina")
    monkeypatch.undo()
    [current] = registered_detectors(workspace)
    assert current.ledger_seq == first.ledger_seq
    assert not isinstance(check_registered(workspace, current), str)  # its files are untouched
    assert sorted(p.name for p in detector_folder(workspace.home, mina.subject_id).parent.iterdir()) == [
        mina.subject_id
    ]


def test_links_planted_in_the_detector_folder_are_not_written_through(
    evaluated: Path, workspace, mina, tmp_path
) -> None:
    register_detector(workspace, evaluated, "mina")
    folder = detector_folder(workspace.home, mina.subject_id)
    victim = tmp_path / "victim.txt"
    victim.write_text("secret")
    victim.chmod(0o600)
    (folder / f".{CARD_FILE}.tmp").symlink_to(victim)
    (folder / CARD_FILE).unlink()
    (folder / CARD_FILE).symlink_to(victim)
    again = register_detector(workspace, evaluated, "mina")
    assert victim.read_text() == "secret" and (victim.stat().st_mode & 0o777) == 0o600
    assert not (folder / CARD_FILE).is_symlink() and not (folder / MODEL_FILE).is_symlink()
    assert not isinstance(check_registered(workspace, again), str)


def test_an_onnx_file_runtime_cannot_load_is_refused(evaluated: Path, workspace, mina) -> None:
    import hashlib

    junk = b"not an onnx graph"
    (evaluated / MODEL_FILE).write_bytes(junk)
    card = json.loads((evaluated / CARD_FILE).read_text())
    card["sha256"] = card["evaluation"]["onnx_sha256"] = hashlib.sha256(junk).hexdigest()
    (evaluated / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot load"):
        register_detector(workspace, evaluated, "mina")
    assert workspace.ledger.events(REGISTERED_EVENT) == []


def test_an_evaluation_copied_from_a_passing_card_is_refused(
    evaluated: Path, media: GateMedia, tmp_path, workspace
) -> None:
    """The card's evaluation was trusted as written: a detector that separates nothing (luma)
    took a passing detector's evaluation, its ONNX sha256 put in, and its calibration made to
    match, and registered with every gate holding. Only evaluations that `evaluate` recorded on
    the ledger for this ONNX file and subject register now."""
    deaf = write_detector(tmp_path / "luma", "luma", media.calibration)
    passing = json.loads((evaluated / CARD_FILE).read_text())
    card = json.loads((deaf / CARD_FILE).read_text())
    card["calibration"] = passing["calibration"]
    card["evaluation"] = {**passing["evaluation"], "onnx_sha256": card["sha256"]}
    (deaf / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not one this workspace's ledger recorded") as refused:
        register_detector(workspace, deaf, "mina")
    assert "evaluate it again with --subject mina" in str(refused.value)
    assert registered_detectors(workspace) == []
    # The passing card as `evaluate` wrote it still registers.
    assert register_detector(workspace, evaluated, "mina").subject_slug == "mina"
