"""Score calibration and operating points: pure functions on 1-D float arrays.

Example::

    >>> import numpy as np
    >>> labels = np.array([0, 0, 1, 1]); logits = np.array([-2.0, -1.0, 1.0, 3.0])
    >>> roc_auc(labels, logits)
    1.0
    >>> float(threshold_at_fpr(np.array([0.0, 1.0, 2.0, 3.0]), 0.25))
    3.0
"""

from __future__ import annotations

import numpy as np

from likeness.errors import ModelError


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    if labels.shape != scores.shape or not np.isfinite(scores).all() or not np.isin(labels, (0, 1)).all():
        raise ModelError(f"expected matching 0/1 labels and finite scores, got {labels.shape} and {scores.shape}")
    return labels, scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); nan with one class only."""
    labels, scores = _check(labels, scores)
    positive, negative = scores[labels == 1], scores[labels == 0]
    if not len(positive) or not len(negative):
        return float("nan")
    order = np.argsort(np.concatenate([positive, negative]), kind="mergesort")
    ranks = np.empty(len(order), np.float64)
    ranks[order] = np.arange(1, len(order) + 1)
    # Average ranks over ties.
    merged = np.concatenate([positive, negative])
    for value in np.unique(merged):
        tied = merged == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float(
        (ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))
    )


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of ``sigmoid(logits / T)`` (golden-section search
    on log T over [1e-2, 1e2])."""
    labels, logits = _check(labels, logits)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - labels * z))

    lo, hi = np.log(1e-2), np.log(1e2)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def threshold_at_fpr(authentic_scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold at which at most ``fpr`` of ``authentic_scores`` are >= it (flagged)."""
    scores = np.sort(np.asarray(authentic_scores, np.float64).ravel())
    if not len(scores) or not np.isfinite(scores).all():
        raise ModelError("threshold_at_fpr: needs finite authentic scores")
    if not 0 < fpr < 1:
        raise ModelError(f"threshold_at_fpr: fpr must be in (0, 1), got {fpr}")
    allowed = int(np.floor(fpr * len(scores)))
    if allowed == 0:
        return float(np.nextafter(scores[-1], np.inf))
    # Flag the top ``allowed`` scores: the threshold is the smallest of them, unless ties below
    # would also be flagged, in which case step just above the tie.
    candidate = scores[len(scores) - allowed]
    if (scores >= candidate).sum() > allowed:
        candidate = float(np.nextafter(candidate, np.inf))
    return float(candidate)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))
