"""dlib's face-recognition ResNet, read from dlib's own weight file and run through ONNX Runtime.

``dlib_face_recognition_resnet_model_v1.dat`` (shipped in ``face_recognition_models``) is dlib's
``serialize()`` of the ``anet_type`` network of dlib's ``dnn_face_recognition_ex.cpp``: a 29-layer
ResNet that maps a 150x150 RGB face chip to a 128-D descriptor. dlib-bin runs it without BLAS
(75-175 ms of CPU per face); the same weights as an ONNX graph run in a few milliseconds.

The reader follows dlib's serialization format (``dlib/serialize.h``, ``dlib/dnn/core.h``,
``layers.h``, ``input.h``, ``tensor.h``):

* integers: one header byte (low nibble = number of little-endian bytes that follow, bit 7 =
  negative), strings: length integer then bytes, bools: ASCII ``'0'``/``'1'``, floats and
  doubles: mantissa integer then base-2 exponent integer, tensors: version 2, then
  ``num_samples, k, nr, nc`` and raw little-endian float32 values.
* ``add_loss_layer``: version, loss details, network; ``add_layer``: version, *sub-network
  first*, then the layer's details and its cached state; ``add_tag_layer`` / ``add_skip_layer``:
  version then sub-network. So the file holds every wrapper's version from the outside in, the
  input layer, then the layers' details from the inside out. Tag ids are not serialized, which
  is why the reader walks a declared layout (:func:`face_recognition_layout`).

Semantics reproduced exactly: convolution padding comes from the file (dlib's default is
``filter//2`` for stride 1 and 0 otherwise), ``affine`` is a per-channel ``gamma * x + beta``
(batch norm frozen at test time), ``add_prev`` adds two tensors of different sizes by zero-padding
the smaller one at the end of each axis (dlib's ``tt::add``), and the input layer maps a pixel to
``(value - channel_mean) / 256``.

Example:
    >>> network = read_dlib_resnet(dlib_resnet_path())
    >>> session = DlibResnetSession(dlib_resnet_onnx(network))
    >>> chips = np.zeros((2, 150, 150, 3), np.uint8)  # aligned 150 px face chips
    >>> session.descriptors(chips).shape
    (2, 128)
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from likeness.errors import FaceError, ModelError

CHIP_SIZE = 150
"""Side of the aligned face chip the network reads, in pixels (dlib's ``get_face_chip`` size)."""

CHIP_PADDING = 0.25
"""dlib's ``get_face_chip`` padding used by ``compute_face_descriptor``."""

DESCRIPTOR_SIZE = 128

DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
"""sha256 of the weight file this converter was written and checked against (face_recognition_models)."""

ONNX_OPSET = 17
ONNX_IR_VERSION = 8


# ----------------------------------------------------------------------------------------------
# Network description (what the file holds, as plain arrays)


@dataclass(frozen=True)
class ConvLayer:
    """Convolution: ``weight float32 (out, in, kh, kw)``, ``bias float32 (out,)``, square stride/padding."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AffineLayer:
    """Per-channel ``gamma * x + beta`` (dlib's test-time batch norm): ``float32 (C,)`` each."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class ReluLayer:
    """``max(x, 0)``."""


@dataclass(frozen=True)
class PoolLayer:
    """Max or average pooling; ``window == (0, 0)`` pools the whole plane (``avg_pool_everything``)."""

    mode: Literal["max", "avg"]
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class TagLayer:
    """Remembers the current tensor under ``tag`` (dlib's ``tagN``)."""

    tag: int


@dataclass(frozen=True)
class SkipLayer:
    """Replaces the current tensor by the one remembered under ``tag`` (dlib's ``skipN``)."""

    tag: int


@dataclass(frozen=True)
class AddPrevLayer:
    """Adds the tensor remembered under ``tag``; sizes may differ (zero-padded at the end)."""

    tag: int


@dataclass(frozen=True)
class FcLayer:
    """Fully connected without bias: ``output = input @ weight``, ``weight float32 (in, out)``."""

    weight: np.ndarray


DlibLayer = ConvLayer | AffineLayer | ReluLayer | PoolLayer | TagLayer | SkipLayer | AddPrevLayer | FcLayer


@dataclass(frozen=True)
class DlibResnet:
    """The parsed network: ``layers`` from input to output, and the input layer's normalisation.

    ``channel_mean`` is ``float32 (3,)`` RGB in pixel units; a pixel becomes ``(v - mean) / input_scale``.
    """

    layers: tuple[DlibLayer, ...]
    channel_mean: np.ndarray
    input_scale: float
    chip_size: int
    source: str
    sha256: str


# ----------------------------------------------------------------------------------------------
# Declared layout of dlib's face-recognition network (outermost wrapper first)

WrapperKind = Literal["layer", "tag", "skip"]


@dataclass(frozen=True)
class _Wrapper:
    kind: WrapperKind
    details: str = ""  # expected details name prefix for "layer" (e.g. "con_", "relu_")
    tag: int = 0  # tag id for tag/skip/add_prev


def _residual(*, down: bool) -> list[_Wrapper]:
    # ares      = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    # ares_down = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    # block     = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>
    block = [
        _Wrapper("layer", "affine_"),
        _Wrapper("layer", "con_"),
        _Wrapper("layer", "relu_"),
        _Wrapper("layer", "affine_"),
        _Wrapper("layer", "con_"),
        _Wrapper("tag", tag=1),
    ]
    if not down:
        return [_Wrapper("layer", "relu_"), _Wrapper("layer", "add_prev_", tag=1), *block]
    return [
        _Wrapper("layer", "relu_"),
        _Wrapper("layer", "add_prev_", tag=2),
        _Wrapper("layer", "avg_pool_"),
        _Wrapper("skip", tag=1),
        _Wrapper("tag", tag=2),
        *block,
    ]


def face_recognition_layout() -> list[_Wrapper]:
    """dlib's ``anet_type`` (dnn_face_recognition_ex.cpp), outermost wrapper first, loss excluded.

    ``fc_no_bias<128, avg_pool_everything<alevel0<...alevel4<max_pool<3,3,2,2, relu<affine<
    con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>`` with alevel0 = ares_down<256>,
    alevel1 = ares<256> x2 + ares_down<256>, alevel2 = ares<128> x2 + ares_down<128>,
    alevel3 = ares<64> x3 + ares_down<64>, alevel4 = ares<32> x3.
    """
    levels = [
        [True],  # alevel0
        [False, False, True],  # alevel1
        [False, False, True],  # alevel2
        [False, False, False, True],  # alevel3
        [False, False, False],  # alevel4
    ]
    wrappers = [_Wrapper("layer", "fc_"), _Wrapper("layer", "avg_pool_")]
    for level in levels:
        for down in level:
            wrappers.extend(_residual(down=down))
    wrappers.extend(
        [
            _Wrapper("layer", "max_pool_"),
            _Wrapper("layer", "relu_"),
            _Wrapper("layer", "affine_"),
            _Wrapper("layer", "con_"),
        ]
    )
    return wrappers


# ----------------------------------------------------------------------------------------------
# dlib's serialization primitives


class _DlibStream:
    """Cursor over dlib-serialized bytes; every read checks bounds and raises ``ModelError``."""

    def __init__(self, blob: bytes, source: str) -> None:
        self.blob = blob
        self.source = source
        self.pos = 0

    def fail(self, reason: str) -> ModelError:
        return ModelError(f"{self.source}: not a dlib face-recognition network ({reason} at byte {self.pos})")

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.blob):
            raise self.fail(f"truncated: wanted {count} bytes, {len(self.blob) - self.pos} left")
        chunk = self.blob[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        header = self.take(1)[0]
        size = header & 0x0F
        if size == 0 or size > 8 or header & 0x70:
            raise self.fail(f"bad integer header 0x{header:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if header & 0x80 else value

    def expect_integer(self, expected: tuple[int, ...], what: str) -> int:
        value = self.integer()
        if value not in expected:
            raise self.fail(f"{what} version {value}, expected one of {expected}")
        return value

    def string(self, *, max_length: int = 256) -> str:
        length = self.integer()
        if not 0 <= length <= max_length:
            raise self.fail(f"string length {length}")
        try:
            return self.take(length).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("non-ASCII name") from exc

    def real(self) -> float:
        # dlib's float_details: value = mantissa * 2**exponent; exponents 32000-32002 mark inf/-inf/nan.
        mantissa = self.integer()
        exponent = self.integer()
        if exponent >= 32000:
            raise self.fail("non-finite value in a layer setting")
        return float(mantissa) * 2.0**exponent

    def boolean(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {char!r}")
        return char == b"1"

    def tensor(self) -> np.ndarray:
        """A dlib tensor as ``float32 (num_samples, k, nr, nc)``."""
        self.expect_integer((2,), "tensor")
        dims = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor size {dims}")
        count = math.prod(dims)  # Python ints: a hostile size cannot overflow, take() bounds it
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self) -> tuple[int, int, int, int]:
        self.expect_integer((1,), "alias_tensor")
        dims = (self.integer(), self.integer(), self.integer(), self.integer())
        if any(d < 0 for d in dims):
            raise self.fail(f"negative alias_tensor size {dims}")
        return dims


def _pair(stream: _DlibStream, what: str) -> tuple[int, int]:
    first, second = stream.integer(), stream.integer()
    if first < 0 or second < 0:
        raise stream.fail(f"negative {what}")
    return first, second


def _read_con(stream: _DlibStream, version: str) -> ConvLayer:
    params = stream.tensor().reshape(-1)
    num_filters = stream.integer()
    rows, cols = _pair(stream, "filter size")
    stride = _pair(stream, "stride")
    padding = _pair(stream, "padding")
    filters = stream.alias()
    biases = stream.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        stream.real()
    use_bias = stream.boolean() if version in ("con_5", "con_6") else True
    if version == "con_6" and stream.boolean():
        raise stream.fail("con_ with a fused relu is not supported")
    # con_::setup: filters = alias_tensor(num_filters, k_in, nr, nc), then biases (1, num_filters).
    if filters[0] != num_filters or filters[2:] != (rows, cols) or min(stride) < 1:
        raise stream.fail(f"inconsistent con_ shapes {filters} vs {num_filters}x{rows}x{cols}")
    weight_count = math.prod(filters)
    bias_count = math.prod(biases) if use_bias else 0
    if params.size != weight_count + bias_count or (use_bias and bias_count != num_filters):
        raise stream.fail(f"con_ holds {params.size} values, expected {weight_count}+{bias_count}")
    weight = params[:weight_count].reshape(filters)
    bias = params[weight_count:] if use_bias else np.zeros(num_filters, np.float32)
    return ConvLayer(weight=weight, bias=bias, stride=stride, padding=padding)


def _read_affine(stream: _DlibStream) -> AffineLayer:
    params = stream.tensor().reshape(-1)
    gamma = stream.alias()
    beta = stream.alias()
    mode = stream.integer()
    # dlib's layer_mode: CONV_MODE = 0 scales per channel; FC_MODE = 1 scales every element.
    if mode != 0 or gamma[0] != 1 or gamma[2:] != (1, 1):
        raise stream.fail(f"affine_ mode {mode} with gamma {gamma}; only per-channel CONV_MODE is supported")
    count = gamma[1]
    if beta != gamma or params.size != 2 * count:
        raise stream.fail(f"affine_ holds {params.size} values for gamma {gamma} and beta {beta}")
    return AffineLayer(gamma=params[:count].copy(), beta=params[count:].copy())


def _read_pool(stream: _DlibStream, mode: Literal["max", "avg"]) -> PoolLayer:
    window = _pair(stream, "pool window")
    stride = _pair(stream, "pool stride")
    padding = _pair(stream, "pool padding")
    if min(stride) < 1:
        raise stream.fail(f"pool stride {stride}")
    if mode == "avg" and padding != (0, 0):
        # dlib averages only the valid cells next to padding; no such layer in this network.
        raise stream.fail("padded average pooling is not supported")
    return PoolLayer(mode=mode, window=window, stride=stride, padding=padding)


def _read_fc(stream: _DlibStream) -> FcLayer:
    num_outputs = stream.integer()
    num_inputs = stream.integer()
    params = stream.tensor().reshape(-1)
    weights = stream.alias()
    stream.alias()  # biases
    bias_mode = stream.integer()
    for _ in range(4):
        stream.real()
    if bias_mode != 1:  # dlib's fc_bias_mode: FC_HAS_BIAS = 0, FC_NO_BIAS = 1
        raise stream.fail(f"fc_ bias mode {bias_mode}; only fc_no_bias is part of this network")
    if weights[:2] != (num_inputs, num_outputs) or params.size != num_inputs * num_outputs:
        raise stream.fail(f"fc_ weights {weights} do not match {num_inputs}x{num_outputs}")
    return FcLayer(weight=params.reshape(num_inputs, num_outputs))


def _read_details(stream: _DlibStream, expected: str, wrapper: _Wrapper) -> DlibLayer:
    name = stream.string()
    if not name.startswith(expected):
        raise stream.fail(f"layer {name!r} where the layout has {expected!r}")
    if name in ("con_4", "con_5", "con_6"):
        return _read_con(stream, name)
    if name == "affine_":
        return _read_affine(stream)
    if name == "relu_":
        return ReluLayer()
    if name == "max_pool_2":
        return _read_pool(stream, "max")
    if name == "avg_pool_2":
        return _read_pool(stream, "avg")
    if name == "add_prev_":
        return AddPrevLayer(tag=wrapper.tag)
    if name == "fc_2":
        return _read_fc(stream)
    raise stream.fail(f"unsupported layer version {name!r}")


def parse_dlib_resnet(blob: bytes, *, source: str = "<bytes>") -> DlibResnet:
    """Parse dlib's serialized face-recognition network into :class:`DlibResnet`.

    Raises:
        ModelError: naming ``source`` and the byte offset, if the bytes are not that network.
    """
    stream = _DlibStream(blob, source)
    stream.expect_integer((1,), "add_loss_layer")
    loss = stream.string()
    if loss != "loss_metric_2":
        raise stream.fail(f"loss {loss!r}, expected 'loss_metric_2'")
    stream.real()  # margin
    stream.real()  # distance threshold

    layout = face_recognition_layout()
    versions: list[int] = []
    for depth, wrapper in enumerate(layout):
        innermost = depth == len(layout) - 1
        if wrapper.kind == "layer":
            versions.append(stream.expect_integer((2, 3) if innermost else (1, 2), "add_layer"))
        else:
            versions.append(stream.expect_integer((1,), f"add_{wrapper.kind}_layer"))

    if stream.string() != "input_rgb_image_sized":
        raise stream.fail("input layer is not input_rgb_image_sized")
    channel_mean = np.array([stream.real(), stream.real(), stream.real()], dtype=np.float32)
    rows, cols = stream.integer(), stream.integer()
    if (rows, cols) != (CHIP_SIZE, CHIP_SIZE):
        raise stream.fail(f"input size {rows}x{cols}, expected {CHIP_SIZE}x{CHIP_SIZE}")

    layers: list[DlibLayer] = []
    for depth in range(len(layout) - 1, -1, -1):
        wrapper = layout[depth]
        if wrapper.kind == "tag":
            layers.append(TagLayer(wrapper.tag))
            continue
        if wrapper.kind == "skip":
            layers.append(SkipLayer(wrapper.tag))
            continue
        layers.append(_read_details(stream, wrapper.details, wrapper))
        for _ in range(3):  # setup called, gradient stale, getters disabled
            stream.boolean()
        stream.tensor()  # x_grad
        stream.tensor()  # cached_output
        if depth == len(layout) - 1:
            stream.tensor()  # grad_final
            if versions[depth] == 3:
                stream.integer()  # sample expansion factor
        elif versions[depth] == 2:
            stream.tensor()  # params_grad

    if stream.pos != len(blob):
        raise stream.fail(f"{len(blob) - stream.pos} trailing bytes")
    fc = layers[-1]
    if not isinstance(fc, FcLayer) or fc.weight.shape[1] != DESCRIPTOR_SIZE:
        raise stream.fail("the last layer is not a 128-output fc_no_bias")
    return DlibResnet(
        layers=tuple(layers),
        channel_mean=channel_mean,
        input_scale=256.0,
        chip_size=rows,
        source=source,
        sha256=hashlib.sha256(blob).hexdigest(),
    )


def dlib_resnet_path() -> Path:
    """The ResNet weight file shipped in ``face_recognition_models``, checked against the asset table."""
    # The package imports the deprecated pkg_resources at import time; the warning is not ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import face_recognition_models

    from likeness.assets import check_asset_file

    return check_asset_file("dlib-resnet-v1", Path(face_recognition_models.face_recognition_model_location()))


def read_dlib_resnet(path: str | Path) -> DlibResnet:
    """Read and parse a dlib face-recognition ``.dat`` file (raises ``ModelError`` naming the file)."""
    file = Path(path)
    try:
        blob = file.read_bytes()
    except OSError as exc:
        raise ModelError(f"{file}: cannot read dlib weights ({exc.strerror or exc})") from exc
    return parse_dlib_resnet(blob, source=str(file))


# ----------------------------------------------------------------------------------------------
# ONNX graph


class _GraphBuilder:
    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.counter = 0

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def constant(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes: Any) -> str:
        output = self.name(stem)
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _pooled_size(size: int, window: int, stride: int, padding: int) -> int:
    return 1 + (size + 2 * padding - window) // stride


def _fold_pairs(layers: tuple[DlibLayer, ...]) -> Iterator[tuple[DlibLayer, AffineLayer | None]]:
    """Each layer with the affine that directly follows a convolution (folded into its weights)."""
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, ConvLayer) and isinstance(following, AffineLayer):
            yield layer, following
            index += 2
        else:
            yield layer, None
            index += 1


def dlib_resnet_onnx(network: DlibResnet) -> bytes:
    """Serialized ONNX model computing the network's descriptors.

    Input ``chips``: ``uint8 (N, S, S, 3)`` RGB face chips (``S = network.chip_size``, cut with
    dlib's ``get_face_chip(size=150, padding=0.25)``). Output ``descriptors``: ``float32 (N, 128)``.
    Each ``affine`` that follows a convolution is folded into the convolution's weights.
    """
    import onnx

    graph = _GraphBuilder()
    size = network.chip_size
    pixels = graph.node("Cast", ["chips"], "pixels", to=onnx.TensorProto.FLOAT)
    planar = graph.node("Transpose", [pixels], "planar", perm=[0, 3, 1, 2])
    mean = graph.constant("channel_mean", network.channel_mean.reshape(1, 3, 1, 1).astype(np.float32))
    centred = graph.node("Sub", [planar, mean], "centred")
    scale = graph.constant("input_scale", np.array(1.0 / network.input_scale, np.float32))
    current = graph.node("Mul", [centred, scale], "normalised")
    shape = (3, size, size)  # (channels, rows, cols) of `current`, tracked to size add_prev's padding

    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    for layer, affine in _fold_pairs(network.layers):
        if isinstance(layer, ConvLayer):
            weight, bias = layer.weight.astype(np.float64), layer.bias.astype(np.float64)
            if affine is not None:
                weight = weight * affine.gamma.astype(np.float64)[:, None, None, None]
                bias = bias * affine.gamma + affine.beta
            if weight.shape[1] != shape[0]:
                raise ModelError(f"{network.source}: convolution expects {weight.shape[1]} channels, gets {shape[0]}")
            kh, kw = weight.shape[2:]
            (sy, sx), (py, px) = layer.stride, layer.padding
            current = graph.node(
                "Conv",
                [
                    current,
                    graph.constant("weight", weight.astype(np.float32)),
                    graph.constant("bias", bias.astype(np.float32)),
                ],
                "conv",
                kernel_shape=[kh, kw],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (weight.shape[0], _pooled_size(shape[1], kh, sy, py), _pooled_size(shape[2], kw, sx, px))
        elif isinstance(layer, AffineLayer):
            gamma = graph.constant("gamma", layer.gamma.reshape(1, -1, 1, 1))
            beta = graph.constant("beta", layer.beta.reshape(1, -1, 1, 1))
            current = graph.node("Add", [graph.node("Mul", [current, gamma], "scaled"), beta], "affine")
        elif isinstance(layer, ReluLayer):
            current = graph.node("Relu", [current], "relu")
        elif isinstance(layer, PoolLayer):
            if layer.window == (0, 0):
                op = "GlobalMaxPool" if layer.mode == "max" else "GlobalAveragePool"
                current = graph.node(op, [current], "pool_all")
                shape = (shape[0], 1, 1)
            else:
                (wy, wx), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
                current = graph.node(
                    "MaxPool" if layer.mode == "max" else "AveragePool",
                    [current],
                    "pool",
                    kernel_shape=[wy, wx],
                    strides=[sy, sx],
                    pads=[py, px, py, px],
                )
                shape = (shape[0], _pooled_size(shape[1], wy, sy, py), _pooled_size(shape[2], wx, sx, px))
        elif isinstance(layer, TagLayer):
            tags[layer.tag] = (current, shape)
        elif isinstance(layer, SkipLayer):
            current, shape = tags[layer.tag]
        elif isinstance(layer, AddPrevLayer):
            other, other_shape = tags[layer.tag]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape))
            current = graph.node(
                "Add",
                [_zero_pad(graph, current, shape, target), _zero_pad(graph, other, other_shape, target)],
                "residual",
            )
            shape = target  # type: ignore[assignment]
        elif isinstance(layer, FcLayer):
            flat = graph.node("Flatten", [current], "flat", axis=1)
            if layer.weight.shape[0] != shape[0] * shape[1] * shape[2]:
                raise ModelError(f"{network.source}: fc_ expects {layer.weight.shape[0]} inputs, gets {shape}")
            current = graph.node("MatMul", [flat, graph.constant("fc_weight", layer.weight)], "descriptor")
            shape = (layer.weight.shape[1], 1, 1)

    graph.nodes.append(graph.helper.make_node("Identity", [current], ["descriptors"], name="descriptors"))
    model = graph.helper.make_model(
        graph.helper.make_graph(
            graph.nodes,
            "dlib_face_recognition_resnet_v1",
            [graph.helper.make_tensor_value_info("chips", onnx.TensorProto.UINT8, ["N", size, size, 3])],
            [graph.helper.make_tensor_value_info("descriptors", onnx.TensorProto.FLOAT, ["N", DESCRIPTOR_SIZE])],
            graph.initializers,
        ),
        opset_imports=[graph.helper.make_opsetid("", ONNX_OPSET)],
        producer_name="likeness.faces.dlib_resnet",
        doc_string=f"converted from {Path(network.source).name} sha256={network.sha256}",
    )
    model.ir_version = ONNX_IR_VERSION
    return model.SerializeToString()


def _zero_pad(graph: _GraphBuilder, tensor: str, shape: tuple[int, int, int], target: tuple[int, ...]) -> str:
    """Pad ``tensor (N, *shape)`` with zeros at the end of C, H and W up to ``target`` (dlib's tt::add)."""
    extra = [t - s for s, t in zip(shape, target)]
    if not any(extra):
        return tensor
    pads = graph.constant("pads", np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64))
    return graph.node("Pad", [tensor, pads], "zero_pad", mode="constant")


_converted: dict[str, bytes] = {}
_converted_lock = threading.Lock()


def converted_dlib_resnet(path: str | Path | None = None) -> bytes:
    """ONNX bytes of the dlib ResNet at ``path`` (default: the shipped one), converted once per process.

    Conversion reads the 22 MB file and rebuilds the graph in well under a second, so nothing is
    written to disk; the in-process memo is keyed by the file's sha256.
    """
    file = Path(path) if path is not None else dlib_resnet_path()
    try:
        blob = file.read_bytes()
    except OSError as exc:
        raise ModelError(f"{file}: cannot read dlib weights ({exc.strerror or exc})") from exc
    digest = hashlib.sha256(blob).hexdigest()
    with _converted_lock:
        cached = _converted.get(digest)
    if cached is None:
        cached = dlib_resnet_onnx(parse_dlib_resnet(blob, source=str(file)))
        with _converted_lock:
            _converted[digest] = cached
    return cached


# ----------------------------------------------------------------------------------------------
# Inference


class DlibResnetSession:
    """ONNX Runtime session of the converted network. One per worker; not shared across threads.

    Args:
        onnx_model: bytes from :func:`dlib_resnet_onnx` / :func:`converted_dlib_resnet`.
        intra_op_threads: threads ONNX Runtime uses inside one call (1 per worker process is
            the product's default; more only helps batches of several faces).
    """

    def __init__(self, onnx_model: bytes, *, intra_op_threads: int = 1) -> None:
        if intra_op_threads < 1:
            raise FaceError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads burn a core between calls; workers share the machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(onnx_model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"dlib ResNet ONNX model rejected by onnxruntime: {exc}") from exc
        self.intra_op_threads = int(intra_op_threads)

    def close(self) -> None:
        """Drop the ONNX Runtime session (it has no close of its own; its memory goes with the
        last reference); further calls raise ``FaceError``."""
        self._session = None

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """``float32 (N, 128)`` descriptors of ``uint8 (N, 150, 150, 3)`` RGB face chips."""
        if self._session is None:
            raise FaceError("embedder session is closed")
        batch = np.asarray(chips)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise FaceError(f"chips: expected uint8 (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {batch.dtype} {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        (out,) = self._session.run(["descriptors"], {"chips": np.ascontiguousarray(batch)})
        return np.asarray(out, dtype=np.float32)
