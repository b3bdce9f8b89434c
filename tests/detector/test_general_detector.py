"""The general detector shipped as the base of agency fine-tunes: its card names its weights, the
half-precision weights load strictly and score as the ONNX exported from them does, a fine-tune
starts from it by default and inherits its training files, an edited file is refused, and verify
never uses it unregistered."""

from __future__ import annotations

import json
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
    export_general,
    general_card,
    general_folder,
    general_network,
    half_precision,
)
from likeness.detector.train import CARD_FILE, MODEL_FILE, DetectorTrainConfig, initial_network
from likeness.digests import sha256_file
from likeness.errors import ConfigError, ModelError

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def test_the_shipped_card_names_the_shipped_files() -> None:
    folder = general_folder()
    card = general_card()
    assert card["files"] == {WEIGHTS_FILE: sha256_file(folder / WEIGHTS_FILE)}
    assert "file" not in card and "sha256" not in card  # no ONNX ships: export_general writes one
    assert asset(GENERAL_WEIGHTS_ASSET).sha256 == card["files"][WEIGHTS_FILE]
    assert asset(GENERAL_CARD_ASSET).sha256 == sha256_file(folder / CARD_FILE)
    assert (
        card["intended_use"] == "base for agency fine-tunes; not used by verify: fails the gates, see docs/detector.md"
    )
    assert "evaluation" not in card  # nothing that register could take for a measured pass
    assert not any(card["gate_figures"]["holds"].values()) and card["gate_figures"]["run"]
    # measured on both footages under every condition of benchmarks/detector.py, the crop included
    measured = {(c["footage"], c["condition"]) for c in card["gate_figures"]["conditions"]}
    conditions = ("crf23", "crf28", "crf35", "half-crf23", "crop10-crf23")
    assert measured == {(footage, c) for footage in ("actor", "generated") for c in conditions}
    assert card["training"]["start"] == "imagenet" and len(card["training"]["files_sha256"]) >= 249
    assert any("--from-imagenet" in line for line in card["rerun"])
    assert {"validation", "calibration", "trained", "licence", "storage"} <= card.keys()
    assert card["validation"]["sbi_auc"] >= 0.95  # measured on the shipped (rounded) weights
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == [CARD_FILE, WEIGHTS_FILE]
    assert all((folder / name).stat().st_size < 5_000_000 for name in (WEIGHTS_FILE, CARD_FILE))


def test_half_precision_halves_weight_tensors_only() -> None:
    import torch

    state = {
        "conv.weight": torch.tensor([[1 / 3, 2.0]]),
        "bn.running_var": torch.tensor([1e-45, 0.5]),
        "bn.num_batches_tracked": torch.tensor(7),
    }
    halved = half_precision(state)
    assert halved["conv.weight"].dtype == torch.float16 and halved["conv.weight"][0, 0].item() != 1 / 3
    assert halved["bn.running_var"].dtype == torch.float32 and halved["bn.running_var"][0].item() > 0
    assert halved["bn.num_batches_tracked"].item() == 7 and halved["bn.num_batches_tracked"].dtype == torch.int64


def test_the_weights_load_strictly_and_score_as_the_exported_onnx(astronaut, grace_hopper, tmp_path) -> None:
    import torch

    from likeness.detector.network import build_detector, imagenet_weights_path
    from likeness.detector.score import load_detector
    from likeness.detector.train import align_largest, to_tensor_batch
    from likeness.faces.detect import FaceDetector
    from likeness.train.checkpoint import load_checkpoint

    state = load_checkpoint(asset_path(GENERAL_WEIGHTS_ASSET))["net"]
    assert {str(v.dtype) for v in state.values() if v.dim() >= 2} == {"torch.float16"}
    assert {str(v.dtype) for v in state.values() if v.dim() < 2} <= {"torch.float32", "torch.int64"}
    head = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    fresh = build_detector(pretrained=False)
    fresh.load_state_dict(state | {k: head[k.removeprefix("backbone.")] for k in UNUSED_IMAGENET_HEAD}, strict=True)

    net, digest = general_network()
    assert digest == asset(GENERAL_WEIGHTS_ASSET).sha256
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    with FaceDetector(mode="image") as detector:
        faces = [align_largest(detector, rgb, identity=str(k)) for k, rgb in enumerate((astronaut, grace_hopper))]
    crops = np.stack([f.image for f in faces if f is not None])
    assert len(crops) == 2
    net.eval()
    with torch.no_grad():
        torch_logits = net(torch.from_numpy(to_tensor_batch(list(crops))))[:, 0].numpy()
    card = export_general(tmp_path / "general")
    assert card["sha256"] == sha256_file(tmp_path / "general" / MODEL_FILE)
    assert card["exported_from"]["weights_sha256"] == digest
    model = load_detector(tmp_path / "general")
    onnx_logits = model.logits(crops) * model.temperature  # raw logits, as the network gives them
    np.testing.assert_allclose(torch_logits, onnx_logits, atol=1e-3)


def test_export_general_command_writes_a_detector_folder(tmp_path) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    result = CliRunner().invoke(app, ["detector", "export-general", "--out", str(tmp_path / "g")], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "SBI AUC" in result.output
    card = json.loads((tmp_path / "g" / CARD_FILE).read_text())
    assert card["sha256"] == sha256_file(tmp_path / "g" / MODEL_FILE)
    assert general_card()["files"] == {WEIGHTS_FILE: card["exported_from"]["weights_sha256"]}
    # the file holds the computation only: no stack traces naming where likeness is installed,
    # so the same weights export to the same bytes from any install
    import likeness

    onnx_file = (tmp_path / "g" / MODEL_FILE).read_bytes()
    assert str(Path(likeness.__file__).parent).encode() not in onnx_file and b'File "' not in onnx_file


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
    """The shipped weights with one byte flipped (same size), where the asset table looks for them."""
    edited = tmp_path / WEIGHTS_FILE
    payload = bytearray(asset_path(GENERAL_WEIGHTS_ASSET).read_bytes())
    payload[len(payload) // 2] ^= 1
    edited.write_bytes(payload)
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
    text = json.dumps(card, indent=2)  # padded to the shipped size: only the sha256 tells them apart
    edited.write_text(text + " " * (asset(GENERAL_CARD_ASSET).size - len(text.encode())))
    real = asset_path
    monkeypatch.setattr("likeness.assets.asset_path", lambda name: edited if name == GENERAL_CARD_ASSET else real(name))
    with pytest.raises(ModelError, match=f"{edited}: {GENERAL_CARD_ASSET} has SHA-256"):
        general_card()


def test_the_train_command_refuses_edited_weights_before_aligning(edited_weights, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    def no_alignment(*args, **kwargs):
        raise AssertionError("aligned faces for a run that cannot start")

    monkeypatch.setattr("likeness.detector.train.align_each", no_alignment)
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
    export_general(tmp_path / "general")
    with pytest.raises(GateFailed, match="holds no evaluation"):
        register_detector(enrolled_world.workspace, tmp_path / "general", "mina")
    assert not (enrolled_world.workspace.home / "detectors").exists()


def test_the_exported_general_detector_is_written_whole(tmp_path, monkeypatch) -> None:
    """The model and its card were written straight under their own names, unsynced: a kill
    mid-write left a torn model that a second export then refused to replace."""
    from tests.durability import assert_written_whole, hidden_files, watch_disk

    log = watch_disk(monkeypatch)
    export_general(tmp_path / "general")
    for name in (MODEL_FILE, CARD_FILE):
        assert_written_whole(log, tmp_path / "general" / name)
    assert hidden_files(tmp_path) == []
