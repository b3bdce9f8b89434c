"""Evidence packs: per file a JSON result, a self-contained HTML page and a zip to attach to a
takedown request or a police complaint.

The HTML embeds every picture as a base64 data URI (no external file, font or script), so the
page and the zip stay readable offline and unchanged. The zip holds the JSON, the HTML, the
original file when it is small enough, and ``SHA256SUMS`` over all of them.

Example::

    paths = write_evidence(result, EvidenceMedia(thumbnail=rgb_small), Path("report"))
    paths.zip  # report/clip-3fa2c1d09e4b.zip
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from likeness.digests import sha256_file
from likeness.durable import atomic_path, write_atomic
from likeness.errors import MediaError
from likeness.report_font import embedded_font_css
from likeness.verify.result import VerificationResult, utc_now
from likeness.verify.verdict import SUMMARIES, VERDICTS

#: Originals up to this size go inside the zip; bigger ones are named by SHA-256 and size only
#: (a platform's upload form usually caps attachments well below a long 1080p video).
DEFAULT_MAX_ORIGINAL_BYTES = 64 * 1024 * 1024
THUMBNAIL_SIDE = 480
FACE_CROP_SIDE = 160
#: Evidence packs (and ``results.json``) are the owner's alone: they name where media was found
#: and can hold the original file.
EVIDENCE_MODE = 0o600

_VERDICT_COLOURS = {
    "error": "#6b7280",
    "tampered": "#b91c1c",
    "authorized-synthetic": "#15803d",
    "synthetic-consent-revoked": "#b45309",
    "synthetic-other-issuer": "#1d4ed8",
    "no-face": "#6b7280",
    "enrolled-artist-unlabelled": "#c2410c",
    "enrolled-artist-suspected-manipulation": "#b91c1c",
    "suspected-manipulation": "#b91c1c",
    "no-enrolled-artist": "#374151",
}


@dataclass(frozen=True)
class EvidencePicture:
    """An RGB ``uint8 (H, W, 3)`` picture for the report with a caption."""

    rgb: np.ndarray
    caption: str


@dataclass(frozen=True)
class EvidenceMedia:
    """Pixels for the HTML page (the JSON never holds pixels).

    ``thumbnail``: the image, or the first analysed video frame. ``frames``: thumbnails of the
    analysed video frames with their timestamps as captions. ``face_crops``: per ``face_id``, the
    face as seen in the file. ``references``: per ``subject_id``, a reference face of the
    enrolled subject when the workspace keeps one. ``label_crop``: the visible AI label where
    it was found. ``heatmaps``: per flagged ``face_id``, its detector's occlusion sensitivity
    over the aligned face (``likeness.detector.heatmap``).
    """

    thumbnail: np.ndarray | None = None
    frames: Sequence[EvidencePicture] = ()
    face_crops: Mapping[int, np.ndarray] = field(default_factory=dict)
    references: Mapping[str, np.ndarray] = field(default_factory=dict)
    label_crop: np.ndarray | None = None
    heatmaps: Mapping[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class EvidencePaths:
    json: Path
    html: Path
    zip: Path


def fit_within(rgb: np.ndarray, *, max_side: int) -> np.ndarray:
    """Downscale RGB ``uint8 (H, W, 3)`` so its longer side is at most ``max_side`` pixels
    (area interpolation); smaller images are returned unchanged."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MediaError(None, f"expected uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def crop_box(rgb: np.ndarray, bbox: Sequence[float], *, margin: float = 0.25) -> np.ndarray:
    """The face box ``(x0, y0, x1, y1)`` plus ``margin`` of its size on every side, clipped to
    the frame, as a new RGB array."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in bbox)
    pad_x, pad_y = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, int(x0 - pad_x)), max(0, int(y0 - pad_y))
    right, bottom = min(width, int(np.ceil(x1 + pad_x))), min(height, int(np.ceil(y1 + pad_y)))
    if right <= left or bottom <= top:
        raise MediaError(None, f"face box {tuple(bbox)} lies outside the {width}x{height} frame")
    return np.ascontiguousarray(rgb[top:bottom, left:right])


def data_uri(rgb: np.ndarray, *, max_side: int) -> str:
    """A ``data:image/jpeg;base64,...`` URI of the picture scaled to ``max_side``."""
    from likeness.media.images import encode_image

    encoded = encode_image(fit_within(rgb, max_side=max_side), suffix=".jpg", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(encoded).decode("ascii")


def evidence_stem(result: VerificationResult) -> str:
    """File-name stem for a result: the sanitised file name and the first 12 hex of its hash."""
    name = Path(result.path).name or "file"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"
    return f"{safe[:80]}-{(result.sha256 or 'unhashed')[:12]}"


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    from likeness.report_text import printable

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("likeness.verify", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["printable"] = printable  # file names come from whoever made the file
    return environment


def render_html(result: VerificationResult, media: EvidenceMedia | None = None) -> str:
    """The self-contained evidence page for one result."""
    media = media or EvidenceMedia()
    record = result.to_dict()
    faces = []
    for face in record["faces"]["faces"] if record["faces"] else []:
        crop = media.face_crops.get(face["face_id"])
        subject = (face["match"] or {}).get("subject_id")
        reference = media.references.get(subject) if subject else None
        heatmap = media.heatmaps.get(face["face_id"])
        faces.append(
            {
                **face,
                "heatmap_uri": None if heatmap is None else data_uri(heatmap, max_side=FACE_CROP_SIDE),
                "crop_uri": None if crop is None else data_uri(crop, max_side=FACE_CROP_SIDE),
                "reference_uri": None if reference is None else data_uri(reference, max_side=FACE_CROP_SIDE),
            }
        )
    frames = [{"uri": data_uri(p.rgb, max_side=THUMBNAIL_SIDE // 2), "caption": p.caption} for p in media.frames]
    template = _environment().get_template("evidence.html.j2")
    page = template.render(
        r=record,
        faces=faces,
        frames=frames,
        thumbnail_uri=None if media.thumbnail is None else data_uri(media.thumbnail, max_side=THUMBNAIL_SIDE),
        label_uri=None if media.label_crop is None else data_uri(media.label_crop, max_side=THUMBNAIL_SIDE),
        colour=_VERDICT_COLOURS.get(result.verdict.code, "#374151"),
        generated_at=utc_now(),
        verdicts=[(code, SUMMARIES[code]) for code in VERDICTS],
        # Hangul stays readable; what would turn text around or hide it is a JSON escape.
        json_text="".join(
            c if c.isprintable() or c == "\n" else json.dumps(c)[1:-1]
            for c in json.dumps(record, indent=2, ensure_ascii=False)
        ),
    )
    # The page embeds the NanumGothic it shows (a file name or an artist's name may be Korean):
    # a browser without a CJK font, a police officer's or a platform's, would show empty boxes.
    return page.replace(FONT_MARK, embedded_font_css(page), 1)


#: Where the evidence template's style sheet takes the embedded font.
FONT_MARK = "/*report-font*/"


def evidence_paths(result: VerificationResult, out_dir: Path) -> EvidencePaths:
    """Where ``write_evidence`` puts the pack of ``result`` in ``out_dir``."""
    stem, out_dir = evidence_stem(result), Path(out_dir)
    return EvidencePaths(json=out_dir / f"{stem}.json", html=out_dir / f"{stem}.html", zip=out_dir / f"{stem}.zip")


def write_evidence(
    result: VerificationResult,
    media: EvidenceMedia | None,
    out_dir: Path,
    *,
    include_original: bool = True,
    max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES,
) -> EvidencePaths:
    """Write ``STEM.json``, ``STEM.html`` and ``STEM.zip`` for one result into ``out_dir``.

    Files appear atomically (temporary name, then rename). The original goes into the zip when
    it still has the hash the result states and is at most ``max_original_bytes``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_bytes = (result.to_json(indent=2) + "\n").encode("utf-8")
    html_bytes = render_html(result, media).encode("utf-8")
    paths = evidence_paths(result, out_dir)
    write_atomic(paths.json, json_bytes, mode=EVIDENCE_MODE)
    write_atomic(paths.html, html_bytes, mode=EVIDENCE_MODE)

    members: list[tuple[str, bytes | Path]] = [(paths.json.name, json_bytes), (paths.html.name, html_bytes)]
    original = Path(result.path)
    note = None
    if include_original and result.sha256 and original.is_file():
        size = original.stat().st_size
        if size > max_original_bytes:
            note = f"original not included: {size} bytes > {max_original_bytes}; sha256 {result.sha256}"
        elif sha256_file(original) != result.sha256:
            note = f"original not included: {original} changed since it was verified"
        else:
            members.append((f"original/{original.name}", original))
    sums = []
    for name, content in members:
        digest = sha256_file(content) if isinstance(content, Path) else hashlib.sha256(content).hexdigest()
        sums.append(f"{digest}  {name}")
    if note:
        sums.append(f"# {note}")
    members.append(("SHA256SUMS", ("\n".join(sums) + "\n").encode("utf-8")))

    with (
        atomic_path(paths.zip, mode=EVIDENCE_MODE) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle,
    ):
        for name, content in members:
            if isinstance(content, Path):
                bundle.write(content, arcname=name)
            else:
                bundle.writestr(name, content)
    return paths


def write_index(results: Sequence[VerificationResult], out_dir: Path) -> Path:
    """``results.json`` (every result, in order) beside the per-file packs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    body = {
        "generated_at": utc_now(),
        "results": [{**r.to_dict(), "evidence_stem": evidence_stem(r)} for r in results],
    }
    write_atomic(path, (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), mode=EVIDENCE_MODE)
    return path
