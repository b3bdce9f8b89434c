"""Coverage report: what a faceset covers and what it lacks, for people who look at pictures.

``coverage_summary(records)`` and ``coverage_gaps(summary)`` are pure (records in, numbers and
plain-language sentences out). ``write_coverage_report(faceset, out_dir)`` renders one
self-contained HTML page (contact sheet, yaw/pitch scatter, expression and brightness
histograms, gaps; images embedded as base64) plus ``summary.json``.

Example::

    report = write_coverage_report(load_faceset("mina-faceset"), "mina-report")
    print(report.html_path, report.gaps)
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from likeness.errors import FacesetError
from likeness.faceset.format import FaceRecord, Faceset, atomic_write_text

# Thresholds for the gap sentences. Angles in degrees; openness values are the ratios returned by
# likeness.faces.eye_openness / mouth_openness (gap height over width).
TURN_DEGREES = 30.0
TILT_DEGREES = 20.0
MOUTH_OPEN = 0.35
EYES_CLOSED = 0.12
# Brightness is likeness.faces.brightness: mean luma inside the face hull, 0 (black) .. 1 (white).
DARK_BRIGHTNESS = 0.31
BRIGHT_BRIGHTNESS = 0.67
NARROW_BRIGHTNESS_SPAN = 0.16
RECOMMENDED_FACES = 300
MIN_SHARE = 0.02  # a condition covered by under 2 % of faces counts as (almost) missing
# Sign convention of likeness.faces.head_pose: positive yaw = face turned towards the image's
# right, i.e. the subject looking to their own left.
YAW_SIGN_SUBJECT_LEFT = 1.0
PITCH_SIGN_UP = 1.0

YAW_BINS = np.arange(-90, 91, 15)
PITCH_BINS = np.arange(-60, 61, 15)


@dataclass(frozen=True)
class CoverageReport:
    html_path: Path
    summary_path: Path
    contact_sheet_path: Path | None
    gaps: list[str]
    summary: dict[str, Any]


def _column(records: Sequence[FaceRecord | Mapping[str, Any]], name: str) -> np.ndarray:
    values = [r[name] if isinstance(r, Mapping) else getattr(r, name) for r in records]
    return np.asarray(values, dtype=np.float64)


def coverage_summary(records: Sequence[FaceRecord | Mapping[str, Any]]) -> dict[str, Any]:
    """Numbers that describe a faceset's coverage (JSON-serialisable).

    ``records``: ``FaceRecord``s or index dicts with yaw, pitch, roll, eye_openness,
    mouth_openness, brightness, sharpness, face_size, source, track_id.
    """
    count = len(records)
    summary: dict[str, Any] = {"faces": count}
    if count == 0:
        return summary
    yaw = _column(records, "yaw") * YAW_SIGN_SUBJECT_LEFT
    pitch = _column(records, "pitch") * PITCH_SIGN_UP
    mouth = _column(records, "mouth_openness")
    eyes = _column(records, "eye_openness")
    light = _column(records, "brightness")

    def share(mask: np.ndarray) -> float:
        return round(float(mask.mean()), 4)

    def stats(values: np.ndarray) -> dict[str, float]:
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        return {
            "min": round(float(values.min()), 3),
            "p5": round(float(p5), 3),
            "median": round(float(p50), 3),
            "p95": round(float(p95), 3),
            "max": round(float(values.max()), 3),
        }

    sources = Counter(str(r["source"] if isinstance(r, Mapping) else r.source) for r in records)
    tracks = {int(r["track_id"] if isinstance(r, Mapping) else r.track_id) for r in records}
    grid, _, _ = np.histogram2d(
        np.clip(yaw, YAW_BINS[0], YAW_BINS[-1]), np.clip(pitch, PITCH_BINS[0], PITCH_BINS[-1]),
        bins=[YAW_BINS, PITCH_BINS],
    )
    summary.update(
        {
            "yaw": stats(yaw),
            "pitch": stats(pitch),
            "roll": stats(_column(records, "roll")),
            "mouth_openness": stats(mouth),
            "eye_openness": stats(eyes),
            "brightness": stats(light),
            "sharpness": stats(_column(records, "sharpness")),
            "face_size": stats(_column(records, "face_size")),
            "share": {
                "looking_subject_left": share(yaw > TURN_DEGREES),
                "looking_subject_right": share(yaw < -TURN_DEGREES),
                "looking_up": share(pitch > TILT_DEGREES),
                "looking_down": share(pitch < -TILT_DEGREES),
                "frontal": share((np.abs(yaw) <= 15) & (np.abs(pitch) <= 15)),
                "mouth_open": share(mouth >= MOUTH_OPEN),
                "eyes_closed": share(eyes <= EYES_CLOSED),
                "dark": share(light < DARK_BRIGHTNESS),
                "bright": share(light > BRIGHT_BRIGHTNESS),
            },
            "pose_grid": {
                "yaw_edges": YAW_BINS.tolist(),
                "pitch_edges": PITCH_BINS.tolist(),
                "counts": grid.astype(int).tolist(),
                "cells_covered": int((grid > 0).sum()),
                "cells_total": int(grid.size),
            },
            "sources": len(sources),
            "faces_per_source": dict(sources.most_common()),
            "tracks": len(tracks),
        }
    )
    return summary


def coverage_gaps(summary: Mapping[str, Any]) -> list[str]:
    """Plain-language sentences naming what the faceset lacks, most important first.

    ``summary`` is ``coverage_summary(records)``. An empty list means no gap was found.
    """
    count = int(summary.get("faces", 0))
    if count == 0:
        return ["The faceset has no faces."]
    share = summary["share"]
    gaps: list[str] = []
    if count < RECOMMENDED_FACES:
        gaps.append(
            f"Only {count} faces: a face model usually needs at least {RECOMMENDED_FACES}; "
            "add more footage."
        )
    turn = f"{TURN_DEGREES:.0f} degrees"
    if share["looking_subject_left"] < MIN_SHARE:
        gaps.append(f"No faces looking left beyond {turn} (the subject's left).")
    if share["looking_subject_right"] < MIN_SHARE:
        gaps.append(f"No faces looking right beyond {turn} (the subject's right).")
    tilt = f"{TILT_DEGREES:.0f} degrees"
    if share["looking_up"] < MIN_SHARE:
        gaps.append(f"No faces looking up beyond {tilt}.")
    if share["looking_down"] < MIN_SHARE:
        gaps.append(f"No faces looking down beyond {tilt}.")
    if share["mouth_open"] < MIN_SHARE:
        gaps.append("No open-mouth frames (speaking, singing or smiling with teeth).")
    if share["eyes_closed"] < MIN_SHARE:
        gaps.append("No frames with closed eyes (blinks); swapped faces may not blink naturally.")
    light = summary["brightness"]
    if share["dark"] < MIN_SHARE and share["bright"] < MIN_SHARE and light["p95"] - light["p5"] < NARROW_BRIGHTNESS_SPAN:
        gaps.append(
            f"All faces are similarly lit (brightness {100 * light['p5']:.0f} % to "
            f"{100 * light['p95']:.0f} %); "
            "add darker and brighter scenes."
        )
    else:
        if share["dark"] < MIN_SHARE:
            gaps.append("No dimly lit faces (stage or night scenes).")
        if share["bright"] < MIN_SHARE:
            gaps.append("No brightly lit faces (daylight or strong key light).")
    if summary.get("sources", 0) == 1 and count >= 2:
        gaps.append("All faces come from a single source file; vary shoots, make-up and lighting.")
    return gaps


def contact_sheet(images: Sequence[np.ndarray], *, columns: int = 10, thumb: int = 96, gap: int = 4) -> np.ndarray:
    """Tile RGB crops (uint8 (S, S, 3), any S) into one uint8 RGB sheet of ``thumb`` px tiles."""
    import cv2

    if not images:
        raise FacesetError("contact_sheet needs at least one image")
    if columns < 1 or thumb < 8:
        raise FacesetError(f"columns must be >= 1 and thumb >= 8, got {columns}, {thumb}")
    rows = (len(images) + columns - 1) // columns
    cols = min(columns, len(images))
    sheet = np.full((rows * (thumb + gap) + gap, cols * (thumb + gap) + gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise FacesetError(f"contact_sheet image {i}: expected uint8 (S, S, 3), got {image.dtype} {image.shape}")
        tile = cv2.resize(image, (thumb, thumb), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, columns)
        y, x = gap + r * (thumb + gap), gap + c * (thumb + gap)
        sheet[y : y + thumb, x : x + thumb] = tile
    return sheet


def pick_for_contact_sheet(records: Sequence[FaceRecord], *, limit: int = 60) -> list[int]:
    """Indices of up to ``limit`` faces spread evenly over yaw, so every pose shows up."""
    if len(records) <= limit:
        return sorted(range(len(records)), key=lambda i: records[i].yaw)
    order = sorted(range(len(records)), key=lambda i: records[i].yaw)
    picks = np.linspace(0, len(order) - 1, limit).round().astype(int)
    return [order[i] for i in dict.fromkeys(picks.tolist())]


def _figure_png(draw: Any, *, width: float = 5.2, height: float = 3.6) -> str:
    """Render a matplotlib figure (drawn by ``draw(ax)``) to a base64 PNG data string."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    ax = figure.add_subplot(1, 1, 1)
    draw(ax)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_ACCENT = "#6c4ad8"
_MUTED = "#c8bff0"


def _pose_scatter(records: Sequence[FaceRecord]) -> str:
    yaw = np.array([r.yaw for r in records]) * YAW_SIGN_SUBJECT_LEFT
    pitch = np.array([r.pitch for r in records]) * PITCH_SIGN_UP

    def draw(ax: Any) -> None:
        ax.axvspan(-TURN_DEGREES, TURN_DEGREES, color="#f3f0fc", zorder=0)
        ax.scatter(yaw, pitch, s=12, alpha=0.55, color=_ACCENT, edgecolors="none")
        ax.set_xlim(-90, 90)
        ax.set_ylim(-60, 60)
        ax.axhline(0, color="#bbb", lw=0.6)
        ax.axvline(0, color="#bbb", lw=0.6)
        ax.set_xlabel("yaw (degrees) : subject's right  ←   →  subject's left")
        ax.set_ylabel("pitch (degrees): down ← → up")
        ax.set_title("Head pose of every face", loc="left", fontsize=11)

    return _figure_png(draw, width=6.0, height=4.0)


def _histogram(values: np.ndarray, *, title: str, xlabel: str, bins: Any, marker: float | None, marker_label: str) -> str:
    def draw(ax: Any) -> None:
        ax.hist(values, bins=bins, color=_ACCENT, alpha=0.85, edgecolor="white")
        if marker is not None:
            ax.axvline(marker, color="#e0457b", lw=1.2, ls="--", label=marker_label)
            ax.legend(frameon=False, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("faces")
        ax.set_title(title, loc="left", fontsize=11)

    return _figure_png(draw, width=4.2, height=2.9)


def write_coverage_report(
    faceset: Faceset, out_dir: str | os.PathLike[str], *, sheet_limit: int = 60
) -> CoverageReport:
    """Write ``report.html`` (self-contained) and ``summary.json`` for ``faceset`` into ``out_dir``.

    Also writes ``contact_sheet.jpg`` (the same sheet as in the page). Returns the paths, the
    summary and the gap sentences.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    from likeness.media import write_image

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacesetError(f"{out}: cannot create the report folder ({exc})") from None
    records = list(faceset)
    summary = coverage_summary(records)
    gaps = coverage_gaps(summary)
    manifest = faceset.manifest
    summary_document = {
        "faceset_sha256": manifest.faceset_sha256,
        "subject_id": manifest.subject_id,
        "subject_slug": manifest.subject_slug,
        "grant_id": manifest.grant_id,
        "release_id": manifest.release_id,
        "created_at": manifest.created_at,
        "size": manifest.size,
        "counts": manifest.counts,
        "coverage": summary,
        "gaps": gaps,
        "report_created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    summary_path = out / "summary.json"
    atomic_write_text(summary_path, json.dumps(summary_document, indent=2, ensure_ascii=False) + "\n")

    sheet_b64 = None
    sheet_path: Path | None = None
    plots: dict[str, str] = {}
    if records:
        picks = pick_for_contact_sheet(records, limit=sheet_limit)
        sheet = contact_sheet([faceset.image(records[i]) for i in picks])
        sheet_path = write_image(out / "contact_sheet.jpg", sheet, quality=88)
        sheet_b64 = base64.b64encode(sheet_path.read_bytes()).decode("ascii")
        plots["pose"] = _pose_scatter(records)
        plots["mouth"] = _histogram(
            np.array([r.mouth_openness for r in records]), title="Mouth openness",
            xlabel="closed → open", bins=20, marker=MOUTH_OPEN, marker_label="open",
        )
        plots["eyes"] = _histogram(
            np.array([r.eye_openness for r in records]), title="Eye openness",
            xlabel="closed → open", bins=20, marker=EYES_CLOSED, marker_label="closed",
        )
        plots["brightness"] = _histogram(
            np.array([r.brightness for r in records]), title="Face brightness",
            xlabel="dark → bright (mean luma, 0–1)", bins=np.linspace(0, 1, 26), marker=None, marker_label="",
        )
    env = Environment(
        loader=PackageLoader("likeness.faceset", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    html = env.get_template("coverage_report.html.j2").render(
        manifest=manifest,
        summary=summary,
        gaps=gaps,
        sheet_b64=sheet_b64,
        sheet_count=len(pick_for_contact_sheet(records, limit=sheet_limit)) if records else 0,
        plots=plots,
        report_created_at=summary_document["report_created_at"],
        turn=TURN_DEGREES,
        tilt=TILT_DEGREES,
    )
    html_path = out / "report.html"
    atomic_write_text(html_path, html)
    return CoverageReport(
        html_path=html_path, summary_path=summary_path, contact_sheet_path=sheet_path,
        gaps=gaps, summary=summary,
    )
