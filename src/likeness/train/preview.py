"""Training artefacts for people: the preview grid and the metrics plot (arrays; I/O via likeness.media).

A preview shows swapped faces, so it is marked like a render's output: the visible label in its
bottom band and the invisible watermark of a preview job recorded on the ledger
(``preview.written``: job id, watermark payload, file names), so a preview that leaks from a
model folder is still recognised as this product's synthetic media and traced to its grant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

PREVIEW_LABEL = "AI-generated preview"
#: Shorter side a preview is enlarged to (nearest neighbour, whole factors) before it is
#: watermarked: on a 32 px grid (mostly flat bands) 256 px read back 3 times in 5, 384 px always.
PREVIEW_MIN_SIDE = 384
PREVIEW_EVENT = "preview.written"


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
        cv2.putText(
            header,
            title[: max(1, r // 7)],
            (k * r + 2, 13),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            (230, 230, 230),
            1,
            cv2.LINE_AA,
        )
    cv2.putText(footer, PREVIEW_LABEL, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 200, 0), 1, cv2.LINE_AA)
    del n
    return np.concatenate([header, body, footer], axis=0)


def marked_preview(grid: np.ndarray, watermark_payload: bytes) -> np.ndarray:
    """``grid`` (uint8 RGB, labelled by :func:`preview_grid`) enlarged by a whole factor until its
    shorter side is at least ``PREVIEW_MIN_SIDE`` px, with the 8-byte watermark embedded."""
    from likeness.provenance.watermark import WatermarkEmbedder

    factor = -(-PREVIEW_MIN_SIDE // min(grid.shape[:2]))
    if factor > 1:
        grid = cv2.resize(grid, (grid.shape[1] * factor, grid.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
    return WatermarkEmbedder(watermark_payload, grid.shape[1], grid.shape[0]).embed(grid)


def write_training_preview(authz: Any, grid: np.ndarray, paths: Sequence[Path], *, iteration: int) -> str:
    """Record a preview job on the ledger under ``authz`` (the training authorization, rechecked),
    then write ``grid`` marked with its watermark to each of ``paths`` (the same PNG bytes, whose
    SHA-256 the event records, as a render's does: the portal shows a kept copy by it). Returns
    the job id."""
    import hashlib

    from likeness.media import encode_image
    from likeness.media.images import write_bytes_atomic
    from likeness.provenance.watermark import WATERMARK_ALGORITHM
    from likeness.provenance.writer import watermark_payload_for

    if {Path(p).suffix.lower() for p in paths} != {".png"}:
        raise ValueError(f"write_training_preview: previews are PNG files, got {[str(p) for p in paths]}")
    job_id = uuid.uuid4().hex
    payload = watermark_payload_for(job_id)
    encoded = encode_image(marked_preview(grid, payload), suffix=".png")
    authz.record(
        PREVIEW_EVENT,
        {
            "job_id": job_id,
            "watermark_payload": payload.hex(),
            "watermark_algorithm": WATERMARK_ALGORITHM,
            "labelled": True,
            "kind": "training_preview",
            "iteration": int(iteration),
            "output_names": [Path(p).name for p in paths],
            "output_sha256": hashlib.sha256(encoded).hexdigest(),
        },
    )
    for path in paths:
        write_bytes_atomic(Path(path), encoded)
    return job_id


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
    for key in (
        "val_dssim_source",
        "val_dssim_target",
        "identity_transfer",
        "expression_eye_corr",
        "expression_mouth_corr",
    ):
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
