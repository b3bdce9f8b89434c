"""The product's one ONNX exporter: same bytes for the same weights, any batch, typed errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from likeness.errors import ModelError
from likeness.onnx_export import ONNX_OPSET, onnx_from_torch


class TwoHeads(nn.Module):
    """A small swap-shaped network: convolution, batch norm (folded at export), two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1))
        self.rgb = nn.Conv2d(8, 3, 1)
        self.mask = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return torch.sigmoid(self.rgb(features)), torch.sigmoid(self.mask(features))


def _seeded_net() -> nn.Module:
    torch.manual_seed(3)
    net = TwoHeads()
    with torch.no_grad():  # running statistics that are not the identity, so folding matters
        net.body[1].running_mean.uniform_(-0.5, 0.5)
        net.body[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def _export(net: nn.Module) -> bytes:
    return onnx_from_torch(net, (2, 3, 16, 16), what="two heads", input_name="face", output_names=["swapped", "mask"])


def test_the_same_weights_give_the_same_bytes_and_batches_1_and_5_match_torch() -> None:
    net = _seeded_net()
    payload = _export(net)
    assert _export(_seeded_net()) == payload
    model = onnx.load_from_string(payload)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    assert not any(node.doc_string or node.metadata_props for node in model.graph.node)
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for batch in (1, 5):
        faces = rng.random((batch, 3, 16, 16), dtype=np.float32)
        with torch.no_grad():
            expected = [t.numpy() for t in net(torch.from_numpy(faces))]
        got = session.run(["swapped", "mask"], {"face": faces})
        for want, have in zip(expected, got):
            assert have.shape == want.shape
            np.testing.assert_allclose(have, want, atol=1e-5)


def test_another_process_gives_the_same_bytes() -> None:
    script = f"import runpy, sys\nhere = runpy.run_path({__file__!r})\nsys.stdout.buffer.write(here['_export'](here['_seeded_net']()))\n"
    done = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", script],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout == _export(_seeded_net())
    # The exporter's deprecation notices stay off the terminal even where warnings are shown.
    assert b"TorchScript" not in done.stderr and b"will be removed" not in done.stderr, done.stderr


def test_height_and_width_are_free_when_asked() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.ConvTranspose2d(4, 1, 2, stride=2)
    )
    net.eval()
    payload = onnx_from_torch(
        net, (2, 3, 16, 16), what="mask", input_name="crop", output_names=["logit"], dynamic_sides=True
    )
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    crops = np.random.default_rng(1).random((3, 3, 24, 40), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(crops)).numpy()
    np.testing.assert_allclose(session.run(None, {"crop": crops})[0], expected, atol=1e-5)


class NoOnnxOperator(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(x)[1]  # the exporter has no ONNX translation of it


def test_a_failed_export_is_a_model_error_naming_the_model() -> None:
    with pytest.raises(ModelError, match=r"^broken net: the ONNX export failed"):
        onnx_from_torch(NoOnnxOperator(), (2, 3, 4, 4), what="broken net", input_name="x", output_names=["y"])
