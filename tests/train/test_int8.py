"""The int8 copy of an exported swap model: calibration, fidelity gate, choice at render time, hashes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from likeness.errors import ConsentError, ModelError
from likeness.train import export_model, generated_face_samples, load_swap_model, quantize
from likeness.train.quantize import INT8_MIN_PSNR_DB, describe_int8, output_psnr, output_tail_nodes, split_calibration
from likeness.train.swap_model import INT8_ONNX_NAME, ONNX_NAME, choose_precision

from .conftest import tiny_config, train_consented

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


@pytest.fixture
def trained(consent_world, faces, tmp_path):
    """Trained long enough (30 iterations) for the int8 copy's fidelity to mean something."""
    out = tmp_path / "model"
    config = tiny_config(
        iterations=30, batch_size=8, checkpoint_every=30, seed=3, learning_rate=1e-3, validation_fraction=0.1
    )
    train_consented(consent_world, faces, out, config)
    return out


def test_calibration_and_check_faces_are_disjoint_and_spread():
    calibration, check = split_calibration(200)
    assert len(calibration) == 32 and len(check) == 32
    assert not set(calibration) & set(check)
    assert min(calibration) == 0 and max(check) == 199
    small_calibration, small_check = split_calibration(5)
    assert sorted([*small_calibration, *small_check]) == [0, 1, 2, 3, 4]


def test_psnr_takes_the_worse_of_face_and_mask():
    face = np.full((2, 3, 4, 4), 0.5, np.float32)
    mask = np.ones((2, 1, 4, 4), np.float32)
    noisy_mask = mask.copy()
    noisy_mask[1] -= 0.1  # face 1: mask off by 0.1 everywhere -> 20 dB
    psnr = output_psnr((face, mask), (face + 0.001, noisy_mask))
    assert psnr[0] == pytest.approx(60.0, abs=0.01)
    assert psnr[1] == pytest.approx(20.0, abs=0.01)


def test_export_with_performer_faces_writes_a_checked_int8_copy(consent_world, faces, trained):
    exported = export_model(
        consent_world.workspace,
        consent_world.authorize(),
        consent_world.authorize_release(),
        trained,
        performer_faces=faces[1],
    )
    int8 = exported.card["int8"]
    assert int8["passed"] and int8["psnr_db_min"] >= INT8_MIN_PSNR_DB
    assert int8["calibration_faces"] == 10 and int8["check_faces"] == 10
    assert (trained / INT8_ONNX_NAME).is_file() and len(int8["sha256"]) == 64
    assert json.loads((trained / "model_card.json").read_text())["int8"] == int8
    assert describe_int8(int8).startswith(f"int8 copy {INT8_ONNX_NAME}: {int8['psnr_db_min']:.1f} dB worst")
    assert consent_world.workspace.ledger.find("model.exported", int8_sha256=int8["sha256"])
    # The convolutions run in int8 except each output's last one: that one and the ops after it
    # stay float, so the output pixels are not rounded to 8-bit logits.
    graph = onnx.load(str(trained / INT8_ONNX_NAME)).graph
    producers = {name: node for node in graph.node for name in node.output}
    convs = {node.name: node for node in graph.node if node.op_type == "Conv"}
    int8_weights = {
        name
        for name, node in convs.items()
        if getattr(producers.get(node.input[1]), "op_type", None) == "DequantizeLinear"
    }
    float_convs = set(convs) - int8_weights
    assert float_convs == set(output_tail_nodes(onnx.load(str(trained / ONNX_NAME)))) & set(convs)
    assert len(float_convs) == 2 and len(int8_weights) >= 4
    assert all(producers[out.name].op_type != "DequantizeLinear" for out in graph.output)

    authz = consent_world.authorize("music_video")
    float_model = load_swap_model(consent_world.workspace, trained, authz=authz, precision="float")
    int8_model = load_swap_model(consent_world.workspace, trained, authz=authz, precision="int8")
    assert (float_model.precision, int8_model.precision) == ("float", "int8")
    # Each names the file it runs (a resumed render keys its checkpoint on it).
    assert (float_model.file_sha256, int8_model.file_sha256) == (exported.card["onnx_sha256"], int8["sha256"])
    # "auto", the default, runs the int8 copy on a CPU (these machines have no CUDA build).
    auto = load_swap_model(consent_world.workspace, trained, authz=authz)
    assert auto.precision == "int8" and auto.precision_reason.startswith("auto: CPU, int8 copy at worst")
    assert auto.file_sha256 == int8["sha256"]
    # Faces neither calibrated nor checked on: the int8 swap stays close to the float one.
    fresh = (generated_face_samples(6, identity=2, size=32, seed=9).images.astype(np.float32) / 255).transpose(
        0, 3, 1, 2
    )
    fresh = np.ascontiguousarray(fresh)
    psnr = output_psnr(float_model.run(fresh), int8_model.run(fresh))
    assert psnr.min() >= INT8_MIN_PSNR_DB - 3

    # A changed int8 file is refused, as a changed float file is, by auto and by float as well:
    # a present copy is checked whichever precision runs.
    data = (trained / INT8_ONNX_NAME).read_bytes()
    (trained / INT8_ONNX_NAME).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    for precision in ("int8", "auto", "float"):
        with pytest.raises(ConsentError, match="does not match the signed model card") as refused:
            load_swap_model(consent_world.workspace, trained, authz=authz, precision=precision)
        assert refused.value.reason == "artefact_altered" and INT8_ONNX_NAME in str(refused.value)
    # A folder copied without the int8 file: auto renders in float and says why; int8 is refused.
    (trained / INT8_ONNX_NAME).unlink()
    fallback = load_swap_model(consent_world.workspace, trained, authz=authz)
    assert fallback.precision == "float" and "not in the model folder" in fallback.precision_reason
    with pytest.raises(ModelError, match="ONNX file missing"):
        load_swap_model(consent_world.workspace, trained, authz=authz, precision="int8")
    (trained / INT8_ONNX_NAME).write_bytes(data)

    # Exporting again without the performer's faces drops the copy: it would not match.
    again = export_model(consent_world.workspace, consent_world.authorize(), consent_world.authorize_release(), trained)
    assert again.card["int8"] is None and not (trained / INT8_ONNX_NAME).exists()
    with pytest.raises(ModelError, match="has no int8 copy"):
        load_swap_model(consent_world.workspace, trained, authz=authz, precision="int8")


def test_int8_copy_below_the_fidelity_gate_is_not_kept(consent_world, faces, trained, monkeypatch):
    monkeypatch.setattr(quantize, "INT8_MIN_PSNR_DB", 500.0)
    exported = export_model(
        consent_world.workspace,
        consent_world.authorize(),
        consent_world.authorize_release(),
        trained,
        performer_faces=faces[1],
    )
    int8 = exported.card["int8"]
    assert not int8["passed"] and int8["sha256"] is None and int8["min_psnr_db_required"] == 500.0
    assert not (trained / INT8_ONNX_NAME).exists()
    assert describe_int8(int8).endswith("below the 500 dB needed")
    authz = consent_world.authorize("music_video")
    auto = load_swap_model(consent_world.workspace, trained, authz=authz)
    assert auto.precision == "float" and "no usable int8 copy" in auto.precision_reason
    with pytest.raises(ModelError, match="failed its fidelity check"):
        load_swap_model(consent_world.workspace, trained, authz=authz, precision="int8")


def test_calibration_faces_must_be_the_trained_performers(consent_world, faces, trained):
    with pytest.raises(ModelError, match="not the ones this model was trained on"):
        export_model(
            consent_world.workspace,
            consent_world.authorize(),
            consent_world.authorize_release(),
            trained,
            performer_faces=faces[0],
        )
    assert not (trained / "model.onnx").exists()


def test_precision_choice():
    passed = {"int8": {"passed": True, "faster": True, "sha256": "ab" * 32, "psnr_db_min": 51.2, "check_faces": 32}}
    assert choose_precision(passed, "float") == ("float", "asked for")
    assert choose_precision(passed, "int8") == ("int8", "asked for; worst 51.2 dB to float on 32 held-out faces")
    # auto: the int8 copy on a CPU; float on a GPU, without a usable copy, or when int8 was not faster.
    assert choose_precision(passed, "auto") == (
        "int8",
        "auto: CPU, int8 copy at worst 51.2 dB PSNR to float on 32 held-out faces",
    )
    assert choose_precision(passed, "auto", gpu=True) == ("float", "auto: a GPU runs the float model")
    assert choose_precision({"int8": None}, "auto") == ("float", "auto: no usable int8 copy (none was made at export)")
    failed = {"int8": {"passed": False, "sha256": None, "reason": "only 3 performer faces; need at least 4"}}
    assert choose_precision(failed, "auto") == (
        "float",
        "auto: no usable int8 copy (only 3 performer faces; need at least 4)",
    )
    slower = {"int8": dict(passed["int8"], faster=False)}
    assert choose_precision(slower, "auto") == ("float", "auto: the int8 copy was not faster than float when exported")
    assert choose_precision(passed, "auto", int8_file=False) == (
        "float",
        "auto: the int8 copy's file (model.int8.onnx) is not in the model folder",
    )
    assert choose_precision(passed, "int8", int8_file=False)[0] == "int8"  # loading it then fails on the file
    with pytest.raises(ModelError, match="no int8 copy"):
        choose_precision({"int8": None}, "int8")
    with pytest.raises(ModelError, match="failed its fidelity check"):
        choose_precision({"int8": {"passed": False, "sha256": None}}, "int8")
    with pytest.raises(ModelError, match="only 3 performer faces"):
        choose_precision({"int8": {"passed": False, "reason": "only 3 performer faces; need at least 4"}}, "int8")
    with pytest.raises(ModelError, match="precision must be one of"):
        choose_precision(passed, "fp16")


def test_quantization_quiets_only_its_own_records():
    import logging

    from likeness.train.quantize import _quiet_root_logger

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)

    def record(path: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.WARNING, path, 1, "advice", None, None)

    with _quiet_root_logger():
        assert root.level == level
        assert not root.filter(record("/venv/site-packages/onnxruntime/quantization/quantize.py"))
        assert root.filter(record("/app/likeness/train/loop.py"))
    assert root.level == level and root.handlers == handlers and not root.filters
