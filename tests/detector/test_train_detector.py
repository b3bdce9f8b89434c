"""The detector network and trainer: strict ImageNet weights, a tiny variant trains, resumes
exactly, exports an ONNX file that matches its card, and a changed file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from likeness.detector.score import load_detector, track_score
from likeness.detector.train import (
    CARD_FILE,
    DETECTOR_INPUT,
    MODEL_FILE,
    AlignedFaceSample,
    DetectorTrainConfig,
    align_largest,
    train_detector,
)
from likeness.errors import FaceError, ModelError
from likeness.faces.detect import FaceDetector
from likeness.media.synthetic import astronaut, grace_hopper


def test_imagenet_weights_load_strictly() -> None:
    import torch

    from likeness.detector.network import build_detector, build_mobilenet_v2, imagenet_weights_path

    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    backbone = build_mobilenet_v2()
    assert set(backbone.state_dict()) == set(state)
    net = build_detector(pretrained=True)
    torch.testing.assert_close(net.backbone.features[0][0].weight, state["features.0.0.weight"])
    assert net(torch.rand(1, 3, DETECTOR_INPUT, DETECTOR_INPUT)).shape == (1, 1)
    with pytest.raises(ModelError):
        build_detector(pretrained=True, width=0.5)


@pytest.fixture(scope="module")
def faces() -> list[AlignedFaceSample]:
    with FaceDetector(mode="image") as detector:
        found = [
            align_largest(detector, rgb, identity=name)
            for name, rgb in (("astronaut", astronaut()), ("hopper", grace_hopper()))
        ]
    samples = [s for s in found if s is not None]
    assert len(samples) == 2
    # Two more "identities": the same faces mirrored (enough for a split; the test checks plumbing).
    mirrored = [
        AlignedFaceSample(s.image[:, ::-1].copy(), _mirror(s.landmarks), s.identity + "-mirror") for s in samples
    ]
    return samples + mirrored


def _mirror(landmarks: np.ndarray) -> np.ndarray:
    out = landmarks.copy()
    out[:, 0] = DETECTOR_INPUT - 1 - out[:, 0]
    return out


TINY = DetectorTrainConfig(steps=4, batch=4, checkpoint_every=2, start="scratch", width=0.25)


def test_tiny_detector_trains_resumes_exactly_and_exports(faces, tmp_path: Path) -> None:
    train, validation = [faces[0], faces[2]], [faces[1], faces[3]]
    card = train_detector(train, validation, tmp_path / "straight", config=TINY)
    assert card["training"]["faces"] == 2 and card["validation"]["identities"] == 2
    assert 0.0 <= card["validation"]["sbi_auc"] <= 1.0
    assert card["calibration"]["temperature"] > 0

    import torch

    from likeness.train.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["step"] == 4
    losses: list[float] = []
    train_detector(train, validation, tmp_path / "twice", config=TINY, progress=lambda d, t, loss: losses.append(loss))
    # Replay: a run killed after its step-2 checkpoint resumes to the same weights.
    partial_losses: list[float] = []

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int, loss: float) -> None:
        partial_losses.append(loss)
        if done == 2:
            raise Stop

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Stop):
        train_detector(train, validation, interrupted, config=TINY, progress=stop_after_two)
    assert load_checkpoint(interrupted / "checkpoint.pt")["step"] == 2
    resumed_losses: list[float] = []
    train_detector(train, validation, interrupted, config=TINY, progress=lambda d, t, loss: resumed_losses.append(loss))
    assert partial_losses + resumed_losses == pytest.approx(losses, abs=1e-6)
    final_a = load_checkpoint(tmp_path / "twice" / "checkpoint.pt")["net"]
    final_b = load_checkpoint(interrupted / "checkpoint.pt")["net"]
    for key in final_a:
        torch.testing.assert_close(final_a[key], final_b[key])

    model = load_detector(tmp_path / "straight")
    crops = np.stack([f.image for f in faces])
    logits = model.logits(crops)
    assert logits.shape == (4,) and np.isfinite(logits).all()
    assert np.isfinite(track_score(logits))
    probability = model.probability(logits)
    assert ((probability > 0) & (probability < 1)).all()
    with pytest.raises(ModelError):
        model.logits(crops[:, :64])


def test_changed_weights_or_card_are_refused(faces, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_detector([faces[0], faces[2]], [faces[1], faces[3]], out, config=TINY)
    (out / MODEL_FILE).write_bytes((out / MODEL_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        load_detector(out)
    (out / CARD_FILE).write_text(json.dumps({"sha256": "x"}))
    with pytest.raises(ModelError):
        load_detector(out)
    with pytest.raises(ModelError):
        load_detector(tmp_path / "nothing")


def test_identities_may_not_leak_into_validation(faces, tmp_path: Path) -> None:
    with pytest.raises(FaceError, match="identities in both"):
        train_detector([faces[0], faces[1]], [faces[0], faces[3]], tmp_path / "x", config=TINY)
    with pytest.raises(FaceError):
        train_detector([faces[0]], [faces[1]], tmp_path / "y", config=TINY)


def test_a_fine_tune_through_the_library_lists_the_general_models_files(faces, tmp_path: Path) -> None:
    from likeness.detector.general import GENERAL_BASE_NAME, general_card

    card = train_detector(
        [faces[0], faces[2]], [faces[1], faces[3]], tmp_path / "ft", config=DetectorTrainConfig(steps=1, batch=2)
    )
    assert card["training"]["base"]["name"] == GENERAL_BASE_NAME
    assert set(general_card()["training"]["files_sha256"]) <= set(card["training"]["files_sha256"])


@pytest.mark.parametrize(
    "change",
    [
        {"config": {"start": "imagenet", "width": 1.0}},
        {"config": {"steps": 6}},
        {"training_files": ["b" * 64]},
    ],
    ids=["start", "steps", "files"],
)
def test_a_rerun_with_another_start_or_data_does_not_resume_the_old_weights(
    faces, tmp_path: Path, change: dict
) -> None:
    """New-user trial 4: ``detector train --out det`` run again with ``--from-imagenet`` (or
    without the ``--train-only`` frames) loaded det's checkpoint, exported the old weights and
    wrote a card naming ImageNet as the start and listing none of the artist frames it was
    trained on, which ``evaluate`` would then accept as held-out media."""
    from dataclasses import replace

    train, validation = [faces[0], faces[2]], [faces[1], faces[3]]
    out = tmp_path / "det"
    train_detector(train, validation, out, config=TINY, training_files=["a" * 64])
    card_before = (out / CARD_FILE).read_bytes()
    config = replace(TINY, **change.get("config", {}))
    if change.get("validation"):
        train, validation = [faces[1], faces[3]], [faces[0], faces[2]]
    with pytest.raises(ModelError, match="not a checkpoint of this training run") as refused:
        train_detector(train, validation, out, config=config, training_files=change.get("training_files", ["a" * 64]))
    assert "another --out folder" in str(refused.value)
    assert (out / CARD_FILE).read_bytes() == card_before
    # the same run again resumes (and finds nothing left to do)
    again = train_detector(
        train if not change.get("validation") else [faces[0], faces[2]],
        validation if not change.get("validation") else [faces[1], faces[3]],
        out,
        config=TINY,
        training_files=["a" * 64],
    )
    assert again["training"]["files_sha256"] == ["a" * 64]
