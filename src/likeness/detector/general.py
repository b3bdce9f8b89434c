"""The general detector: trained by the project on public-domain portraits and shipped as the
start of agency fine-tunes (``likeness detector train`` starts from it unless told otherwise).

It is **not** a detector verify uses. It fails the gates on video (docs/detector.md), and verify
scores only with a detector registered for a subject through ``likeness detector register``,
which measures the gates from the card's evaluation and refuses this one (it has none).

The folder ``likeness/detector/general/`` holds the model's weights and its card. The weights
are the trained state dict with every convolution and linear weight stored as float16 and the
small per-channel tensors (biases, batch-norm) as float32 (:func:`half_precision`): 4.5 MB instead
of 9.1 MB. The shipped model *is* those rounded weights, computed in float32 after loading; its
card's calibration and validation were measured on them (scripts/ship_general_detector.py), not
on the float32 weights training ended with. No ONNX file ships: :func:`export_general` writes one
from the weights when a detector folder is needed (``likeness detector export-general``).
Weights and card are rows of the asset table (:mod:`likeness.assets`) and the card lists the
weights' sha256: a file edited after shipping is refused with a ``ModelError`` naming it, never
loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from likeness import strict_json
from likeness.durable import write_atomic
from likeness.errors import ModelError

#: Asset-table rows of the shipped weights and card.
GENERAL_WEIGHTS_ASSET = "detector-general-weights"
GENERAL_CARD_ASSET = "detector-general-card"
#: The state dict for a fine-tune, saved as a likeness checkpoint: ``{"net": {name: tensor}}``.
WEIGHTS_FILE = "detector.weights.pt"
#: How :func:`half_precision` stores the weights (the card's ``storage.weights``).
HALF_PRECISION_RULE = (
    "float16 for every tensor of 2 or more dimensions (convolution and linear weights), float32 for "
    "the rest (biases, batch-norm scales, shifts and running statistics), int64 counters unchanged"
)
#: MobileNetV2's ImageNet classifier, kept in the network so that torchvision's state dict loads
#: strictly, never run by the detector (its own head scores the pooled features) and so never
#: trained: the shipped file leaves these 1.3 M numbers out and a load takes them from the
#: ImageNet weights, exactly as training had them.
UNUSED_IMAGENET_HEAD = frozenset({"backbone.classifier.1.weight", "backbone.classifier.1.bias"})
#: How a fine-tune's card names this start (``training.base.name``).
GENERAL_BASE_NAME = "likeness general detector (shipped)"


def general_folder() -> Path:
    """The installed folder of the general model (its card checked against the asset table)."""
    from likeness.assets import checked_asset

    return checked_asset(GENERAL_CARD_ASSET).parent


def general_card() -> dict[str, Any]:
    """The shipped card, read after its sha256 was checked against the asset table."""
    from likeness.assets import checked_asset

    path = checked_asset(GENERAL_CARD_ASSET)
    try:
        card = strict_json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ModelError(f"{path}: the general detector's card is not JSON; reinstall likeness") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path}: the general detector's card is not a JSON object; reinstall likeness")
    return card


def general_network() -> tuple[Any, str]:
    """(the detector network holding the general model's weights, sha256 of the weights file).

    The file is checked against the asset table before it is read (``ModelError`` naming it when
    it differs)."""
    from likeness.assets import asset, checked_asset

    return network_from_weights(checked_asset(GENERAL_WEIGHTS_ASSET)), asset(GENERAL_WEIGHTS_ASSET).sha256


def network_from_weights(path: Path) -> Any:
    """The detector network (float32) holding the weights stored in ``path``.

    Every tensor comes from the file except :data:`UNUSED_IMAGENET_HEAD`, which comes from the
    ImageNet weights; any other missing or extra tensor, or one of the wrong shape, is a
    ``ModelError`` naming the file."""
    from likeness.detector.network import build_detector
    from likeness.train.checkpoint import load_checkpoint

    state = load_checkpoint(path).get("net")
    if not isinstance(state, dict):
        raise ModelError(f"{path}: holds no detector network state ('net'); reinstall likeness")
    net = build_detector(pretrained=True)
    try:  # load_state_dict copies each float16 tensor into the network's float32 one
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ModelError(f"{path}: does not fit the detector network ({str(exc).splitlines()[0][:200]})") from None
    if set(missing) != UNUSED_IMAGENET_HEAD or unexpected:
        raise ModelError(
            f"{path}: does not fit the detector network (missing {sorted(set(missing) - UNUSED_IMAGENET_HEAD)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    return net


def half_precision(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` stored as :data:`HALF_PRECISION_RULE` says. Some batch-norm running variances
    are far under float16's range (dead channels: down to 1e-45 in the general model), so only
    the weight tensors are halved: they hold 97 % of the numbers."""
    import torch

    return {
        key: value.to(torch.float16) if value.is_floating_point() and value.dim() >= 2 else value.clone()
        for key, value in state.items()
    }


def export_general(out_dir: Path) -> dict[str, Any]:
    """Write the general model as a detector folder (``detector.onnx`` exported from the shipped
    weights, and its card naming that file) into ``out_dir``, for ``likeness detector evaluate``
    or the benchmark. Returns the card. The folder is a copy: evaluating it never touches the
    package, and ``out_dir`` may not lie in the package.

    ``ModelError`` naming the path when ``out_dir`` is in the installed package, is not a folder or
    cannot be made, or already holds a detector's files (an agency's fine-tune is never replaced
    by the general model; a planted link is never written through)."""
    import hashlib

    from likeness.detector.train import CARD_FILE, MODEL_FILE, detector_out_folder, onnx_bytes

    detector_out_folder(out_dir)
    taken = [name for name in (MODEL_FILE, CARD_FILE) if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    if taken:
        raise ModelError(f"{out_dir}: already holds {', '.join(taken)}; export the general detector into a new folder")
    net, digest = general_network()
    model = onnx_bytes(net)
    card = {
        **general_card(),
        "file": MODEL_FILE,
        "sha256": hashlib.sha256(model).hexdigest(),
        "exported_from": {"name": GENERAL_BASE_NAME, "weights_sha256": digest},
    }
    written: list[Path] = []
    try:
        for name, payload in ((MODEL_FILE, model), (CARD_FILE, (json.dumps(card, indent=2) + "\n").encode())):
            written.append(write_atomic(out_dir / name, payload, mode=0o644, overwrite=False))
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise ModelError(f"{out_dir}: cannot write the general detector here ({exc.strerror or exc})") from None
    return card


def general_training_files() -> list[str]:
    """sha256 of every file the general model was trained or calibrated on (its card's list):
    a fine-tune from it has seen them too, so ``evaluate`` must refuse them as held-out media."""
    files = general_card().get("training", {}).get("files_sha256")
    if not isinstance(files, list) or not files:
        raise ModelError("the general detector's card lists no training files (training.files_sha256)")
    return [str(f) for f in files]
