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

from likeness.durable import write_atomic
from likeness.errors import FacesetError
from likeness.faceset.format import FaceRecord, Faceset

# Thresholds for the gap sentences. Angles in degrees; openness values are the ratios returned by
# likeness.faces.eye_openness / mouth_openness (gap height over width).
TURN_DEGREES = 30.0
TILT_DEGREES = 20.0
# "Mouth open" means the lips are apart: teeth or the inside of the mouth show, which a model that
# never saw it cannot draw. The ratio divides the inner-lip gap by the inner mouth width, which a
# smile stretches, so a toothy smile sits low: measured (MediaPipe landmarks) 0.15-0.24 on toothy
# smiles (scikit-image's astronaut 0.18, two synthetic smile strips), 0.10-0.27 (10th-90th
# percentile) on the consenting actor talking, 0.001-0.06 on closed lips, closed smiles included.
# The earlier 0.35 ("wide open") counted none of those as open, not even the actor speaking.
MOUTH_OPEN = 0.10
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

    conditions = {
        "looking_subject_left": yaw > TURN_DEGREES,
        "looking_subject_right": yaw < -TURN_DEGREES,
        "looking_up": pitch > TILT_DEGREES,
        "looking_down": pitch < -TILT_DEGREES,
        "frontal": (np.abs(yaw) <= 15) & (np.abs(pitch) <= 15),
        "mouth_open": mouth >= MOUTH_OPEN,
        "eyes_closed": eyes <= EYES_CLOSED,
        "dark": light < DARK_BRIGHTNESS,
        "bright": light > BRIGHT_BRIGHTNESS,
    }

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
        np.clip(yaw, YAW_BINS[0], YAW_BINS[-1]),
        np.clip(pitch, PITCH_BINS[0], PITCH_BINS[-1]),
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
            "share": {name: share(mask) for name, mask in conditions.items()},
            "count": {name: int(mask.sum()) for name, mask in conditions.items()},
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
        gaps.append(f"Only {count} faces: a face model usually needs at least {RECOMMENDED_FACES}; add more footage.")
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
    if (
        share["dark"] < MIN_SHARE
        and share["bright"] < MIN_SHARE
        and light["p95"] - light["p5"] < NARROW_BRIGHTNESS_SPAN
    ):
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


# --- Coverage gate: the performer's faceset against the source's, before training ------------------
# A face model draws what it saw: a performer's open mouth, blink or turned head that no source
# face shows comes out as a blur or a closed mouth. Shares are of each faceset's faces.

#: A condition is a gap when the performer shows it in at least this share of frames (blinks last
#: a few frames, so 2 % of frames is already regular blinking) ...
GATE_MIN_PERFORMER_SHARE = {
    "mouth_open": 0.05,
    "eyes_closed": 0.02,
    "looking_subject_left": 0.05,
    "looking_subject_right": 0.05,
    "looking_up": 0.05,
    "looking_down": 0.05,
}
#: ... and the source shows it less than a quarter as often.
GATE_SOURCE_RATIO = 0.25
#: Severe (training refused unless the gaps are accepted): at least a tenth of the performance
#: would be drawn from (almost) nothing: the performer shows it in >= 10 % of frames and the source
#: has fewer than 3 faces showing it.
SEVERE_PERFORMER_SHARE = 0.10
SEVERE_SOURCE_FACES = 3

_GATE_WORDING = {
    # condition: (what the performer does, what the source faces are called)
    "mouth_open": ("the performer's mouth is open", "open-mouth faces"),
    "eyes_closed": ("the performer's eyes are closed (blinks)", "closed-eye faces"),
    "looking_subject_left": (
        f"the performer looks to their left beyond {TURN_DEGREES:.0f} degrees",
        "faces looking left that far",
    ),
    "looking_subject_right": (
        f"the performer looks to their right beyond {TURN_DEGREES:.0f} degrees",
        "faces looking right that far",
    ),
    "looking_up": (f"the performer looks up beyond {TILT_DEGREES:.0f} degrees", "faces looking up that far"),
    "looking_down": (f"the performer looks down beyond {TILT_DEGREES:.0f} degrees", "faces looking down that far"),
}


@dataclass(frozen=True)
class CoverageGap:
    """Something the performer does that the source faceset (almost) never shows.

    ``condition``: a key of ``coverage_summary(...)["share"]`` (``mouth_open``, ``eyes_closed``,
    ``looking_subject_left`` ...); counts are faces, shares fractions of each faceset.
    """

    condition: str
    performer_faces: int
    performer_total: int
    source_faces: int
    source_total: int
    severe: bool

    @property
    def performer_share(self) -> float:
        return self.performer_faces / self.performer_total

    @property
    def source_share(self) -> float:
        return self.source_faces / self.source_total

    def sentence(self) -> str:
        """E.g. "the performer's mouth is open in 62 % of frames (310 of 500); the source has 0
        open-mouth faces (of 7)"."""
        doing, called = _GATE_WORDING[self.condition]
        source = (
            f"the source has {self.source_faces} {called} (of {self.source_total})"
            if self.source_faces == 0
            else f"the source has {self.source_faces} {called} ({_percent(self.source_share)} of {self.source_total})"
        )
        return (
            f"{doing} in {_percent(self.performer_share)} of frames ({self.performer_faces} of "
            f"{self.performer_total}); {source}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "severe": self.severe,
            "sentence": self.sentence(),
            "performer_faces": self.performer_faces,
            "performer_total": self.performer_total,
            "source_faces": self.source_faces,
            "source_total": self.source_total,
        }


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %" if share >= 0.01 or share == 0 else f"{100 * share:.1f} %"


def compare_coverage(performer: Mapping[str, Any], source: Mapping[str, Any]) -> list[CoverageGap]:
    """What the performer's faceset shows that the source's lacks, severe gaps first.

    ``performer``/``source``: ``coverage_summary(records)`` of the target (performer) and source
    (subject) facesets. A condition (open mouth, closed eyes, head turned or tilted beyond the
    report's angles) is a gap when the performer shows it in at least
    ``GATE_MIN_PERFORMER_SHARE`` of frames and the source less than ``GATE_SOURCE_RATIO`` times as
    often; severe when the performer shows it in at least ``SEVERE_PERFORMER_SHARE`` of frames and
    the source has fewer than ``SEVERE_SOURCE_FACES`` faces showing it.

    Example:
        >>> talking = {"faces": 50, "count": {"mouth_open": 31}}
        >>> photos = {"faces": 7, "count": {"mouth_open": 0}}
        >>> compare_coverage(talking, photos)[0].sentence()
        "the performer's mouth is open in 62 % of frames (31 of 50); the source has 0 open-mouth faces (of 7)"
    """
    performer_total, source_total = int(performer.get("faces", 0)), int(source.get("faces", 0))
    if performer_total == 0 or source_total == 0:
        return []
    gaps = []
    for condition, least in GATE_MIN_PERFORMER_SHARE.items():
        shown = int(performer.get("count", {}).get(condition, 0))
        have = int(source.get("count", {}).get(condition, 0))
        performer_share, source_share = shown / performer_total, have / source_total
        if performer_share < least or source_share >= GATE_SOURCE_RATIO * performer_share:
            continue
        severe = performer_share >= SEVERE_PERFORMER_SHARE and have < SEVERE_SOURCE_FACES
        gaps.append(CoverageGap(condition, shown, performer_total, have, source_total, severe))
    return sorted(gaps, key=lambda gap: (not gap.severe, -gap.performer_share))


class CoverageRefused(FacesetError):
    """Training refused: the source faceset lacks what the performer does (severe coverage gaps).

    ``gaps``: every gap found, severe ones first. ``--accept-gaps`` (``accept_gaps=True``) trains
    anyway and records them.
    """

    def __init__(self, gaps: Sequence[CoverageGap]) -> None:
        self.gaps = list(gaps)
        lines = "".join(f"\n  - {'SEVERE: ' if gap.severe else ''}{gap.sentence()}" for gap in self.gaps)
        super().__init__(
            "training refused: the source faceset does not show what the performer does, so the model "
            f"could not draw it:{lines}\nAdd source footage that shows these, or pass --accept-gaps to train "
            "anyway (the gaps are recorded in the model folder and its model card)."
        )


def coverage_check(
    performer: Sequence[FaceRecord | Mapping[str, Any]],
    source: Sequence[FaceRecord | Mapping[str, Any]],
    *,
    accept_gaps: bool,
) -> dict[str, Any]:
    """The coverage gate before training: compare the performer's faces with the source's.

    Returns the record a model keeps (``coverage_check.json``, the checkpoint and the model card):
    ``{"gaps": [CoverageGap.to_dict(), ...], "severe": n, "accepted": bool, "thresholds": {...}}``,
    where ``accepted`` says that severe gaps were overridden. Raises :class:`CoverageRefused`
    when a gap is severe and ``accept_gaps`` is False.
    """
    gaps = compare_coverage(coverage_summary(performer), coverage_summary(source))
    severe = sum(gap.severe for gap in gaps)
    if severe and not accept_gaps:
        raise CoverageRefused(gaps)
    return {
        "gaps": [gap.to_dict() for gap in gaps],
        "severe": severe,
        "accepted": bool(severe and accept_gaps),
        "thresholds": {
            "min_performer_share": GATE_MIN_PERFORMER_SHARE,
            "source_ratio": GATE_SOURCE_RATIO,
            "severe_performer_share": SEVERE_PERFORMER_SHARE,
            "severe_source_faces": SEVERE_SOURCE_FACES,
            "mouth_open": MOUTH_OPEN,
            "eyes_closed": EYES_CLOSED,
            "turn_degrees": TURN_DEGREES,
            "tilt_degrees": TILT_DEGREES,
        },
    }


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


def _histogram(
    values: np.ndarray, *, title: str, xlabel: str, bins: Any, marker: float | None, marker_label: str
) -> str:
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
    from likeness.report_text import printable

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
    write_atomic(summary_path, (json.dumps(summary_document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

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
            np.array([r.mouth_openness for r in records]),
            title="Mouth openness",
            xlabel="closed → open",
            bins=20,
            marker=MOUTH_OPEN,
            marker_label="open",
        )
        plots["eyes"] = _histogram(
            np.array([r.eye_openness for r in records]),
            title="Eye openness",
            xlabel="closed → open",
            bins=20,
            marker=EYES_CLOSED,
            marker_label="closed",
        )
        plots["brightness"] = _histogram(
            np.array([r.brightness for r in records]),
            title="Face brightness",
            xlabel="dark → bright (mean luma, 0–1)",
            bins=np.linspace(0, 1, 26),
            marker=None,
            marker_label="",
        )
    env = Environment(
        loader=PackageLoader("likeness.faceset", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    env.filters["printable"] = printable  # source file names come from whoever made the files
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
    write_atomic(html_path, html.encode("utf-8"))
    return CoverageReport(
        html_path=html_path,
        summary_path=summary_path,
        contact_sheet_path=sheet_path,
        gaps=gaps,
        summary=summary,
    )
