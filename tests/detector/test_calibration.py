"""AUC, temperature and the fixed-FPR threshold."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.detector.calibration import fit_temperature, roc_auc, threshold_at_fpr
from likeness.errors import ModelError


def test_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(labels + rng.normal(0, 1, 200), 1)  # ties included
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert roc_auc(labels, scores) == pytest.approx(pairwise)
    assert np.isnan(roc_auc(np.zeros(3), np.arange(3.0)))


def test_temperature_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(int)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.08)


def test_threshold_flags_at_most_the_target_share() -> None:
    rng = np.random.default_rng(2)
    for n in (20, 101, 1000):
        scores = rng.normal(size=n)
        threshold = threshold_at_fpr(scores, 0.05)
        assert (scores >= threshold).mean() <= 0.05
        assert (scores >= threshold).sum() == int(np.floor(0.05 * n))
    tied = np.array([0.0] * 10 + [1.0] * 10)
    assert (tied >= threshold_at_fpr(tied, 0.3)).mean() <= 0.3
    with pytest.raises(ModelError):
        threshold_at_fpr(np.array([]), 0.05)
    with pytest.raises(ModelError):
        threshold_at_fpr(np.ones(5), 1.5)
