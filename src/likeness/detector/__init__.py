"""likeness.detector: the learned manipulation detector (Self-Blended Images on pristine faces).

``sbi`` makes pseudo-fakes (pure functions), ``network`` defines MobileNetV2 and loads the packaged
ImageNet weights strictly, ``train`` trains, calibrates and exports with a card, ``score`` runs
the ONNX model, ``calibration`` holds AUC, temperature and the fixed-FPR threshold,
``evaluation`` measures a detector on held-out media against the shortcut baselines and decides
its gates, ``registered`` keeps an agency's detectors per subject in the workspace (the only way
verify gets one), ``heatmap`` shows where a detector looks, ``general`` loads the general model
shipped in ``general/`` as the start of agency fine-tunes. See docs/detector.md for what the
general model was measured to do (it fails its gates: verify never uses it).
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
