"""Torch modules to ONNX bytes: the one exporter behind every model the product writes (swap
models, the manipulation detector, the occlusion mask).

It is torch's TorchScript-based exporter (``dynamo=False``). The torch.export-based one (torch's
default since 2.9) wrote the same computations 3 to 26 times slower: on a 2-core CPU the
detector at width 0.25 took 7-9 s against 1.1 s, spent in ``torch.export`` tracing and its
decompositions (docs/benchmarks.md, *ONNX export*), and users wait for it at every ``train``,
``export`` and ``detector train``. The TorchScript exporter is deprecated upstream but supported by
the pinned torch; the product's networks are plain convolutional graphs it traces exactly.

    >>> import torch
    >>> payload = onnx_from_torch(torch.nn.Conv2d(3, 1, 1), (2, 3, 8, 8), what="probe", input_name="x", output_names=["y"])
    >>> import onnx
    >>> onnx.load_from_string(payload).graph.input[0].name
    'x'
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

from likeness.errors import ModelError

#: What the torch.export-based exporter wrote before and the TorchScript exporter's highest:
#: ONNX Runtime and its int8 quantizer (``likeness.train.quantize``) load it.
ONNX_OPSET = 20

#: Seed of the example input the exporter traces with (the graph does not depend on its values).
_EXAMPLE_SEED = 0


def _dynamic_axes(input_name: str, output_names: Sequence[str], *, dynamic_sides: bool) -> dict[str, dict[int, str]]:
    """Batch (and with ``dynamic_sides`` height and width) free on the input and every output."""
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_sides else {0: "batch"}
    return {name: dict(axes) for name in (input_name, *output_names)}


def _strip_varying_text(model: Any) -> None:
    """Drop what an exporter may record beside the computation (doc strings, per-node metadata
    such as Python stack traces with the install's absolute paths): the same weights must give the
    same bytes from any install, and a file must not say where likeness was installed."""
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def onnx_from_torch(
    module: Any,
    input_shape: tuple[int, ...],
    *,
    what: str,
    input_name: str,
    output_names: Sequence[str],
    dynamic_sides: bool = False,
) -> bytes:
    """ONNX bytes (opset :data:`ONNX_OPSET`, one file, no external data) computing ``module`` in
    eval mode, traced on a seeded example of ``input_shape`` (give a batch of 2 or more).

    The batch axis of the input and of every output is free (``"batch"``); ``dynamic_sides`` frees
    height and width too, for fully convolutional networks. The same weights give the same bytes.
    ``ModelError`` naming ``what`` when the exporter fails.
    """
    import onnx
    import torch

    example = torch.rand(*input_shape, generator=torch.Generator().manual_seed(_EXAMPLE_SEED))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The exporter's own deprecation notices (the TorchScript exporter is deprecated
            # upstream; see the module docstring): not actionable by a user.
            warnings.filterwarnings(
                "ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning
            )
            warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
            torch.onnx.export(
                module,
                (example,),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes=_dynamic_axes(input_name, output_names, dynamic_sides=dynamic_sides),
                opset_version=ONNX_OPSET,
                dynamo=False,
                verbose=False,
            )
        model = onnx.load_from_string(buffer.getvalue())
    except Exception as exc:  # the exporter raises assorted errors of its own and of TorchScript
        raise ModelError(f"{what}: the ONNX export failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    _strip_varying_text(model)
    return model.SerializeToString()
