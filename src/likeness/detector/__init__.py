"""likeness.detector: the learned manipulation detector (Self-Blended Images on pristine faces).

``sbi`` makes pseudo-fakes (pure functions), ``network`` defines MobileNetV2 and loads the packaged
ImageNet weights strictly, ``train`` trains, calibrates and exports with a card, ``score`` runs
the ONNX model, ``calibration`` holds AUC, temperature and the fixed-FPR threshold. See
docs/detector.md for what it was measured to do, and why verify does not use it yet.
"""

from likeness.detector.calibration import fit_temperature, roc_auc, threshold_at_fpr
from likeness.detector.sbi import (
    SbiOptions,
    degrade,
    jitter_colour,
    jitter_sharpness,
    sbi_mask,
    self_blend,
    small_affine,
)

__all__ = [
    "SbiOptions",
    "degrade",
    "fit_temperature",
    "jitter_colour",
    "jitter_sharpness",
    "roc_auc",
    "sbi_mask",
    "self_blend",
    "small_affine",
    "threshold_at_fpr",
]
