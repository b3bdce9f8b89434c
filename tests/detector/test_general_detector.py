"""The general detector shipped as the base of agency fine-tunes: its card names its files, its
weights load strictly and score as its ONNX file does, a fine-tune starts from it by default and
inherits its training files, an edited file is refused, and verify never uses it unregistered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from likeness.assets import asset, asset_path
from likeness.detector.general import (
    GENERAL_BASE_NAME,
    GENERAL_CARD_ASSET,
    GENERAL_WEIGHTS_ASSET,
    UNUSED_IMAGENET_HEAD,
    WEIGHTS_FILE,
    general_card,
    general_folder,
    general_network,
)
from likeness.detector.train import CARD_FILE, MODEL_FILE, DetectorTrainConfig, initial_network
from likeness.digests import sha256_file
from likeness.errors import ConfigError, ModelError

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def test_the_shipped_card_names_the_shipped_files() -> None:
    folder = general_folder()
    card = general_card()
    assert card["files"] == {name: sha256_file(folder / name) for name in (MODEL_FILE, WEIGHTS_FILE)}
    assert card["sha256"] == card["files"][MODEL_FILE] and card["file"] == MODEL_FILE
    assert asset(GENERAL_WEIGHTS_ASSET).sha256 == card["files"][WEIGHTS_FILE]
    assert asset(GENERAL_CARD_ASSET).sha256 == sha256_file(folder / CARD_FILE)
    assert (
        card["intended_use"] == "base for agency fine-tunes; not used by verify: fails the gates, see docs/detector.md"
    )
    assert "evaluation" not in card  # nothing that register could take for a measured pass
    assert not any(card["gate_figures"]["holds"].values()) and card["gate_figures"]["run"]
    assert card["training"]["start"] == "imagenet" and len(card["training"]["files_sha256"]) >= 249
    assert any("--from-imagenet" in line for line in card["rerun"])
    assert {"validation", "calibration", "trained", "licence"} <= card.keys()
    shipped = sum((folder / name).stat().st_size for name in (MODEL_FILE, WEIGHTS_FILE, CARD_FILE))
    assert shipped < 19 * 2**20


def test_the_weights_load_strictly_and_score_as_the_onnx_file(astronaut, grace_hopper) -> None:
    import torch

    from likeness.detector.network import build_detector, imagenet_weights_path
    from likeness.detector.score import load_detector
    from likeness.detector.train import align_largest, to_tensor_batch
    from likeness.faces.detect import FaceDetector
    from likeness.train.checkpoint import load_checkpoint

    state = load_checkpoint(asset_path(GENERAL_WEIGHTS_ASSET))["net"]
    head = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    fresh = build_detector(pretrained=False)
    fresh.load_state_dict(state | {k: head[k.removeprefix("backbone.")] for k in UNUSED_IMAGENET_HEAD}, strict=True)
    assert all(v.dtype != torch.float16 for v in state.values())

    net, digest = general_network()
    assert digest == asset(GENERAL_WEIGHTS_ASSET).sha256
    with FaceDetector(mode="image") as detector:
        faces = [align_largest(detector, rgb, identity=str(k)) for k, rgb in enumerate((astronaut, grace_hopper))]
    crops = np.stack([f.image for f in faces if f is not None])
    assert len(crops) == 2
    net.eval()
    with torch.no_grad():
        torch_logits = net(torch.from_numpy(to_tensor_batch(list(crops))))[:, 0].numpy()
    model = load_detector(general_folder())
    onnx_logits = model.logits(crops) * model.temperature  # raw logits, as the network gives them
    np.testing.assert_allclose(torch_logits, onnx_logits, atol=1e-3)


def test_each_start_is_recorded_by_name_and_sha256() -> None:
    _, base = initial_network(DetectorTrainConfig())
    assert base["name"] == GENERAL_BASE_NAME and base["sha256"] == asset(GENERAL_WEIGHTS_ASSET).sha256
    _, imagenet = initial_network(DetectorTrainConfig(start="imagenet"))
    assert imagenet["sha256"] == asset("mobilenet-v2-imagenet").sha256
    _, scratch = initial_network(DetectorTrainConfig(start="scratch", width=0.25))
    assert scratch["sha256"] is None
    with pytest.raises(ConfigError, match="width 1.0"):
        initial_network(DetectorTrainConfig(width=0.25))
    with pytest.raises(ConfigError, match="expected one of general, imagenet, scratch"):
        initial_network(DetectorTrainConfig(start="ssl"))  # type: ignore[arg-type]


@pytest.fixture
def edited_weights(monkeypatch, tmp_path) -> Path:
    """The shipped weights with one byte more, where the asset table looks for them."""
    edited = tmp_path / WEIGHTS_FILE
    shutil.copy(asset_path(GENERAL_WEIGHTS_ASSET), edited)
    with edited.open("ab") as handle:
        handle.write(b"\0")
    real = asset_path
    monkeypatch.setattr(
        "likeness.assets.asset_path", lambda name: edited if name == GENERAL_WEIGHTS_ASSET else real(name)
    )
    return edited


def test_edited_shipped_weights_are_refused_naming_the_file(edited_weights) -> None:
    with pytest.raises(ModelError, match=f"{edited_weights}: {GENERAL_WEIGHTS_ASSET} has SHA-256"):
        initial_network(DetectorTrainConfig())


def test_an_edited_shipped_card_is_refused(monkeypatch, tmp_path) -> None:
    card = json.loads(asset_path(GENERAL_CARD_ASSET).read_text())
    card["training"]["files_sha256"] = card["training"]["files_sha256"][:1]  # hide the training set
    edited = tmp_path / CARD_FILE
    edited.write_text(json.dumps(card))
    real = asset_path
    monkeypatch.setattr("likeness.assets.asset_path", lambda name: edited if name == GENERAL_CARD_ASSET else real(name))
    with pytest.raises(ModelError, match=f"{edited}: {GENERAL_CARD_ASSET} has SHA-256"):
        general_card()


def test_the_train_command_refuses_edited_weights_before_aligning(edited_weights, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    def no_alignment(*args, **kwargs):
        raise AssertionError("aligned faces for a run that cannot start")

    monkeypatch.setattr("likeness.detector.train.align_paths", no_alignment)
    real = tmp_path / "real"
    real.mkdir()
    for k in range(14):
        (real / f"person{k:02d}.png").write_bytes(b"")
    result = CliRunner().invoke(
        app, ["detector", "train", "--real", str(real), "--out", str(tmp_path / "out")], terminal_width=400
    )
    assert result.exit_code == 1
    assert WEIGHTS_FILE in result.output and "Traceback" not in result.output


def test_init_and_from_imagenet_are_one_choice(tmp_path) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    result = CliRunner().invoke(
        app,
        [
            "detector",
            "train",
            "--real",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--init",
            "x.pt",
            "--from-imagenet",
        ],
    )
    assert result.exit_code == 1 and "give one" in result.output


def test_an_unregistered_workspace_never_scores_with_the_general_model(enrolled_world, tmp_path, monkeypatch) -> None:
    """The astronaut is the enrolled artist: verify recognises her, and still does not analyse."""
    from likeness.detector.evaluation import GateFailed
    from likeness.detector.registered import register_detector
    from likeness.media import write_image
    from likeness.media.synthetic import astronaut
    from likeness.verify.pipeline import verify_path

    def no_scoring(*args, **kwargs):
        raise AssertionError("verify loaded a detector nobody registered")

    monkeypatch.setattr("likeness.detector.score.session_for", no_scoring)
    photo = write_image(tmp_path / "photo.png", astronaut())
    result = verify_path(enrolled_world.workspace, photo)
    assert result.verdict.code == "enrolled-artist-unlabelled"
    assert result.to_dict()["manipulation"] == {
        "status": "not analysed",
        "reason": "no detector is registered in this workspace",
        "skipped": [],
    }
    monkeypatch.undo()
    with pytest.raises(GateFailed, match="holds no evaluation"):
        register_detector(enrolled_world.workspace, general_folder(), "mina")
    assert not (enrolled_world.workspace.home / "detectors").exists()
