"""ONNX export time per network: the product's exporter (TorchScript-based, ``likeness.onnx_export``)
against torch's torch.export-based one (``dynamo=True``, what the product used before), side by side.

    PYTHONPATH=src .venv/bin/python benchmarks/onnx_export.py [--processes 3] [--warm 3] [--nets df_tiny-32 ...]

Each (network, exporter) runs in fresh processes: *cold* is the first export in a process (what a
``train``/``export``/``detector train`` run waits for), the median over ``--processes``; *warm* is
the median of ``--warm`` further exports in the same process. The last column is the new export's
largest difference from PyTorch at batch 1 and 5 under ONNX Runtime. Weights are random (the time
does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

NETWORKS = ("detector-0.25", "detector-1.0", "df_tiny-32", "df-64-preview", "df-128-cpu-overnight", "occlusion")


def _network(name: str) -> tuple[Any, int, str, list[str], bool]:
    """(module, input side, input name, output names, free height and width)."""
    from likeness.detector.network import build_detector
    from likeness.detector.train import DETECTOR_INPUT
    from likeness.models import create_model
    from likeness.train.occlusion import MASK_INPUT, build_network
    from likeness.train.recipes import RECIPES
    from likeness.train.swap_model import ONNX_INPUT, ONNX_OUTPUTS

    swap_names = (ONNX_INPUT, list(ONNX_OUTPUTS), False)
    if name.startswith("detector-"):
        width = float(name.split("-")[1])
        return build_detector(pretrained=False, width=width), DETECTOR_INPUT, "face", ["manipulated_logit"], False
    if name == "df_tiny-32":
        return create_model("df_tiny", resolution=32), 32, *swap_names
    if name in ("df-64-preview", "df-128-cpu-overnight"):
        recipe = RECIPES["preview" if "64" in name else "cpu-overnight-128"]
        model = create_model(recipe["model"], resolution=recipe["resolution"], **recipe["model_options"])
        return model, recipe["resolution"], *swap_names
    if name == "occlusion":
        return build_network(), MASK_INPUT, "crop", ["occluder_logit"], True
    raise SystemExit(f"unknown network {name!r}; one of {', '.join(NETWORKS)}")


def _torch_export_based(module: Any, side: int, input_name: str, outputs: list[str], sides: bool) -> bytes:
    """The exporter the product used before: ``dynamo=True`` with a dynamic batch (and side)."""
    import torch

    faces = torch.export.Dim("faces", min=1, max=4096)
    shapes: dict[int, Any] = {0: faces}
    if sides:
        side_dim = 8 * torch.export.Dim("eighths", min=2, max=64)
        shapes.update({2: side_dim, 3: side_dim})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            (torch.rand(2, 3, side, side),),
            None,
            input_names=[input_name],
            output_names=outputs,
            dynamo=True,
            external_data=False,
            dynamic_shapes=(shapes,),
            verbose=False,
        )
    model = program.model_proto
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return model.SerializeToString()


def _torchscript_based(module: Any, side: int, input_name: str, outputs: list[str], sides: bool) -> bytes:
    from likeness.onnx_export import onnx_from_torch

    return onnx_from_torch(
        module, (2, 3, side, side), what="benchmark", input_name=input_name, output_names=outputs, dynamic_sides=sides
    )


EXPORTERS: dict[str, Callable[..., bytes]] = {"torch.export": _torch_export_based, "torchscript": _torchscript_based}


def _max_difference(module: Any, payload: bytes, side: int, input_name: str) -> float:
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 5):
        faces = np.random.default_rng(batch).random((batch, 3, side, side), dtype=np.float32)
        with torch.no_grad():
            expected = module.eval()(torch.from_numpy(faces))
        expected = expected if isinstance(expected, tuple) else (expected,)
        for want, got in zip(expected, session.run(None, {input_name: faces})):
            worst = max(worst, float(np.abs(want.numpy() - got).max()))
    return worst


def _one_process(name: str, exporter: str, warm: int) -> None:
    """In this process: export ``warm + 1`` times, print the seconds (first: cold) as JSON."""
    import torch

    torch.manual_seed(0)
    module, side, input_name, outputs, sides = _network(name)
    seconds, payload = [], b""
    for _ in range(warm + 1):
        started = time.perf_counter()
        payload = EXPORTERS[exporter](module, side, input_name, outputs, sides)
        seconds.append(time.perf_counter() - started)
    print(
        json.dumps(
            {"seconds": seconds, "bytes": len(payload), "diff": _max_difference(module, payload, side, input_name)}
        )
    )


def _measure(name: str, exporter: str, *, processes: int, warm: int) -> dict[str, float]:
    runs = []
    for _ in range(processes):
        done = subprocess.run(
            [sys.executable, __file__, "--one", name, exporter, "--warm", str(warm)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "cold": statistics.median(r["seconds"][0] for r in runs),
        "warm": statistics.median(s for r in runs for s in r["seconds"][1:]),
        "mb": runs[0]["bytes"] / 1e6,
        "diff": max(r["diff"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per cell (cold: their median)")
    parser.add_argument("--warm", type=int, default=3, help="exports after the first in each process (warm: median)")
    parser.add_argument("--one", nargs=2, metavar=("NET", "EXPORTER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one_process(args.one[0], args.one[1], args.warm)
        return
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} CPUs, load {load:.1f}; cold: median of {args.processes} processes, warm: median of {args.warm} per process"
    )
    print(
        "| network | torch.export cold s | warm s | TorchScript cold s | warm s | speed-up warm | ONNX MB old/new | max abs diff (new) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.nets:
        old = _measure(name, "torch.export", processes=args.processes, warm=args.warm)
        new = _measure(name, "torchscript", processes=args.processes, warm=args.warm)
        print(
            f"| {name} | {old['cold']:.1f} | {old['warm']:.1f} | {new['cold']:.2f} | {new['warm']:.2f} "
            f"| {old['warm'] / new['warm']:.0f}x | {old['mb']:.1f}/{new['mb']:.1f} | {new['diff']:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
