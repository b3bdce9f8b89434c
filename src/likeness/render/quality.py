"""Render quality measures for the report and the benchmark. Pure: arrays in, numbers out.

* ``flicker_ratio``: frame-to-frame change of the output face region relative to the same
  region of the source. 1.0 means the swap moves exactly as much as the original footage;
  above 1 the swap adds jitter or breathing.
* ``ring_colour_difference``: CIEDE2000 between the swapped face just inside its mask border and
  the skin just outside it. Below ~2 is hard to see, above ~5 is a visible seam.
* ``expression_fidelity``: correlation of the target's and the output's landmark motion.
* ``identity_transfer``: how much closer the output face is to the subject than to the target.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

from likeness.errors import FaceError, MediaError
from likeness.render.validation import require_landmarks, require_mask, require_rgb


def flicker_ratio(source_regions: np.ndarray, output_regions: np.ndarray, *, eps: float = 0.5) -> float:
    """Mean absolute frame-to-frame change of ``output_regions`` over that of ``source_regions``.

    Both are uint8 ``(T, h, w, 3)`` crops of the same frame region over T >= 2 frames (the
    region of one tracked face). ``eps`` (grey levels) keeps a static source from dividing by zero.
    """
    source = np.asarray(source_regions)
    output = np.asarray(output_regions)
    if source.shape != output.shape or source.ndim != 4 or source.shape[0] < 2:
        raise MediaError(None, f"flicker_ratio: expected two (T>=2, h, w, 3) stacks of equal shape, got {source.shape} and {output.shape}")
    source_change = np.abs(np.diff(source.astype(np.float32), axis=0)).mean()
    output_change = np.abs(np.diff(output.astype(np.float32), axis=0)).mean()
    return float((output_change + eps) / (source_change + eps))


def ring_colour_difference(frame: np.ndarray, mask: np.ndarray, *, ring_px: int = 4) -> float | None:
    """CIEDE2000 between the mean L*a*b* of a band just inside and a band just outside ``mask``.

    ``frame`` uint8 RGB ``(H, W, 3)`` (the rendered frame), ``mask`` float32 ``(H, W)`` in [0, 1]
    (the paste mask in frame coordinates; > 0.5 counts as face). Returns None when either band is
    empty (no face, or a face that fills the frame).
    """
    frame = require_rgb("frame", frame)
    inside = (require_mask("mask", mask, frame.shape[:2]) > 0.5).astype(np.uint8)
    if ring_px < 1:
        raise MediaError(None, f"ring_px: expected >= 1, got {ring_px}")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    eroded: np.ndarray = cv2.erode(inside, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    dilated: np.ndarray = cv2.dilate(inside, kernel)
    inner = inside & (1 - eroded)
    outer = dilated & (1 - inside)
    if inner.sum() == 0 or outer.sum() == 0:
        return None
    # Only the two bands are converted (a few thousand pixels, not the whole region).
    inner_lab = rgb2lab(frame[inner.astype(bool)][None]).reshape(-1, 3).mean(axis=0)
    outer_lab = rgb2lab(frame[outer.astype(bool)][None]).reshape(-1, 3).mean(axis=0)
    return float(deltaE_ciede2000(inner_lab[None], outer_lab[None])[0])


def _normalised_shape(landmarks: np.ndarray) -> np.ndarray:
    centred = landmarks - landmarks.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=1).mean())
    return centred / max(scale, 1e-9)


def expression_fidelity(target_landmarks: np.ndarray, output_landmarks: np.ndarray) -> float | None:
    """Pearson correlation of landmark motion, target vs output, over a shot.

    Both float32 ``(T, N, 2)``, in any pixel frame (each frame is centred and scale-normalised
    first, so head motion and size do not count, only shape change: mouth, eyes, brows).
    Returns None when T < 2 or the target shows no shape change at all.
    """
    target = np.asarray(target_landmarks, np.float64)
    output = np.asarray(output_landmarks, np.float64)
    if target.shape != output.shape or target.ndim != 3 or target.shape[2] != 2:
        raise FaceError(f"expression_fidelity: expected two (T, N, 2) arrays of equal shape, got {target.shape} and {output.shape}")
    if target.shape[0] < 2:
        return None
    t_norm = np.stack([_normalised_shape(require_landmarks("target", f)) for f in target])
    o_norm = np.stack([_normalised_shape(require_landmarks("output", f)) for f in output])
    t_motion = (t_norm - t_norm.mean(axis=0)).ravel()
    o_motion = (o_norm - o_norm.mean(axis=0)).ravel()
    if np.std(t_motion) < 1e-9 or np.std(o_motion) < 1e-9:
        return None
    return float(np.corrcoef(t_motion, o_motion)[0, 1])


def identity_transfer(
    output_embedding: np.ndarray, subject_embeddings: np.ndarray, target_embedding: np.ndarray
) -> dict[str, float]:
    """Distances of the swapped face's embedding to the subject (min over references) and to
    the original target face. ``transfer`` = distance-to-target minus distance-to-subject: > 0
    means the output looks more like the subject than like the performer it replaced.

    ``output_embedding`` and ``target_embedding`` float32 ``(128,)``; ``subject_embeddings``
    float32 ``(K, 128)``, K >= 1.
    """
    out = np.asarray(output_embedding, np.float64).reshape(-1)
    refs = np.asarray(subject_embeddings, np.float64)
    target = np.asarray(target_embedding, np.float64).reshape(-1)
    if refs.ndim != 2 or refs.shape[0] < 1 or refs.shape[1] != out.shape[0] or target.shape != out.shape:
        raise FaceError(f"identity_transfer: expected (D,), (K>=1, D), (D,), got {out.shape}, {refs.shape}, {target.shape}")
    to_subject = float(np.linalg.norm(refs - out, axis=1).min())
    to_target = float(np.linalg.norm(target - out))
    return {"distance_to_subject": to_subject, "distance_to_target": to_target, "transfer": to_target - to_subject}
