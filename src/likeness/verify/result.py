"""The stable, documented shape of a verification result (``likeness verify --json``).

Every public result is a tree of frozen dataclasses that turns into plain JSON with
:func:`VerificationResult.to_dict`. The schema is versioned by :data:`SCHEMA_VERSION`; fields are
only ever added within one version, never renamed or removed. ``docs/verify.md`` documents every
field and the decision table that fills ``verdict``.

Example::

    >>> r = VerificationResult.failed("x.jpg", sha256=None, size_bytes=0, stage="read", reason="empty file")
    >>> r.to_dict()["verdict"]
    'error'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from likeness import __version__

SCHEMA_VERSION = "likeness.verify/1.1"
#: Versions ``from_dict`` reads. 1.1 made ``manipulation`` an object (it was the string "not
#: analysed" in 1); a 1 object reads as not analysed, with no reason given.
READABLE_SCHEMAS = ("likeness.verify/1", SCHEMA_VERSION)

#: The design forbids a placeholder score: where no detector that passed its gates applies, the
#: result says so in words, with the reason.
MANIPULATION_NOT_ANALYSED = "not analysed"
MANIPULATION_ANALYSED = "analysed"

#: States ``Registry.grant_state`` can report. Only ``active`` means consent is in force today.
GRANT_STATES = ("active", "expired", "revoked", "not_yet_valid", "altered", "unknown")

#: IPTC digital source types that declare generative / trained-algorithm content.
AI_DIGITAL_SOURCE_TYPES = frozenset(
    {
        "trainedAlgorithmicMedia",
        "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia",
        "compositeSynthetic",
    }
)


def utc_now() -> str:
    """Current time as ISO-8601 UTC with a ``Z`` suffix, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def declares_ai_generation(digital_source_type: str | None) -> bool:
    """True when an IPTC digital source type (full URI or bare term) declares AI generation.

    >>> declares_ai_generation("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
    True
    >>> declares_ai_generation("digitalCapture")
    False
    """
    if not digital_source_type:
        return False
    term = digital_source_type.rstrip("/").rsplit("/", 1)[-1]
    return term in AI_DIGITAL_SOURCE_TYPES


@dataclass(frozen=True)
class GrantEvidence:
    """A consent grant named by a watermark's ledger entry or a manifest's consent assertion,
    with its state *today* (``Registry.grant_state``)."""

    grant_id: str
    state: str
    subject_id: str | None = None
    subject_slug: str | None = None
    org_id: str | None = None
    org_slug: str | None = None
    use: str | None = None

    @property
    def in_force(self) -> bool:
        return self.state == "active"


@dataclass(frozen=True)
class C2paEvidence:
    """What the C2PA manifest store says, validated against the workspace's trust anchors
    (plus any extra anchors the caller gave).

    ``state`` is ``"Trusted"`` (signature valid, chain to a configured anchor), ``"Valid"``
    (signature and bindings valid, signer not trusted) or ``"Invalid"`` (something does not
    verify: the asset or the manifest changed after signing); ``None`` when no manifest.
    ``consent`` is our likeness-consent assertion resolved against this workspace's registry.
    """

    present: bool
    state: str | None = None
    reasons: tuple[str, ...] = ()
    signer: str | None = None
    actions: tuple[str, ...] = ()
    digital_source_type: str | None = None
    declares_ai: bool = False
    consent_assertion: dict[str, Any] | None = None
    consent: GrantEvidence | None = None

    @classmethod
    def absent(cls) -> C2paEvidence:
        return cls(present=False)


@dataclass(frozen=True)
class RenderRecord:
    """The ledger event a watermark payload points to: a render's ``render.completed`` or a
    training preview's ``preview.written`` (``kind`` "training_preview"; no output hash)."""

    job_id: str
    grant_id: str | None
    subject_id: str | None
    org_id: str | None
    use: str | None
    output_sha256: str | None
    output_name: str | None
    ledger_seq: int | None
    ledger_event_id: str | None
    recorded_at: str | None
    kind: str = "render"

    @property
    def job_words(self) -> str:
        """'render job' or 'training preview job', for evidence sentences."""
        return "training preview job" if self.kind == "training_preview" else "render job"


@dataclass(frozen=True)
class WatermarkEvidence:
    """The invisible watermark reading and, when its payload is on this ledger, the render it
    names. For video the reading is aggregated over the sampled frames at ``frame_timestamps_s``
    (seconds from the start)."""

    algorithm: str | None
    found: bool
    payload: str | None = None
    bit_confidence: float | None = None
    frame_timestamps_s: tuple[float, ...] = ()
    render: RenderRecord | None = None
    grant: GrantEvidence | None = None

    @classmethod
    def no_mark(
        cls,
        algorithm: str | None,
        *,
        bit_confidence: float | None = None,
        frame_timestamps_s: tuple[float, ...] = (),
    ) -> WatermarkEvidence:
        return cls(
            algorithm=algorithm, found=False, bit_confidence=bit_confidence, frame_timestamps_s=frame_timestamps_s
        )

    @property
    def traced(self) -> bool:
        """The payload was decoded and names a render on this workspace's ledger."""
        return self.found and self.render is not None


@dataclass(frozen=True)
class ArtistMatch:
    """One enrolled subject as a gallery candidate for a face.

    ``distance`` is the dlib identity distance (Euclidean, 128-D) of the face, or of the
    majority of a track's views; ``threshold`` is this subject's own threshold (calibrated from
    its references' spread, docs/calibration.md); ``similarity`` maps the distance to [0, 1]
    with ``1 - distance / (2 * threshold)`` clipped, so 0.5 is exactly the threshold and a match
    is ``similarity >= 0.5``. ``kind`` is the subject's kind (``artist``, ``virtual_idol``,
    ``performer``).
    """

    subject_id: str
    slug: str
    name: str
    distance: float
    similarity: float
    threshold: float | None = None
    kind: str = "artist"


@dataclass(frozen=True)
class FaceEvidence:
    """One face (images) or one face track (video).

    ``bbox`` is ``(x0, y0, x1, y1)`` pixels in the frame at ``best_timestamp_s`` (the sharpest,
    highest-scoring sighting). ``match`` is the best enrolled artist within its threshold, or
    ``None``; ``performer`` is set instead when that subject is an enrolled performer (raw
    footage of a performer is not an unlabelled artist); ``nearest`` is the closest subject
    regardless, for human review.
    """

    face_id: int
    bbox: tuple[float, float, float, float]
    detection_score: float
    frames: int
    timestamps_s: tuple[float, ...]
    best_timestamp_s: float
    match: ArtistMatch | None
    nearest: ArtistMatch | None
    performer: ArtistMatch | None = None


@dataclass(frozen=True)
class FacesEvidence:
    """Artist recognition over the analysed frames."""

    frames_analysed: int
    frame_timestamps_s: tuple[float, ...]
    gallery_subjects: int
    gallery_references: int
    threshold: float
    faces: tuple[FaceEvidence, ...] = ()

    @property
    def detected(self) -> int:
        return len(self.faces)

    @property
    def matched(self) -> tuple[FaceEvidence, ...]:
        return tuple(f for f in self.faces if f.match is not None)


@dataclass(frozen=True)
class LabelEvidence:
    """Whether the product's visible "AI 생성 · AI-generated" label was found in the pixels.

    ``score`` is the best normalised correlation of the label template (0..1; the label counts
    as present from ``likeness.provenance.label_detect.PRESENT_SCORE``); ``where`` the label's
    box ``(x0, y0, x1, y1)`` in pixels of the frame at ``frame_timestamp_s`` (0 for images);
    ``mirrored`` when it reads mirror-wise; ``frames_searched`` how many frames were searched.
    A label is a claim anyone can draw, never proof of who made the picture.
    """

    present: bool
    score: float
    where: tuple[int, int, int, int] | None = None
    frame_timestamp_s: float | None = None
    mirrored: bool = False
    frames_searched: int = 1


@dataclass(frozen=True)
class TrackManipulation:
    """One face track scored by its subject's registered detector (``likeness.detector``).

    Scores are calibrated logits (raw logit / the card's temperature); ``score`` is the mean over
    the track's ``face_scores`` (one per sampled sighting, at ``face_timestamps_s``) and
    ``suspected`` is ``score >= threshold_logit``, the threshold set on authentic faces at
    ``target_false_positive_rate``.
    """

    face_id: int
    model: str
    sha256: str
    ledger_seq: int
    threshold_logit: float
    threshold_probability: float
    target_false_positive_rate: float
    score: float
    calibrated_probability: float
    suspected: bool
    face_scores: tuple[float, ...]
    face_timestamps_s: tuple[float, ...]

    @property
    def margin(self) -> float:
        return self.score - self.threshold_logit


@dataclass(frozen=True)
class ManipulationEvidence:
    """The learned manipulation score, or why there is none.

    ``status`` is ``"analysed"`` when at least one face track was scored by a registered detector
    whose files match the ledger and whose measured gates hold; otherwise ``"not analysed"`` and
    ``reason`` says why. ``skipped`` names tracks a detector would have applied to but did not
    (e.g. its files were edited). The headline (``model``, ``score``...) is the track with the
    highest score over its own threshold.
    """

    status: str = MANIPULATION_NOT_ANALYSED
    reason: str | None = None
    tracks: tuple[TrackManipulation, ...] = ()
    skipped: tuple[str, ...] = ()

    @classmethod
    def not_analysed(cls, reason: str | None, skipped: tuple[str, ...] = ()) -> ManipulationEvidence:
        return cls(status=MANIPULATION_NOT_ANALYSED, reason=reason, skipped=skipped)

    @property
    def analysed(self) -> bool:
        return self.status == MANIPULATION_ANALYSED and bool(self.tracks)

    @property
    def headline(self) -> TrackManipulation | None:
        return max(self.tracks, key=lambda t: t.margin) if self.tracks else None

    @property
    def suspected(self) -> tuple[TrackManipulation, ...]:
        return tuple(t for t in self.tracks if t.suspected)

    @property
    def summary(self) -> str:
        """One word for tables (the scan's Parquet column, the ledger): "not analysed",
        "not suspected" or "suspected"."""
        if not self.analysed:
            return MANIPULATION_NOT_ANALYSED
        return "suspected" if self.suspected else "not suspected"


@dataclass(frozen=True)
class StageError:
    """A stage that could not run on this file, and why (the file name is the result's path)."""

    stage: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """A verdict code from the decision table, the table row that fired, and the evidence
    sentences that made it fire."""

    code: str
    rule: str
    summary: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class VerificationResult:
    """Everything known about one file. ``to_dict()`` is the documented JSON object."""

    path: str
    sha256: str | None
    size_bytes: int | None
    media_type: str | None
    verdict: Verdict
    c2pa: C2paEvidence | None
    watermark: WatermarkEvidence | None
    faces: FacesEvidence | None
    errors: tuple[StageError, ...] = ()
    visible_label: LabelEvidence | None = None
    verified_at: str = field(default_factory=utc_now)
    duration_s: float | None = None
    resumed: bool = False
    manipulation: ManipulationEvidence = field(
        default_factory=lambda: ManipulationEvidence.not_analysed("no registered detector was applied")
    )
    schema: str = SCHEMA_VERSION
    software: str = f"likeness {__version__}"

    @property
    def readable(self) -> bool:
        """False when the file could not be read at all (verdict ``error``)."""
        return self.verdict.code != "error"

    @classmethod
    def failed(
        cls,
        path: str,
        *,
        sha256: str | None,
        size_bytes: int | None,
        stage: str,
        reason: str,
        media_type: str | None = None,
        c2pa: C2paEvidence | None = None,
    ) -> VerificationResult:
        """A per-file error verdict: the file could not be read, the scan goes on."""
        from likeness.verify.verdict import error_verdict

        return cls(
            path=path,
            sha256=sha256,
            size_bytes=size_bytes,
            media_type=media_type,
            verdict=error_verdict(f"{stage}: {reason}"),
            c2pa=c2pa,
            watermark=None,
            faces=None,
            errors=(StageError(stage=stage, reason=reason),),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON object (see docs/verify.md)."""
        return {
            "schema": self.schema,
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "media_type": self.media_type,
            "verdict": self.verdict.code,
            "verdict_rule": self.verdict.rule,
            "verdict_summary": self.verdict.summary,
            "verdict_evidence": list(self.verdict.evidence),
            "manipulation": _manipulation_dict(self.manipulation),
            "c2pa": _c2pa_dict(self.c2pa),
            "watermark": _watermark_dict(self.watermark),
            "faces": _faces_dict(self.faces),
            "visible_label": _label_dict(self.visible_label),
            "errors": [{"stage": e.stage, "reason": e.reason} for e in self.errors],
            "verified_at": self.verified_at,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "resumed": self.resumed,
            "software": self.software,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> VerificationResult:
        """Inverse of :meth:`to_dict` (used to resume a scan from the local state)."""
        if obj.get("schema") not in READABLE_SCHEMAS:
            raise ValueError(f"expected schema {' or '.join(map(repr, READABLE_SCHEMAS))}, got {obj.get('schema')!r}")
        return cls(
            path=obj["path"],
            sha256=obj["sha256"],
            size_bytes=obj.get("size_bytes"),
            media_type=obj.get("media_type"),
            verdict=Verdict(
                code=obj["verdict"],
                rule=obj["verdict_rule"],
                summary=obj["verdict_summary"],
                evidence=tuple(obj.get("verdict_evidence", ())),
            ),
            c2pa=_c2pa_from(obj.get("c2pa")),
            watermark=_watermark_from(obj.get("watermark")),
            faces=_faces_from(obj.get("faces")),
            visible_label=_label_from(obj.get("visible_label")),
            errors=tuple(StageError(**e) for e in obj.get("errors", ())),
            verified_at=obj["verified_at"],
            duration_s=obj.get("duration_s"),
            resumed=bool(obj.get("resumed", False)),
            manipulation=_manipulation_from(obj.get("manipulation")),
            software=obj.get("software", f"likeness {__version__}"),
        )

    def referenced_grants(self) -> tuple[GrantEvidence, ...]:
        """Grants whose state today fed the verdict (watermark trace and manifest consent)."""
        grants = []
        if self.watermark is not None and self.watermark.grant is not None:
            grants.append(self.watermark.grant)
        if self.c2pa is not None and self.c2pa.consent is not None:
            grants.append(self.c2pa.consent)
        return tuple(grants)


# ---------------------------------------------------------------------------------------------
# dataclass <-> dict, explicit so that the JSON shape never drifts with a refactor


def _grant_dict(grant: GrantEvidence | None) -> dict[str, Any] | None:
    return None if grant is None else dataclasses.asdict(grant)


def _grant_from(obj: dict[str, Any] | None) -> GrantEvidence | None:
    return None if obj is None else GrantEvidence(**obj)


def _c2pa_dict(c2pa: C2paEvidence | None) -> dict[str, Any] | None:
    if c2pa is None:
        return None
    return {
        "present": c2pa.present,
        "state": c2pa.state,
        "reasons": list(c2pa.reasons),
        "signer": c2pa.signer,
        "actions": list(c2pa.actions),
        "digital_source_type": c2pa.digital_source_type,
        "declares_ai": c2pa.declares_ai,
        "consent_assertion": c2pa.consent_assertion,
        "consent": _grant_dict(c2pa.consent),
    }


def _c2pa_from(obj: dict[str, Any] | None) -> C2paEvidence | None:
    if obj is None:
        return None
    return C2paEvidence(
        present=obj["present"],
        state=obj.get("state"),
        reasons=tuple(obj.get("reasons", ())),
        signer=obj.get("signer"),
        actions=tuple(obj.get("actions", ())),
        digital_source_type=obj.get("digital_source_type"),
        declares_ai=bool(obj.get("declares_ai", False)),
        consent_assertion=obj.get("consent_assertion"),
        consent=_grant_from(obj.get("consent")),
    )


def _watermark_dict(mark: WatermarkEvidence | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    return {
        "algorithm": mark.algorithm,
        "found": mark.found,
        "payload": mark.payload,
        "bit_confidence": None if mark.bit_confidence is None else round(mark.bit_confidence, 4),
        "frame_timestamps_s": [round(t, 3) for t in mark.frame_timestamps_s],
        "ledger_entry": None if mark.render is None else dataclasses.asdict(mark.render),
        "grant": _grant_dict(mark.grant),
    }


def _watermark_from(obj: dict[str, Any] | None) -> WatermarkEvidence | None:
    if obj is None:
        return None
    render = obj.get("ledger_entry")
    return WatermarkEvidence(
        algorithm=obj.get("algorithm"),
        found=obj["found"],
        payload=obj.get("payload"),
        bit_confidence=obj.get("bit_confidence"),
        frame_timestamps_s=tuple(obj.get("frame_timestamps_s", ())),
        render=None if render is None else RenderRecord(**render),
        grant=_grant_from(obj.get("grant")),
    )


def _manipulation_dict(manipulation: ManipulationEvidence) -> dict[str, Any]:
    head = manipulation.headline
    obj: dict[str, Any] = {"status": manipulation.status, "reason": manipulation.reason}
    if manipulation.analysed and head is not None:
        obj.update(
            {
                "suspected": bool(manipulation.suspected),
                "model": {"id": head.model, "sha256": head.sha256, "ledger_seq": head.ledger_seq},
                "threshold": {
                    "calibrated_logit": round(head.threshold_logit, 4),
                    "probability": round(head.threshold_probability, 4),
                    "target_false_positive_rate": head.target_false_positive_rate,
                },
                "score": round(head.score, 4),
                "calibrated_probability": round(head.calibrated_probability, 4),
                "analysed_frames": sum(len(t.face_scores) for t in manipulation.tracks),
                "tracks": [
                    {
                        **dataclasses.asdict(t),
                        "score": round(t.score, 4),
                        "calibrated_probability": round(t.calibrated_probability, 4),
                        "face_scores": [round(v, 4) for v in t.face_scores],
                        "face_timestamps_s": [round(v, 3) for v in t.face_timestamps_s],
                    }
                    for t in manipulation.tracks
                ],
            }
        )
    obj["skipped"] = list(manipulation.skipped)
    return obj


def _manipulation_from(obj: Any) -> ManipulationEvidence:
    if not isinstance(obj, dict):  # likeness.verify/1: the string "not analysed"
        return ManipulationEvidence.not_analysed(None)
    tracks = tuple(
        TrackManipulation(
            **{
                **t,
                "face_scores": tuple(t.get("face_scores", ())),
                "face_timestamps_s": tuple(t.get("face_timestamps_s", ())),
            }
        )
        for t in obj.get("tracks") or ()
    )
    return ManipulationEvidence(
        status=str(obj.get("status", MANIPULATION_NOT_ANALYSED)),
        reason=obj.get("reason"),
        tracks=tracks,
        skipped=tuple(obj.get("skipped") or ()),
    )


def _label_dict(label: LabelEvidence | None) -> dict[str, Any] | None:
    if label is None:
        return None
    return {
        "present": label.present,
        "score": round(label.score, 4),
        "where": None if label.where is None else list(label.where),
        "frame_timestamp_s": None if label.frame_timestamp_s is None else round(label.frame_timestamp_s, 3),
        "mirrored": label.mirrored,
        "frames_searched": label.frames_searched,
    }


def _label_from(obj: dict[str, Any] | None) -> LabelEvidence | None:
    if obj is None:
        return None
    where = obj.get("where")
    return LabelEvidence(
        present=bool(obj["present"]),
        score=float(obj.get("score", 0.0)),
        where=None if where is None else tuple(int(v) for v in where),  # type: ignore[arg-type]
        frame_timestamp_s=obj.get("frame_timestamp_s"),
        mirrored=bool(obj.get("mirrored", False)),
        frames_searched=int(obj.get("frames_searched", 1)),
    )


def _match_dict(match: ArtistMatch | None) -> dict[str, Any] | None:
    if match is None:
        return None
    return {
        "subject_id": match.subject_id,
        "slug": match.slug,
        "name": match.name,
        "distance": round(match.distance, 4),
        "similarity": round(match.similarity, 4),
        "threshold": None if match.threshold is None else round(match.threshold, 4),
        "kind": match.kind,
    }


def _match_from(obj: dict[str, Any] | None) -> ArtistMatch | None:
    return None if obj is None else ArtistMatch(**obj)


def _faces_dict(faces: FacesEvidence | None) -> dict[str, Any] | None:
    if faces is None:
        return None
    return {
        "detected": faces.detected,
        "frames_analysed": faces.frames_analysed,
        "frame_timestamps_s": [round(t, 3) for t in faces.frame_timestamps_s],
        "gallery_subjects": faces.gallery_subjects,
        "gallery_references": faces.gallery_references,
        "threshold": faces.threshold,
        "faces": [
            {
                "face_id": f.face_id,
                "bbox": [round(v, 1) for v in f.bbox],
                "detection_score": round(f.detection_score, 4),
                "frames": f.frames,
                "timestamps_s": [round(t, 3) for t in f.timestamps_s],
                "best_timestamp_s": round(f.best_timestamp_s, 3),
                "match": _match_dict(f.match),
                "nearest": _match_dict(f.nearest),
                "performer": _match_dict(f.performer),
            }
            for f in faces.faces
        ],
    }


def _faces_from(obj: dict[str, Any] | None) -> FacesEvidence | None:
    if obj is None:
        return None
    return FacesEvidence(
        frames_analysed=obj["frames_analysed"],
        frame_timestamps_s=tuple(obj.get("frame_timestamps_s", ())),
        gallery_subjects=obj["gallery_subjects"],
        gallery_references=obj["gallery_references"],
        threshold=obj["threshold"],
        faces=tuple(
            FaceEvidence(
                face_id=f["face_id"],
                bbox=tuple(f["bbox"]),
                detection_score=f["detection_score"],
                frames=f["frames"],
                timestamps_s=tuple(f["timestamps_s"]),
                best_timestamp_s=f["best_timestamp_s"],
                match=_match_from(f.get("match")),
                nearest=_match_from(f.get("nearest")),
                performer=_match_from(f.get("performer")),
            )
            for f in obj.get("faces", ())
        ),
    )
