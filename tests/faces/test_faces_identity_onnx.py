"""dlib's ResNet converted to ONNX: same descriptors as dlib, typed errors, and a guarded fallback."""

from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np
import onnx
import pytest
import skimage.data

from likeness.errors import FaceError, ModelError
from likeness.faces import FaceDetector, FaceEmbedder, dlib_resnet, identity, identity_distance
from likeness.faces.dlib_resnet import (
    AddPrevLayer,
    AffineLayer,
    ConvLayer,
    DlibResnetSession,
    FcLayer,
    PoolLayer,
    dlib_resnet_onnx,
    dlib_resnet_path,
    parse_dlib_resnet,
    read_dlib_resnet,
)
from likeness.faces.identity import DESCRIPTOR_TOLERANCE, EmbedderFallbackWarning, check_chip
from likeness.media.synthetic import grace_hopper

# Measured agreement is ~1e-6; the product's contract is DESCRIPTOR_TOLERANCE (1e-3).
COMPONENT_TOLERANCE = 1e-4
DISTANCE_TOLERANCE = 1e-4


def portraits() -> dict[str, np.ndarray]:
    astronaut = skimage.data.astronaut()
    hopper = grace_hopper()
    rotated = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D((225.0, 125.0), 20.0, 1.0), (512, 512), borderMode=cv2.BORDER_REFLECT
    )
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(hopper, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 20])
    return {
        "astronaut": astronaut,
        "grace_hopper": hopper,
        "astronaut_rotated": rotated,
        "astronaut_small": cv2.resize(astronaut, (260, 260), interpolation=cv2.INTER_AREA),
        "astronaut_dark": np.clip(astronaut.astype(np.float32) * 0.5, 0, 255).astype(np.uint8),
        "hopper_mirrored": np.ascontiguousarray(hopper[:, ::-1]),
        "hopper_jpeg_q20": cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
    }


@pytest.fixture(scope="module")
def weight_blob() -> bytes:
    return dlib_resnet_path().read_bytes()


@pytest.fixture(scope="module")
def faces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (rgb, landmarks) of the single face in each portrait."""
    found = {}
    with FaceDetector(max_faces=2) as detector:
        for name, rgb in portraits().items():
            detected = detector.detect(rgb)
            assert len(detected) == 1, name
            found[name] = (rgb, detected[0].landmarks)
    return found


@pytest.fixture(scope="module")
def onnx_embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="module")
def dlib_embedder() -> FaceEmbedder:
    return FaceEmbedder(backend="dlib")


def test_parsed_network_has_dlibs_face_recognition_layout(weight_blob):
    network = parse_dlib_resnet(weight_blob, source="resnet.dat")
    kinds = [type(layer) for layer in network.layers]
    assert kinds.count(ConvLayer) == 29 and kinds.count(AffineLayer) == 29
    assert kinds.count(AddPrevLayer) == 14
    pools = [layer for layer in network.layers if isinstance(layer, PoolLayer)]
    assert [p.mode for p in pools] == ["max"] + ["avg"] * 5
    assert pools[-1].window == (0, 0)  # avg_pool_everything
    first = network.layers[0]
    assert isinstance(first, ConvLayer)
    assert first.weight.shape == (32, 3, 7, 7) and first.stride == (2, 2) and first.padding == (0, 0)
    strided = [layer for layer in network.layers if isinstance(layer, ConvLayer) and layer.stride == (2, 2)]
    assert len(strided) == 5 and all(layer.padding == (0, 0) for layer in strided[1:])
    fc = network.layers[-1]
    assert isinstance(fc, FcLayer) and fc.weight.shape == (256, 128)
    np.testing.assert_allclose(network.channel_mean, [122.782, 117.001, 104.298], atol=1e-4)
    assert network.chip_size == 150 and network.input_scale == 256.0
    assert network.sha256 == dlib_resnet.DLIB_RESNET_SHA256


def test_onnx_graph_is_valid_with_uint8_chip_input(weight_blob):
    model = onnx.load_from_string(dlib_resnet_onnx(parse_dlib_resnet(weight_blob)))
    onnx.checker.check_model(model)
    (chips,) = model.graph.input
    assert chips.name == "chips" and chips.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in chips.type.tensor_type.shape.dim][1:] == [150, 150, 3]
    # Every affine follows a convolution, so all 29 fold away.
    assert sum(node.op_type == "Conv" for node in model.graph.node) == 29
    assert not any(node.op_type == "Mul" and node.name.startswith("scaled") for node in model.graph.node)


def test_network_matches_dlib_on_chips_including_noise(dlib_embedder):
    rng = np.random.default_rng(11)
    ramp = np.linspace(0, 255, 150, dtype=np.float32)
    chips = np.stack(
        [
            check_chip(),
            rng.integers(0, 256, (150, 150, 3), dtype=np.uint8),
            rng.integers(100, 140, (150, 150, 3), dtype=np.uint8),
            np.stack(
                [ramp[None, :].repeat(150, 0), ramp[:, None].repeat(150, 1), 255 - ramp[None, :].repeat(150, 0)], -1
            ).astype(np.uint8),
            np.zeros((150, 150, 3), np.uint8),
        ]
    )
    session = DlibResnetSession(dlib_resnet.converted_dlib_resnet())
    produced = session.descriptors(chips)
    assert produced.shape == (5, 128) and produced.dtype == np.float32
    for chip, row in zip(chips, produced):
        expected = np.asarray(dlib_embedder._recognizer.compute_face_descriptor(np.ascontiguousarray(chip)))
        assert np.abs(row - expected).max() <= COMPONENT_TOLERANCE
    # A batch gives what single chips give.
    np.testing.assert_allclose(session.descriptors(chips[1:2])[0], produced[1], atol=1e-5)


def test_default_embedder_is_onnx_and_reports_its_check(onnx_embedder):
    assert onnx_embedder.backend == "onnx"
    assert onnx_embedder.check_difference is not None
    assert onnx_embedder.check_difference <= COMPONENT_TOLERANCE <= DESCRIPTOR_TOLERANCE


def test_descriptors_and_distances_match_dlib_on_portraits(faces, onnx_embedder, dlib_embedder):
    names = sorted(faces)
    ours = {}
    for name in names:
        rgb, landmarks = faces[name]
        ours[name] = onnx_embedder.embed(rgb, landmarks)
        reference = dlib_embedder.embed(rgb, landmarks)
        assert ours[name].shape == (128,) and ours[name].dtype == np.float32
        assert np.abs(ours[name] - reference).max() <= COMPONENT_TOLERANCE, name
        ours[name + "@dlib"] = reference
    for a, b in itertools.combinations(names, 2):
        distance = identity_distance(ours[a], ours[b])
        expected = identity_distance(ours[a + "@dlib"], ours[b + "@dlib"])
        assert abs(distance - expected) <= DISTANCE_TOLERANCE, (a, b)
    # The pairs still say what they should: transformed self near, the other person far.
    assert identity_distance(ours["astronaut"], ours["astronaut_dark"]) < 0.3
    assert identity_distance(ours["astronaut"], ours["grace_hopper"]) > 0.6


def test_embed_many_batches_faces_of_one_frame(faces, onnx_embedder, dlib_embedder):
    left, left_marks = faces["astronaut"]
    right, right_marks = faces["grace_hopper"]
    right_small = cv2.resize(right, (right.shape[1] * 512 // right.shape[0], 512))
    scale = 512 / right.shape[0]
    group = np.ascontiguousarray(np.hstack([left, right_small]))
    landmarks = [left_marks, right_marks * scale + np.array([left.shape[1], 0], np.float32)]
    batch = onnx_embedder.embed_many(group, landmarks)
    assert batch.shape == (2, 128) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, dlib_embedder.embed_many(group, landmarks), atol=COMPONENT_TOLERANCE)
    for row, marks in zip(batch, landmarks):
        np.testing.assert_allclose(row, onnx_embedder.embed(group, marks), atol=1e-5)
    assert onnx_embedder.embed_many(group, []).shape == (0, 128)


def test_two_threads_give_the_same_descriptors(faces, onnx_embedder):
    rgb, landmarks = faces["grace_hopper"]
    two = FaceEmbedder(intra_op_threads=2)
    assert two.backend == "onnx"
    np.testing.assert_allclose(two.embed(rgb, landmarks), onnx_embedder.embed(rgb, landmarks), atol=1e-5)


def test_disagreeing_network_falls_back_to_dlib_with_one_warning(monkeypatch, weight_blob, faces, dlib_embedder):
    network = parse_dlib_resnet(weight_blob)
    fc = network.layers[-1]
    assert isinstance(fc, FcLayer)
    skewed = dataclasses.replace(network, layers=(*network.layers[:-1], FcLayer(weight=fc.weight * 1.05)))
    skewed_onnx = dlib_resnet_onnx(skewed)
    monkeypatch.setattr(dlib_resnet, "converted_dlib_resnet", lambda path=None: skewed_onnx)
    monkeypatch.setattr(identity, "_fallback_warned", False)
    with pytest.warns(EmbedderFallbackWarning, match="differs from dlib"):
        embedder = FaceEmbedder()
    assert embedder.backend == "dlib"
    assert embedder.check_difference is not None and embedder.check_difference > DESCRIPTOR_TOLERANCE
    rgb, landmarks = faces["astronaut"]
    np.testing.assert_array_equal(embedder.embed(rgb, landmarks), dlib_embedder.embed(rgb, landmarks))
    # Warned once per process: a second fallback stays quiet (pytest turns warnings into errors).
    assert FaceEmbedder().backend == "dlib"


def test_unusable_network_falls_back_to_dlib(monkeypatch):
    def broken(path=None):
        raise ModelError("resnet.dat: not a dlib face-recognition network (truncated at byte 7)")

    monkeypatch.setattr(dlib_resnet, "converted_dlib_resnet", broken)
    monkeypatch.setattr(identity, "_fallback_warned", False)
    with pytest.warns(EmbedderFallbackWarning, match="unavailable.*truncated"):
        embedder = FaceEmbedder()
    assert embedder.backend == "dlib" and embedder.check_difference is None


def test_jitter_and_explicit_dlib_run_dlib():
    assert FaceEmbedder(num_jitters=1).backend == "dlib"
    explicit = FaceEmbedder(backend="dlib")
    assert explicit.backend == "dlib" and explicit.check_difference is None


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (lambda blob: blob[:5000], "truncated"),
        (lambda blob: blob[:-1], "truncated"),
        (lambda blob: blob + b"\x00", "trailing bytes"),
        (lambda blob: b"\x01\x01\x01\x04abcd" + blob[17:], "loss .abcd."),
        (lambda blob: b"\x00" + blob[1:], "bad integer header"),
    ],
)
def test_malformed_weight_files_raise_model_error_naming_the_source(weight_blob, cut, reason):
    with pytest.raises(ModelError, match=f"broken.dat: not a dlib face-recognition network.*{reason}"):
        parse_dlib_resnet(cut(weight_blob), source="broken.dat")


def test_unreadable_weight_file_raises_model_error(tmp_path):
    missing = tmp_path / "missing.dat"
    with pytest.raises(ModelError, match="missing.dat: cannot read"):
        read_dlib_resnet(missing)
    with pytest.raises(ModelError, match="missing.dat: cannot read"):
        dlib_resnet.converted_dlib_resnet(missing)
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.dat.*truncated"):
        read_dlib_resnet(empty)


def test_bad_chips_and_options_raise_face_error():
    session = DlibResnetSession(dlib_resnet.converted_dlib_resnet())
    with pytest.raises(FaceError, match=r"uint8 \(N, 150, 150, 3\), got float32"):
        session.descriptors(np.zeros((1, 150, 150, 3), np.float32))
    with pytest.raises(FaceError, match=r"got uint8 \(150, 150, 3\)"):
        session.descriptors(np.zeros((150, 150, 3), np.uint8))
    assert session.descriptors(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(FaceError, match="intra_op_threads"):
        DlibResnetSession(b"", intra_op_threads=0)
    with pytest.raises(FaceError, match="backend"):
        FaceEmbedder(backend="torch")  # type: ignore[arg-type]
    with pytest.raises(FaceError, match="intra_op_threads"):
        FaceEmbedder(intra_op_threads=0)
