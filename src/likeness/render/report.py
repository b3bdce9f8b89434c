"""The render report: counts and per-shot quality, written as JSON and a small HTML page.

A "shot" here is one face track (a face followed from when it appears until it is lost), which
is the unit the swap decisions and temporal filters work on.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from likeness.render.quality import expression_fidelity, identity_transfer, ring_colour_difference


@dataclass
class ShotQuality:
    """Streaming quality accumulator for one track (bounded memory)."""

    track_id: int
    frames_swapped: int = 0
    _src_change: float = 0.0
    _out_change: float = 0.0
    _pairs: int = 0
    _prev: tuple[np.ndarray, np.ndarray] | None = None
    colour_differences: list[float] = field(default_factory=list)
    identity: list[dict[str, float]] = field(default_factory=list)
    landmark_pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def add_crops(self, source_crop: np.ndarray, output_crop: np.ndarray, weight: np.ndarray) -> None:
        """Aligned (R, R, 3) crops of the source and the output at this frame, and the blend mask."""
        self.frames_swapped += 1
        source = source_crop.astype(np.float32)
        output = output_crop.astype(np.float32)
        if self._prev is not None:
            w = weight[..., None]
            total = float(w.sum()) * 3 + 1e-6
            self._src_change += float((np.abs(source - self._prev[0]) * w).sum()) / total
            self._out_change += float((np.abs(output - self._prev[1]) * w).sum()) / total
            self._pairs += 1
        self._prev = (source, output)

    def break_continuity(self) -> None:
        self._prev = None

    def summary(self) -> dict[str, Any]:
        flicker = None
        if self._pairs:
            # Same definition as quality.flicker_ratio, accumulated frame pair by frame pair.
            flicker = (self._out_change / self._pairs + 0.5) / (self._src_change / self._pairs + 0.5)
        fidelity = None
        if len(self.landmark_pairs) >= 2:
            target = np.stack([p[0] for p in self.landmark_pairs])
            output = np.stack([p[1] for p in self.landmark_pairs])
            fidelity = expression_fidelity(target, output)
        transfer = None
        if self.identity:
            transfer = {k: float(np.mean([d[k] for d in self.identity])) for k in self.identity[0]}
        return {
            "track_id": self.track_id,
            "frames_swapped": self.frames_swapped,
            "flicker": None if flicker is None else round(float(flicker), 4),
            "colour_difference_ciede2000": None if not self.colour_differences
            else round(float(np.median(self.colour_differences)), 3),
            "expression_fidelity": None if fidelity is None else round(float(fidelity), 4),
            "identity_transfer": transfer,
            "identity_samples": len(self.identity),
        }


def colour_difference_in_roi(frame: np.ndarray, slices: tuple[slice, slice], alpha: np.ndarray) -> float | None:
    """``ring_colour_difference`` on the face's region only (a margin around it for the outer ring)."""
    rows, cols = slices
    margin = 8
    y0, y1 = max(rows.start - margin, 0), min(rows.stop + margin, frame.shape[0])
    x0, x1 = max(cols.start - margin, 0), min(cols.stop + margin, frame.shape[1])
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    peak = float(alpha.max()) if alpha.size else 0.0
    if peak <= 0:
        return None
    # The face is where the blend weight is at least half its peak (a model's mask may never reach 1).
    mask[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0] = (alpha >= 0.5 * peak)
    return ring_colour_difference(np.ascontiguousarray(frame[y0:y1, x0:x1]), mask)


def identity_sample(output_embedding, subject_embeddings, target_embedding) -> dict[str, float] | None:
    if output_embedding is None or target_embedding is None or subject_embeddings is None or len(subject_embeddings) == 0:
        return None
    return identity_transfer(output_embedding, subject_embeddings, target_embedding)


@dataclass
class RenderReport:
    """What a render did. ``to_json()`` is the schema written to ``<out>.render.json``."""

    job_id: str | None
    target: str
    output: str | None
    kind: str
    model_dir: str
    subject_slug: str
    performer_slug: str
    use: str
    org: str
    options: dict[str, Any]
    frames_total: int = 0
    frames_rendered: int = 0
    frames_with_swaps: int = 0
    landmark_frames_interpolated: int = 0  # frames whose landmarks came from their neighbours
    faces: Counter = field(default_factory=Counter)  # "swapped" or a skip reason -> count
    decode_error: str | None = None
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    content_check: dict[str, Any] = field(default_factory=dict)
    shots: list[dict[str, Any]] = field(default_factory=list)
    model_precision: dict[str, str] = field(default_factory=dict)  # {"used": "float"|"int8", "why": ...}
    resumed_from_frame: int | None = None
    padded_to_even: bool = False
    variable_frame_rate: bool = False
    seconds: float = 0.0
    fps: float = 0.0
    report_json: str | None = None
    report_html: str | None = None

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["faces"] = dict(self.faces)
        payload["faces_swapped"] = int(self.faces.get("swapped", 0))
        payload["faces_skipped"] = {k: int(v) for k, v in self.faces.items() if k != "swapped"}
        return payload


#: Short side of the report's thumbnails: the watermark of the "after" thumbnails reads back
#: reliably from 256 px (two tiles), not from the 120 px used before.
THUMBNAIL_SHORT_SIDE = 256

#: (before frame, after frame, job id of the output the after frame belongs to).
StripFrame = tuple[np.ndarray, np.ndarray, str]


def thumbnail(rgb: np.ndarray, short_side: int = THUMBNAIL_SHORT_SIDE) -> np.ndarray:
    """uint8 (h, w, 3) copy of ``rgb`` scaled so its shorter side is ``short_side`` px."""
    scale = short_side / min(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def marked_thumbnail(after: np.ndarray, job_id: str) -> np.ndarray:
    """A thumbnail of a synthetic frame, marked like the output it comes from: the visible
    AI-generated label, then the invisible watermark of render job ``job_id`` (whose payload
    the ledger's ``render.completed`` event records), so a thumbnail cut out of the report
    still verifies as that job's synthetic media."""
    from likeness.provenance.visible_label import burn_visible_label
    from likeness.provenance.watermark import WatermarkEmbedder
    from likeness.provenance.writer import watermark_payload_for

    small = burn_visible_label(thumbnail(after))
    return WatermarkEmbedder(watermark_payload_for(job_id), small.shape[1], small.shape[0]).embed(small)


def _data_uri(rgb: np.ndarray, suffix: str) -> str:
    from likeness.media.images import encode_image

    mime = "png" if suffix == ".png" else "jpeg"
    return f"data:image/{mime};base64,{base64.b64encode(encode_image(rgb, suffix=suffix, quality=85)).decode('ascii')}"


def report_paths(folder: Path, stem: str, report: RenderReport) -> tuple[Path, Path]:
    """``(json, html)`` names for a new report in ``folder`` that no earlier report holds:
    ``<stem>.render.*``, else ``<output name>.render.*`` (``a.mp4`` beside ``a.png``), else with
    the job id (two renders to one name), never overwriting one (created exclusively)."""
    output_name = Path(report.output).name if report.output else stem
    bases = [stem, output_name, f"{output_name}.{report.job_id}"] + [
        f"{output_name}.{report.job_id}.{k}" for k in range(2, 100)]
    for base in dict.fromkeys(bases):
        json_path, html_path = folder / f"{base}.render.json", folder / f"{base}.render.html"
        try:
            json_path.open("x").close()
        except FileExistsError:
            continue
        try:
            html_path.open("x").close()
        except FileExistsError:
            json_path.unlink()
            continue
        return json_path, html_path
    raise FileExistsError(f"{folder}: no free name for the render report of {output_name}")


def write_report(report: RenderReport, folder: Path, stem: str, strip: list[StripFrame]) -> None:
    """Write ``stem.render.json`` and ``stem.render.html`` into ``folder`` (another free name
    when those are taken, see :func:`report_paths`).

    ``strip``: (before, after, job id) frames for the before/after strip; the "after" thumbnails
    carry the visible AI-generated label and the job's invisible watermark (:func:`marked_thumbnail`).
    """
    json_path, html_path = report_paths(folder, stem, report)
    report.report_json, report.report_html = str(json_path), str(html_path)
    json_path.write_text(json.dumps(report.to_json(), indent=2, default=str), encoding="utf-8")
    rows = []
    for before, after, job_id in strip[:4]:
        rows.append(
            f'<tr><td><img alt="before" src="{_data_uri(thumbnail(before), ".jpg")}"></td>'
            f'<td><img alt="after (AI-generated)" src="{_data_uri(marked_thumbnail(after, job_id), ".png")}"></td></tr>'
        )
    data = report.to_json()
    shots = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(shot.get(k)))}</td>" for k in
                         ("track_id", "frames_swapped", "flicker", "colour_difference_ciede2000", "expression_fidelity", "identity_transfer"))
        + "</tr>" for shot in report.shots
    )
    skipped = ", ".join(f"{html.escape(k)}: {v}" for k, v in data["faces_skipped"].items()) or "none"
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Render report {html.escape(str(report.job_id))}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px}}table{{border-collapse:collapse}}</style></head><body>
<h1>Render report</h1>
<p><strong>AI 생성 · AI-generated</strong>: the output contains synthetic faces of <code>{html.escape(report.subject_slug)}</code>
rendered onto footage of <code>{html.escape(report.performer_slug)}</code> for use <code>{html.escape(report.use)}</code> by <code>{html.escape(report.org)}</code>.</p>
<ul><li>target: {html.escape(report.target)}</li><li>output: {html.escape(str(report.output))}</li>
<li>frames: {report.frames_rendered} rendered of {report.frames_total}; {report.fps:.1f} fps</li>
<li>swap model: {html.escape(report.model_precision.get("used", "float"))} ({html.escape(report.model_precision.get("why", ""))})</li>
<li>faces swapped: {data["faces_swapped"]}; skipped: {skipped}</li>
<li>decode problems: {html.escape(str(report.decode_error or "none"))}</li></ul>
<h2>Per shot</h2><table><tr><th>track</th><th>frames</th><th>flicker</th><th>CIEDE2000 border</th><th>expression fidelity</th><th>identity transfer</th></tr>{shots}</table>
<h2>Before / after (AI-generated)</h2><table>{''.join(rows)}</table></body></html>"""
    html_path.write_text(page, encoding="utf-8")
