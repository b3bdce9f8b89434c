"""Training the occlusion mask: it starts from the shipped weights exactly, trains at 64 and
128 px, and exports one ONNX network that runs at both."""

from __future__ import annotations

import importlib.util
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from likeness.errors import ModelError
from likeness.faces.align import align_face
from likeness.faces.detect import FaceDetector
from likeness.faces.occlusion import ONNX_FILE, WEIGHTS_DIR, OcclusionSegmenter, spectacle_zone
from likeness.media.synthetic import astronaut
from likeness.train.checkpoint import load_checkpoint
from likeness.train.occlusion import (
    COVERAGES,
    DRAW_SIZE,
    AlignedSample,
    OcclusionTrainConfig,
    build_network,
    init_from_onnx,
    make_example,
    network_onnx,
    train_occlusion_mask,
)

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def samples() -> list[AlignedSample]:
    rgb = astronaut()
    face = FaceDetector(mode="image").detect(rgb)[0]
    aligned = [align_face(rgb, face.landmarks, size=DRAW_SIZE, coverage=c) for c in COVERAGES]
    return [AlignedSample(a.image, a.landmarks) for a in aligned]


def test_the_network_starts_from_the_shipped_weights_exactly() -> None:
    net = build_network()
    init_from_onnx(net, WEIGHTS_DIR / ONNX_FILE)
    net.eval()
    crops = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        logits = net(torch.from_numpy(crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0))[:, 0]
    shipped = OcclusionSegmenter()
    expected = shipped.session.run(None, {shipped.input_name: crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0})
    assert np.abs(logits.numpy() - expected[0][:, 0]).max() < 1e-3


def test_a_network_this_product_exported_starts_a_fine_tune_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_network()
    for module in net.modules():  # batch norms that are not the identity: the export folds them
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    (tmp_path / ONNX_FILE).write_bytes(network_onnx(net))
    again = build_network()
    init_from_onnx(again, tmp_path / ONNX_FILE)
    crops = torch.from_numpy(np.random.default_rng(2).random((2, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        assert (again.eval()(crops) - net(crops)).abs().max() < 1e-4


def test_examples_come_at_both_sizes_the_same_for_the_same_seed(samples) -> None:
    for size in (64, 128):
        image, target = make_example(samples[0], np.random.default_rng(5), size)
        again, same = make_example(samples[0], np.random.default_rng(5), size)
        assert image.shape == (size, size, 3) and target.shape == (size, size)
        assert np.array_equal(image, again) and np.array_equal(target, same)


def test_a_fine_tune_exports_one_network_for_both_sizes(samples, tmp_path: Path) -> None:
    config = OcclusionTrainConfig(steps=2, batch=2, checkpoint_every=1, init_onnx=str(WEIGHTS_DIR / ONNX_FILE))
    card = train_occlusion_mask(samples, samples[:1], tmp_path, config=config)
    assert card["sizes"] == [64, 128] and set(card["validation"]["figures"]) == {"64", "128"}
    assert "fine-tuned from occlusion_mask.onnx" in card["training"]["method"]
    segmenter = OcclusionSegmenter(tmp_path)
    for size in (64, 128):
        assert segmenter.input_size(size) == size
        points = np.repeat(samples[0].landmarks[None] * (size / DRAW_SIZE), 3, 0)
        assert segmenter.occluders(np.zeros((3, size, size, 3), np.uint8), points).shape == (3, size, size)
    # As a thin add-on to the shipped mask: it adds only inside the spectacle zone of 128 px crops.
    alone, zoned = OcclusionSegmenter(), OcclusionSegmenter(thin=tmp_path / ONNX_FILE)
    image, marks = samples[1].image.copy(), samples[1].landmarks
    for y in range(20, 120, 6):  # thin lines everywhere: spectacles' zone and cheeks alike
        cv2.line(image, (10, y), (118, y + 3), (200, 200, 205), 1)
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)[None]
    assert np.array_equal(zoned.occluders(small, marks[None] / 2), alone.occluders(small, marks[None] / 2))
    with_add_on = zoned.occluders(image[None], marks[None])[0]
    without = alone.occluders(image[None], marks[None])[0]
    outside = spectacle_zone(marks, 128) == 0
    assert np.array_equal(with_add_on[outside], without[outside]) and (with_add_on >= without).all()
    with pytest.raises(ModelError, match="trained at 128 px"):
        OcclusionSegmenter(thin=WEIGHTS_DIR / ONNX_FILE)  # the shipped network runs at 64 px only


def test_a_rerun_with_other_faces_or_settings_does_not_resume_the_old_weights(samples, tmp_path: Path) -> None:
    # Resumed, the old run's weights would be exported under a card naming the new settings and faces.
    config = OcclusionTrainConfig(steps=1, batch=2, checkpoint_every=1, sizes=(64,))
    train_occlusion_mask(samples, samples[:1], tmp_path, config=config)
    with pytest.raises(ModelError, match="not a checkpoint of this training run") as refused:
        train_occlusion_mask(samples[1:], samples[:1], tmp_path, config=config)
    assert "it differs in faces" in str(refused.value) and "another --work folder" in str(refused.value)
    with pytest.raises(ModelError, match=r"differs in settings\.learning_rate"):
        train_occlusion_mask(samples, samples[:1], tmp_path, config=replace(config, learning_rate=1e-4))
    card = train_occlusion_mask(samples, samples[:1], tmp_path, config=replace(config, threads=2))  # the same run
    assert card["training"]["threads"] == 2


def test_an_interrupted_run_resumed_is_the_uninterrupted_run(samples, tmp_path: Path) -> None:
    # The checkpoint kept neither PyTorch's generator nor the seconds trained: the card of a
    # resumed run gave only the last session's time.
    config = OcclusionTrainConfig(steps=4, batch=2, checkpoint_every=1, sizes=(64,))
    whole = train_occlusion_mask(samples, samples[:1], tmp_path / "whole", config=config)

    def stop_at_step_3(step: int, _total: int, _loss: float) -> None:
        time.sleep(0.5 if step == 1 else 0)  # a first session longer than the whole quick run
        if step == 3:
            raise KeyboardInterrupt  # before step 3's checkpoint: step 2's is kept

    with pytest.raises(KeyboardInterrupt):
        train_occlusion_mask(samples, samples[:1], tmp_path / "parts", config=config, progress=stop_at_step_3)
    first = load_checkpoint(tmp_path / "parts" / "checkpoint.pt")
    assert first["step"] == 2 and first["seconds"] >= 0.5
    resumed = train_occlusion_mask(samples, samples[:1], tmp_path / "parts", config=config)

    weights, again = (load_checkpoint(tmp_path / f / "checkpoint.pt") for f in ("whole", "parts"))
    assert weights["step"] == again["step"] == 4
    for name, tensor in weights["net"].items():
        assert torch.equal(tensor, again["net"][name]), name
    assert torch.equal(weights["torch_rng"], again["torch_rng"])
    assert resumed["training"]["seconds"] >= round(first["seconds"], 1) > whole["training"]["seconds"]


def test_the_training_script_names_a_missing_folder_in_one_line(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location(
        "train_occlusion_script", ROOT / "scripts" / "train_occlusion_mask.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    missing = tmp_path / "no-portraits"
    assert script.main([str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "Traceback" not in err
