"""Training artefacts for people: the preview grid and the metrics plot (arrays; I/O via likeness.media)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

PREVIEW_LABEL = "AI-generated preview"


def preview_grid(columns: Sequence[np.ndarray], *, titles: Sequence[str]) -> np.ndarray:
    """Stack columns of faces into one uint8 RGB grid.

    ``columns``: each uint8 (N, R, R, 3); every column has the same N and R. The bottom band
    carries a visible "AI-generated preview" label: previews contain synthetic faces.
    """
    if not columns or len({c.shape for c in columns}) != 1:
        raise ValueError(f"preview_grid: expected equal-shape columns, got {[c.shape for c in columns]}")
    n, r = columns[0].shape[0], columns[0].shape[1]
    body = np.concatenate([np.concatenate(list(col), axis=0) for col in columns], axis=1)
    header = np.full((18, body.shape[1], 3), 32, np.uint8)
    footer = np.full((18, body.shape[1], 3), 32, np.uint8)
    for k, title in enumerate(titles):
        cv2.putText(header, title[: max(1, r // 7)], (k * r + 2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (230, 230, 230), 1, cv2.LINE_AA)
    cv2.putText(footer, PREVIEW_LABEL, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 200, 0), 1, cv2.LINE_AA)
    del n
    return np.concatenate([header, body, footer], axis=0)


def metrics_plot(rows: Sequence[dict[str, float | int | None]], *, width_px: int = 900) -> np.ndarray:
    """uint8 RGB plot of losses and held-out metrics against iteration."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / 100, 4.5), dpi=100)
    canvas = FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    iters = [row["iteration"] for row in rows]
    for key in ("loss_source", "loss_target"):
        values = [(i, row.get(key)) for i, row in zip(iters, rows) if row.get(key) is not None]
        if values:
            left.plot(*zip(*values), label=key, linewidth=1)
    left.set_xlabel("iteration")
    left.set_title("training loss")
    left.legend(loc="upper right")
    for key in ("val_dssim_source", "val_dssim_target", "identity_transfer", "expression_eye_corr", "expression_mouth_corr"):
        values = [(i, row.get(key)) for i, row in zip(iters, rows) if row.get(key) is not None]
        if values:
            right.plot(*zip(*values), marker="o", label=key, linewidth=1)
    right.set_xlabel("iteration")
    right.set_title("held-out metrics")
    if right.get_legend_handles_labels()[0]:
        right.legend(loc="best", fontsize=7)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
