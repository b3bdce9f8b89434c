"""Where a detector looks: occlusion sensitivity through the ONNX model (Zeiler & Fergus 2014).

Each cell of a grid over the aligned crop is greyed in turn and the crop scored again; a cell's
heat is how much greying it lowers the calibrated logit. This runs on the registered ONNX file
itself (verify holds no PyTorch weights, and a detector may be any ONNX graph), costs one batch
of ``(side / patch)**2`` extra faces per flagged face, and only runs for the evidence pack.
Grad-CAM would need the PyTorch network and its gradients at verify time.

Example::

    >>> crop = np.zeros((128, 128, 3), np.uint8)
    >>> occluded_copies(crop, patch=64).shape
    (4, 128, 128, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from likeness.errors import ModelError

#: Grey of an occluded cell (mid-grey: neither a dark nor a bright patch to react to).
OCCLUDED = 128


def occluded_copies(crop: np.ndarray, *, patch: int = 16) -> np.ndarray:
    """``(cells, S, S, 3)`` copies of the uint8 crop ``(S, S, 3)``, each with one grid cell grey
    (cells in row-major order; ``S`` must be a multiple of ``patch``)."""
    side = crop.shape[0]
    if crop.dtype != np.uint8 or crop.shape != (side, side, 3) or side % patch:
        raise ModelError(f"occlusion: expected a square uint8 RGB crop whose side divides by {patch}, got {crop.shape}")
    cells = side // patch
    copies = np.repeat(crop[None], cells * cells, axis=0)
    for k in range(cells * cells):
        row, col = divmod(k, cells)
        copies[k, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch] = OCCLUDED
    return copies


def occlusion_heat(model: Any, crop: np.ndarray, *, patch: int = 16) -> np.ndarray:
    """``(cells, cells)`` float: the drop in calibrated logit when each cell is greyed."""
    base = float(model.logits([crop])[0])
    drops = base - model.logits(occluded_copies(crop, patch=patch))
    cells = crop.shape[0] // patch
    return drops.reshape(cells, cells)


def heat_overlay(crop: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The crop with the positive heat over it (red: greying there lowers the score most)."""
    import cv2

    positive = np.clip(heat, 0, None)
    scaled = positive / positive.max() if positive.max() > 0 else positive
    side = crop.shape[0]
    grid = cv2.resize(scaled.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.clip(grid * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    weight = np.clip(grid, 0, 1)[..., None] * 0.6
    return np.clip(crop * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)
