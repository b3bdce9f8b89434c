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
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from likeness.durable import write_atomic
from likeness.render.quality import BLINKS_KEPT, ring_colour_difference
from likeness.render.track_quality import FrameSample
from likeness.report_font import embedded_font_css
from likeness.report_text import printable

if TYPE_CHECKING:
    from likeness.provenance.visible_label import Placement


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
    mask[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0] = alpha >= 0.5 * peak
    return ring_colour_difference(np.ascontiguousarray(frame[y0:y1, x0:x1]), mask)


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
    thin_rims_skipped_faces: int = 0  # swapped faces with no spectacle zone: the add-on left out
    faces: Counter = field(default_factory=Counter)  # "swapped" or a skip reason -> count
    decode_error: str | None = None
    audio_note: str | None = None  # sound left out of the output (tracks past the most kept)
    interlaced_note: str | None = None  # an interlaced source: how it was made progressive
    deinterlaced: str | None = None  # the deinterlacer its frames went through ("bwdif"), None if none
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    content_check: dict[str, Any] = field(default_factory=dict)
    shots: list[dict[str, Any]] = field(default_factory=list)
    # Every track of a video (``TrackTally.summary``): frames, box, faces swapped and left alone.
    tracks: list[dict[str, Any]] = field(default_factory=list)
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
        payload["mask_options"] = mask_options_text(self)
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


def marked_thumbnail(after: np.ndarray, job_id: str, *, placement: Placement = "safe") -> np.ndarray:
    """A thumbnail of a synthetic frame, marked like the output it comes from: the visible
    AI-generated label, then the invisible watermark of render job ``job_id`` (whose payload
    the ledger's ``render.completed`` event records), so a thumbnail cut out of the report
    still verifies as that job's synthetic media."""
    from likeness.provenance.visible_label import burn_visible_label
    from likeness.provenance.watermark import WatermarkEmbedder
    from likeness.provenance.writer import watermark_payload_for

    small = burn_visible_label(thumbnail(after), placement=placement)
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
        f"{output_name}.{report.job_id}.{k}" for k in range(2, 100)
    ]
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


#: Per track, the before/after face crops shown: (why picked, sample).
FaceFrames = dict[int, list[tuple[str, FrameSample]]]

VERDICT_TEXT = {
    "pass": "통과 · pass",
    "warn": "주의 · warn",
    "fail": "실패 · fail",
    "not_measured": "측정 불가 · not measured",
}

METRIC_TEXT = {
    "identity": "identity: distance to the subject",
    "mouth": "expression: mouth opening",
    "eyes": "expression: eye openness (blinks)",
    "sharpness": "sharpness: effective resolution vs the performer's face",
    "occlusion": "occlusion damage: occluder pixels painted over",
    "flicker": "flicker vs the footage",
    "border_colour": "border colour (CIEDE2000)",
}


#: How FFmpeg's field orders read (``VideoInfo.field_order``).
FIELD_ORDER_TEXT = {
    "tt": "top field first",
    "bb": "bottom field first",
    "tb": "top field coded first, bottom shown first",
    "bt": "bottom field coded first, top shown first",
}


def interlaced_note(field_order: str | None, deinterlacer: str | None, frame_rate: float) -> str | None:
    """What a render did with interlaced footage, in words (None for progressive footage).

    >>> interlaced_note("tt", "bwdif", 25.0)[:53]
    'interlaced footage deinterlaced (bwdif, top field fir'
    >>> interlaced_note("bb", "bwdif", 30000 / 1001)[33:70]
    'bwdif, bottom field first) to 29.97p:'
    """
    if field_order is None:
        return None
    order = FIELD_ORDER_TEXT.get(field_order, "field order not stated")
    if deinterlacer is None:  # an FFmpeg build without bwdif or yadif
        return (
            f"interlaced footage ({order}) was rendered as whole frames and written progressive: the swapped "
            "face shows one instant in both fields and the combing of motion stays around it; deinterlace the "
            "take first (e.g. FFmpeg's bwdif) for a clean swap, and interlace the result again if the delivery "
            "needs it"
        )
    rate = f"{frame_rate:.2f}".rstrip("0").rstrip(".")
    return (
        f"interlaced footage deinterlaced ({deinterlacer}, {order}) to {rate}p: one progressive picture per "
        "frame, so the swapped face and the plate around it show the same instant, without combing; "
        "interlace the result again if the delivery must be interlaced"
    )


#: Why a face was left alone, in words (``gating.SKIP_REASONS``).
LEFT_ALONE_TEXT = {
    "not_target": "not the released performer",
    "too_small": "too small to swap well",
    "profile_beyond_coverage": "turned further than the model's faces cover",
    "out_of_frame": "partly out of frame",
}
#: Tracks the HTML page lists one by one (the JSON holds them all).
TRACKS_SHOWN = 200


def left_alone_text(left_alone: dict[str, int], faces: int) -> str:
    """``not the released performer`` (every face, one reason) or ``... (10), too small ... (2)``."""
    if len(left_alone) == 1 and sum(left_alone.values()) == faces:
        return LEFT_ALONE_TEXT.get(next(iter(left_alone)), next(iter(left_alone)))
    return ", ".join(f"{LEFT_ALONE_TEXT.get(reason, reason)} ({count})" for reason, count in left_alone.items())


def track_line(track: dict[str, Any]) -> str:
    """One track of the report's ``tracks`` in words.

    >>> track_line({"track_id": 1, "first_frame": 0, "last_frame": 11, "faces": 12, "swapped": 0,
    ...             "left_alone": {"not_target": 12}})
    'Track 1: left alone · 12 faces, frames 0–11: not the released performer'
    >>> track_line({"track_id": 0, "first_frame": 3, "last_frame": 40, "faces": 38, "swapped": 36,
    ...             "left_alone": {"too_small": 2}})
    'Track 0: swapped · 36 of 38 faces, frames 3–40; left alone: too small to swap well (2)'
    """
    frames = f"frames {track['first_frame']}–{track['last_frame']}"
    if not track["swapped"]:
        return f"Track {track['track_id']}: left alone · {track['faces']} faces, {frames}: " + left_alone_text(
            track["left_alone"], track["faces"]
        )
    line = f"Track {track['track_id']}: swapped · {track['swapped']} of {track['faces']} faces, {frames}"
    if track["left_alone"]:
        line += "; left alone: " + left_alone_text(track["left_alone"], track["faces"])
    return line


def track_verdict_line(shot: dict[str, Any]) -> str:
    """One line for a terminal: ``track 0: fail (identity fail: ...; sharpness warn)``.

    >>> track_verdict_line({"track_id": 2, "verdict": "pass", "metrics": {}})
    'track 2: pass'
    """
    problems = []
    for name, line in shot.get("metrics", {}).items():
        if line.get("verdict") in ("fail", "warn"):
            reason = line.get("reason") or f"{_value_text(name, line)}, threshold {_threshold_text(name, line)}"
            problems.append(f"{name} {line['verdict']}: {reason}")
    source = f" ({shot['source']})" if shot.get("source") else ""
    return f"track {shot['track_id']}{source}: {shot.get('verdict', 'not_measured')}" + (
        f" ({'; '.join(problems)})" if problems else ""
    )


def _value_text(name: str, line: dict[str, Any]) -> str:
    value = line.get("value")
    if value is None:
        return "–"
    if name in ("mouth", "eyes"):
        text = f"r = {value:.2f}, moves {line['amplitude_ratio']:.2f}× the performer"
        if line.get("peak_opening_ratio") is not None:
            text += f"; opens {line['peak_opening_ratio']:.2f}× as wide at the performer's widest"
        if name == "eyes":
            text += f"; blinks {line.get('performer_blinks', 0)} → {line.get('output_blinks', 0)}"
        return text
    if name == "identity":
        return (
            f"{value:.3f} (median of {line['samples']}; worst {line['worst']:.3f}; "
            f"{line['within_threshold_share']:.0%} within)"
        )
    if name == "sharpness":
        pixels = (
            f"; detail of a {line['effective_px']} px face on a {line['face_px']} px one" if "face_px" in line else ""
        )
        return f"{value:.2f}× the performer's effective resolution (median of {line['samples']}{pixels})"
    if name == "flicker":
        return f"{value:.2f}×"
    if name == "occlusion":
        worst = line.get("worst_frame") or {}
        return f"{value:.0%} ({line['samples']} frames with an occluder; worst frame {worst.get('value', 0):.0%})"
    return f"{value:.2f}"


def _threshold_text(name: str, line: dict[str, Any]) -> str:
    if name == "identity":
        return f"≤ {line['threshold']:.2f}"
    if name in ("mouth", "eyes"):
        text = f"r ≥ {line['threshold']:.1f} and ≥ {line['min_amplitude_ratio']:.1f}×"
        if line.get("min_peak_opening_ratio") is not None:
            text += f"; ≥ {line['min_peak_opening_ratio']:.1f}× at the widest"
        return text + (f"; ≥ {BLINKS_KEPT.pass_at:.0%} of the blinks" if name == "eyes" else "")
    if name == "occlusion":
        return (
            f"≤ {line['threshold']:.0%} changed by more than ΔE00 {line['tolerance_ciede2000']:g} "
            f"(warn ≤ {line['warn_at']:.0%})"
        )
    sign = "≥" if line.get("better") == "higher" else "≤"
    return f"{sign} {line['threshold']:g} (warn {sign} {line['warn_at']:g})"


def _metric_rows(shot: dict[str, Any]) -> str:
    rows = []
    for name, line in shot.get("metrics", {}).items():
        verdict = line.get("verdict", "not_measured")
        note = line.get("reason") or ""
        rows.append(
            f'<tr><th scope="row">{html.escape(METRIC_TEXT.get(name, name))}</th>'
            f'<td data-label="value">{html.escape(_value_text(name, line))}</td>'
            f'<td data-label="threshold">{html.escape(_threshold_text(name, line))}</td>'
            f'<td data-label="verdict"><span class="v {verdict}">{html.escape(VERDICT_TEXT[verdict])}</span>'
            f"{'<br><small>' + html.escape(note) + '</small>' if note else ''}</td></tr>"
        )
    return "".join(rows)


#: Height (px) of the band under each 256 px face crop: the "after" crop's visible label sits in
#: it (a bottom corner placement lands below the face), so the label hides no lip or eye.
LABEL_BAND_PX = 72


def with_label_band(face: np.ndarray) -> np.ndarray:
    """``face`` (uint8 (S, S, 3)) with a dark :data:`LABEL_BAND_PX` band added below it."""
    band = np.full((LABEL_BAND_PX, face.shape[1], 3), 32, np.uint8)
    return np.ascontiguousarray(np.vstack([face, band]))


def _face_figures(frames: list[tuple[str, FrameSample]], job_id: str) -> str:
    figures = []
    for why, sample in frames:
        facts = [f"frame {sample.frame_index}"]
        if sample.identity_distance is not None:
            facts.append(f"identity distance {sample.identity_distance:.3f}")
        if sample.sharpness is not None:
            facts.append(f"sharpness {sample.sharpness:.2f}×")
        if sample.mouth_performer is not None and sample.mouth_output is not None:
            facts.append(f"mouth {sample.mouth_performer:.2f} → {sample.mouth_output:.2f}")
        if sample.occlusion_damage is not None:
            facts.append(f"occluder painted over {sample.occlusion_damage:.0%}")
        figures.append(
            f'<figure class="pair"><figcaption><strong>{html.escape(why)}</strong><br>{html.escape("; ".join(facts))}'
            f'</figcaption><div class="crops"><div><img alt="before: the performer" '
            f'src="{_data_uri(with_label_band(sample.before), ".jpg")}"><span>before</span></div>'
            f'<div><img alt="after, face (AI-generated)" '
            f'src="{_data_uri(marked_thumbnail(with_label_band(sample.after), job_id, placement="bottom-right"), ".png")}">'
            f"<span>after · AI 생성</span></div></div></figure>"
        )
    return "".join(figures)


PAGE_CSS = """
*{box-sizing:border-box}
body{font-family:'NanumGothic',sans-serif;margin:0 auto;padding:16px;max-width:1100px;line-height:1.45;
  overflow-wrap:break-word;color:#1b1b1b}
li,code,figcaption{overflow-wrap:anywhere}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em}h3{font-size:1.1em}
code{font-size:.92em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:6px;text-align:left;vertical-align:top}
th[scope=row]{font-weight:normal;width:28%}
.v{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:bold;white-space:nowrap}
.pass{background:#d8f0dc;color:#14532d}.warn{background:#fdf0c4;color:#6b4e00}
.fail{background:#f9d3d0;color:#7f1d1d}.not_measured{background:#e6e6e6;color:#333}
.pair{margin:12px 0;padding:0}
.crops{display:grid;grid-template-columns:repeat(2,minmax(0,256px));gap:8px}
.crops img{width:100%;height:auto;display:block;image-rendering:auto}
.crops span{font-size:.85em;color:#555}
.strip img{max-width:100%;height:auto}
@media (max-width:640px){
  body{padding:10px}
  .metrics tr.head{display:none}
  .metrics,.metrics tbody,.metrics tr,.metrics th,.metrics td{display:block;width:100%}
  .metrics tr{border:1px solid #ccc;border-radius:6px;margin-bottom:8px;padding:4px 0}
  .metrics th,.metrics td{border:none;padding:2px 8px}
  .metrics th[scope=row]{font-weight:bold;width:100%}
  .metrics td::before{content:attr(data-label) ": ";color:#666}
}
"""


#: The refinement options the HTML report lists (the JSON holds them all under ``options``).
REFINE_SHOWN = (("mouth", "--mouth"), ("eyes", "--eyes"), ("occlusion", "--occlusion"), ("thin_rims", "--thin-rims"))


def refine_text(options: dict[str, Any]) -> str:
    """The mask options a render used, as ``--mouth off, --eyes on, ...`` (those it records)."""
    refine = options.get("refine") or {}
    return ", ".join(f"{flag} {'on' if refine[name] else 'off'}" for name, flag in REFINE_SHOWN if name in refine)


def mask_options_text(report: RenderReport) -> str:
    """The report's "mask options" line: :func:`refine_text`, and the faces ``--thin-rims`` was
    left out for."""
    text = refine_text(report.options) or "not recorded"
    if report.thin_rims_skipped_faces:
        text += (
            f" (--thin-rims skipped for {report.thin_rims_skipped_faces} faces whose spectacle zone "
            "could not be built; they kept the mask without it)"
        )
    return text


def write_report(
    report: RenderReport,
    folder: Path,
    stem: str,
    strip: list[StripFrame],
    face_frames: FaceFrames | None = None,
    track_jobs: dict[int, str] | None = None,
) -> None:
    """Write ``stem.render.json`` and ``stem.render.html`` into ``folder`` (another free name
    when those are taken, see :func:`report_paths`).

    ``strip``: (before, after, job id) frames for the before/after strip; ``face_frames``: per
    track, face crops at its worst and median frames (``ShotQuality.picked_frames``), shown at
    256 px side by side; ``track_jobs``: the job id each track's output belongs to (default the
    report's). Every "after" image carries the visible AI-generated label and the job's invisible
    watermark (:func:`marked_thumbnail`). The page embeds the NanumGothic it uses
    (``likeness.report_font.embedded_font_css``) and fits a 390 px wide phone.
    """
    json_path, html_path = report_paths(folder, stem, report)
    report.report_json, report.report_html = str(json_path), str(html_path)
    write_atomic(json_path, json.dumps(report.to_json(), indent=2, default=str).encode("utf-8"))
    face_frames = face_frames or {}
    track_jobs = track_jobs or {}
    rows = []
    for before, after, job_id in strip[:4]:
        rows.append(
            f'<tr><td><img alt="before" src="{_data_uri(thumbnail(before), ".jpg")}"></td>'
            f'<td><img alt="after (AI-generated)" src="{_data_uri(marked_thumbnail(after, job_id), ".png")}"></td></tr>'
        )
    data = report.to_json()
    tracks = []
    for shot in report.shots:
        track = shot["track_id"]
        verdict = shot.get("verdict", "not_measured")
        job_id = track_jobs.get(track) or str(report.job_id)
        source = f" · {html.escape(printable(shot['source']))}" if shot.get("source") else ""
        tracks.append(
            f'<section class="track"><h3>Track {track}{source}: <span class="v {verdict}">'
            f"{html.escape(VERDICT_TEXT[verdict])}</span></h3><p>{shot['frames_swapped']} faces swapped; "
            f"{shot.get('expression_samples', 0)} frames measured for expression.</p>"
            f'<div class="scroll"><table class="metrics"><tr class="head"><th>metric</th><th>value</th><th>threshold</th>'
            f"<th>verdict</th></tr>"
            f"{_metric_rows(shot)}</table></div>{_face_figures(face_frames.get(track, []), job_id)}</section>"
        )
    skipped = ", ".join(f"{html.escape(k)}: {v}" for k, v in data["faces_skipped"].items()) or "none"
    track_items = "".join(f"<li>{html.escape(track_line(t))}</li>" for t in report.tracks[:TRACKS_SHOWN])
    if len(report.tracks) > TRACKS_SHOWN:
        track_items += f"<li>and {len(report.tracks) - TRACKS_SHOWN} more tracks (all in the JSON report)</li>"
    faces_by_track = (
        f"<h2>Faces by track (트랙별 얼굴)</h2><p>Every face the render followed through the clip: swapped, "
        f"or left alone and why.</p><ul>{track_items}</ul>"
        if report.tracks
        else ""
    )
    sound = f"\n<li>sound: {html.escape(report.audio_note)}</li>" if report.audio_note else ""
    if report.interlaced_note:
        sound += f"\n<li>interlacing: {html.escape(report.interlaced_note)}</li>"
    body = f"""<h1>Render report</h1>
<p><strong>AI 생성 · AI-generated</strong>: the output contains synthetic faces of <code>{html.escape(report.subject_slug)}</code>
rendered onto footage of <code>{html.escape(report.performer_slug)}</code> for use <code>{html.escape(report.use)}</code> by <code>{html.escape(report.org)}</code>.</p>
<ul><li>target: {html.escape(printable(report.target))}</li><li>output: {html.escape(printable(report.output))}</li>
<li>frames: {report.frames_rendered} rendered of {report.frames_total}; {report.fps:.1f} fps</li>
<li>swap model: {html.escape(report.model_precision.get("used", "float"))} ({html.escape(report.model_precision.get("why", ""))})</li>
<li>faces swapped: {data["faces_swapped"]}; skipped: {skipped}</li>
<li>mask options: {html.escape(data["mask_options"])}</li>
<li>decode problems: {html.escape(printable(report.decode_error or "none"))}</li>{sound}</ul>
{faces_by_track}
<h2>Quality per track (트랙별 품질)</h2>
<p>Each metric is measured on the output's own pixels against the performer's footage, with its threshold;
see docs/render.md. Face crops: before (the performer) and after (the output), aligned the same way.</p>
{"".join(tracks) or "<p>No track was swapped.</p>"}
<h2>Before / after (AI-generated)</h2><div class="strip scroll"><table>{"".join(rows)}</table></div>"""
    title = f"Render report {html.escape(str(report.job_id))}"
    font_css = embedded_font_css(title + body + "".join(VERDICT_TEXT.values()))
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{font_css}{PAGE_CSS}</style></head><body>{body}</body></html>"
    )
    write_atomic(html_path, page.encode("utf-8"))
