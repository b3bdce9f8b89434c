"""The general detector: trained by the project on public-domain portraits and shipped as the
start of agency fine-tunes (``likeness detector train`` starts from it unless told otherwise).

It is **not** a detector verify uses. It fails the gates on video (docs/detector.md), and verify
scores only with a detector registered for a subject through ``likeness detector register``,
which measures the gates from the card's evaluation and refuses this one (it has none).

The folder ``likeness/detector/general/`` holds the ONNX file, the model's weights for a
fine-tune (float32 state dict, no optimiser state) and the card. Weights and card are rows of the asset table
(:mod:`likeness.assets`), the card lists the sha256 of each shipped file: a file edited after
shipping is refused with a ``ModelError`` naming it, never loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from likeness.errors import ModelError

#: Asset-table rows of the shipped weights and card.
GENERAL_WEIGHTS_ASSET = "detector-general-weights"
GENERAL_CARD_ASSET = "detector-general-card"
#: The state dict for a fine-tune, saved as a likeness checkpoint: ``{"net": {name: tensor}}``.
WEIGHTS_FILE = "detector.weights.pt"
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
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ModelError(f"{path}: the general detector's card is not JSON; reinstall likeness") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path}: the general detector's card is not a JSON object; reinstall likeness")
    return card


def general_network() -> tuple[Any, str]:
    """(the detector network holding the general model's weights, sha256 of the weights file).

    The file is checked against the asset table before it is read (``ModelError`` naming it when
    it differs). Every tensor of the network comes from it except :data:`UNUSED_IMAGENET_HEAD`,
    which comes from the ImageNet weights; any other missing or extra tensor is refused.
    """
    from likeness.assets import asset, checked_asset
    from likeness.detector.network import build_detector
    from likeness.train.checkpoint import load_checkpoint

    path = checked_asset(GENERAL_WEIGHTS_ASSET)
    state = load_checkpoint(path).get("net")
    if not isinstance(state, dict):
        raise ModelError(f"{path}: holds no detector network state ('net'); reinstall likeness")
    net = build_detector(pretrained=True)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ModelError(f"{path}: does not fit the detector network ({str(exc).splitlines()[0][:200]})") from None
    if set(missing) != UNUSED_IMAGENET_HEAD or unexpected:
        raise ModelError(
            f"{path}: does not fit the detector network (missing {sorted(set(missing) - UNUSED_IMAGENET_HEAD)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    return net, asset(GENERAL_WEIGHTS_ASSET).sha256


def general_training_files() -> list[str]:
    """sha256 of every file the general model was trained or calibrated on (its card's list):
    a fine-tune from it has seen them too, so ``evaluate`` must refuse them as held-out media."""
    files = general_card().get("training", {}).get("files_sha256")
    if not isinstance(files, list) or not files:
        raise ModelError("the general detector's card lists no training files (training.files_sha256)")
    return [str(f) for f in files]
