"""Reference enrollment: identity embeddings of a subject from their reference photos.

Each reference photo must show exactly one face (the subject's); photos with no face or with
several faces are skipped with a reason rather than guessed at, because a wrong reference would
make the identity filter keep someone else's face. A photo whose face clearly belongs to someone
other than the subject's first enrolled reference is skipped too.

A video (or an animated GIF, WebP or PNG) is a reference source as well: up to
``REFERENCE_VIDEO_FRAMES`` frames spread over the clip (one per ``REFERENCE_VIDEO_EVERY_S``
seconds at most) are each treated as a photo, with the same rules: one face, large enough, and
consistent with the subject's first reference, or, for a subject's first references, with the
clip's first enrolled frame. Not with the clip's other frames, nor with the nearest reference
enrolled before: a dissolve moves a few tenths a frame from one person to the next, and a chain
of such steps (frames of a clip, or photos handed in one by one) would carry the references over
to whoever it ends on. So a clip that cuts or fades to someone else enrols only the frames of
the person it starts with, or of the subject.

Before anything is written, every face of the call is held against the faces of the subjects of
other rights holders (:mod:`likeness.faceset.enrolled_faces`); one recognised as such a subject's
refuses the whole call (``FaceOfAnotherHolder``): a face has one rights holder.

Example::

    report = enroll_reference_photos(workspace, "mina", ["mina_front.jpg", "mina_left.jpg", "mina_turn.mp4"])
    print(report.added, report.skipped)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from likeness.digests import sha256_file
from likeness.errors import FaceError, MediaError, ReferenceMismatch
from likeness.faceset.enrolled_faces import refuse_faces_of_other_holders
from likeness.faceset.reference_faces import reference_face_crop, write_reference_face
from likeness.media.video.budget import DecodeLimits

# Reference photos are portraits: a face smaller than this is too little detail to anchor an
# identity on.
MIN_REFERENCE_FACE_PX = 48
# A new reference must lie within this distance of the subject's first. Deliberately looser than
# faces.IDENTITY_THRESHOLD (0.40): genuine photos of one person under other poses and light are
# often 0.4-0.55 apart (benchmarks/identity_filter.py; 1 % of genuine pairs lie past 0.6,
# docs/calibration.md), and rejecting them would starve the extraction filter of references. It
# catches an obviously different person handed in. Held to the first reference, not the nearest:
# photos handed in one by one, each a step of a blend, would otherwise walk the references over
# to anyone.
REFERENCE_CONSISTENCY_THRESHOLD = 0.6
# A reference video gives at most this many frames, at least this many seconds apart, spread over
# the whole clip: a few poses of the subject, not hundreds of near-identical embeddings.
REFERENCE_VIDEO_FRAMES = 8
REFERENCE_VIDEO_EVERY_S = 0.5


@dataclass
class EnrollmentReport:
    """``added``: number of new reference embeddings stored; ``skipped``: (path, reason) pairs.

    ``already_enrolled`` lists photos whose exact bytes were enrolled before (not an error).
    """

    subject_slug: str
    added: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    already_enrolled: list[str] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.added > 0 or bool(self.already_enrolled)


def enroll_reference_photos(
    workspace: Any,
    subject: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    detector: Any | None = None,
    embedder: Any | None = None,
    identity_threshold: float | None = None,
    org: str | None = None,
) -> EnrollmentReport:
    """Compute and store one 128-D reference embedding per usable photo of ``subject`` (or per
    sampled frame of a video, see the module docstring), and keep an upright head crop of it for
    evidence pages (:mod:`likeness.faceset.reference_faces`).

    Unreadable files (``MediaError``), photos with no face, several faces, or a face too small
    are skipped with a plain-language reason; so is a photo whose face is farther than
    ``identity_threshold`` (default ``REFERENCE_CONSISTENCY_THRESHOLD``) from the subject's first
    reference, which catches a wrong photo handed in by mistake.

    A face recognised as a subject of another rights holder refuses the call
    (``FaceOfAnotherHolder``, naming the file, that subject, its organisation, the similarity
    and the threshold) before any reference of it is written.

    Each stored reference's ledger event is sealed with the key of the organisation that
    enrolled the subject (``Registry.reference_signer``); ``org`` (default: the configured
    organisation) naming another is refused (``ReferenceSealerRefused``) before any photo is read.
    """
    from likeness import faces

    record = workspace.registry.get_subject(subject)
    signer = workspace.registry.reference_signer(org or workspace.settings.org, record)
    detector = detector if detector is not None else faces.FaceDetector(max_faces=4, min_confidence=0.5)
    embedder = embedder if embedder is not None else faces.FaceEmbedder()
    threshold = identity_threshold if identity_threshold is not None else REFERENCE_CONSISTENCY_THRESHOLD
    founding = workspace.registry.first_reference_embedding(record.slug)
    report = EnrollmentReport(subject_slug=record.slug)
    limits = DecodeLimits.of(workspace.settings)
    candidates = [
        candidate
        for path in map(Path, paths)
        for candidate in _reference_candidates(path, report, detector, embedder, limits)
    ]
    # Every face is held against other holders' subjects before anything is written.
    # all of the call's faces first, so a match writes none of them (the registry checks each again)
    refuse_faces_of_other_holders(workspace.registry, record.slug, [(c.label, c.embedding) for c in candidates])

    source = None
    for candidate in candidates:
        if candidate.source != source:
            # What this source's pictures must match (see the module docstring): the subject's
            # first reference, else this source's own first enrolled picture, and then as closely
            # as recognition matches a face (``IDENTITY_THRESHOLD``): nothing else says who that
            # face is.
            source = candidate.source
            anchors = np.zeros((0, faces.EMBEDDING_SIZE), np.float32) if founding is None else founding[None, :]
            limit, against = threshold, f"{record.slug}'s first reference photo"
        label, embedding = candidate.label, candidate.embedding
        if len(anchors):
            distance, same = faces.match_identity(embedding, anchors, threshold=limit)
            if not same:
                report.skipped.append((label, f"face does not match {against} (distance {distance:.2f} > {limit:.2f})"))
                continue
        try:
            # The picture evidence pages show beside a matched face; kept before the embedding so
            # that every stored reference has one (re-enrolling a photo writes it again).
            write_reference_face(workspace.home, record.id, candidate.picture_sha256, candidate.crop)
        except MediaError as exc:
            report.skipped.append((label, f"could not keep the reference picture ({exc})"))
            continue
        try:
            added = workspace.registry.add_reference_embedding(
                record.slug,
                embedding,
                source_name=Path(label).name,
                source_sha256=candidate.picture_sha256,
                within_first=threshold,
                org=signer.slug,
            )
        except ReferenceMismatch as mismatch:  # another enrolment founded the subject meanwhile
            report.skipped.append((label, str(mismatch)))
            continue
        if added:
            report.added += 1
            report.enrolled.append(label)
            if founding is None:
                founding = embedding
                anchors, limit = embedding[None, :], min(threshold, faces.IDENTITY_THRESHOLD)
                against = f"the first face enrolled from {candidate.source.name}"
        else:
            report.already_enrolled.append(label)
    return report


@dataclass(frozen=True)
class _Candidate:
    """One picture's face, ready to enrol: its identity embedding and the crop kept for it."""

    source: Path
    label: str
    picture_sha256: str
    embedding: np.ndarray
    crop: np.ndarray


def _reference_candidates(
    path: Path, report: EnrollmentReport, detector: Any, embedder: Any, limits: DecodeLimits
) -> Iterator[_Candidate]:
    """The usable faces of one photo or video (one per picture); the others are added to
    ``report.skipped`` with the reason."""
    for label, picture_sha256, rgb in _reference_pictures(path, report, limits):
        detected = _one_subject_face(label, rgb, detector, report)
        if detected is None:
            continue
        landmarks = np.asarray(detected.landmarks, dtype=np.float32)
        extent = float(np.ptp(landmarks, axis=0).max())
        if extent < MIN_REFERENCE_FACE_PX:
            report.skipped.append((label, f"face too small ({extent:.0f} px; need {MIN_REFERENCE_FACE_PX} px or more)"))
            continue
        try:
            embedding = np.asarray(embedder.embed(rgb, landmarks), dtype=np.float32)
        except FaceError as exc:
            report.skipped.append((label, f"could not compute an identity embedding ({exc})"))
            continue
        try:
            crop = reference_face_crop(rgb, landmarks)
        except (FaceError, MediaError) as exc:
            report.skipped.append((label, f"could not keep the reference picture ({exc})"))
            continue
        yield _Candidate(path, label, picture_sha256, embedding, crop)


def _reference_pictures(
    path: Path, report: EnrollmentReport, limits: DecodeLimits
) -> Iterator[tuple[str, str, np.ndarray]]:
    """(label, SHA-256 naming the picture, RGB) for a photo, or for each sampled frame of a video
    (label ``"clip.mp4 @ 2.5 s"``, digest of the file's digest and the frame time, so enrolling the
    same clip again finds the same frames already enrolled). Unreadable input is added to
    ``report.skipped``; a video that breaks part-way keeps the frames before the break."""
    from likeness.faceset.extract import input_kind
    from likeness.media import read_image, sample_video_frames
    from likeness.media.animation import animation_timeline, sample_animation_frames
    from likeness.media.file_kind import ANIMATED_CONTAINERS

    # By content, as extract and verify decide: a clip saved as .png is still a clip, and an
    # animated GIF, WebP or PNG is sampled as one (its first frame may be a title card).
    kind = input_kind(path)
    timeline = None
    try:
        if kind.container in ANIMATED_CONTAINERS:
            timeline = animation_timeline(path)
        if kind.media_type == "image" and timeline is None:
            rgb = read_image(path)
            yield str(path), sha256_file(path), rgb
            return
    except MediaError as exc:
        report.skipped.append((str(path), exc.reason))
        return
    try:
        file_sha256 = sha256_file(path)
        if timeline is not None:
            frames = sample_animation_frames(
                path, every_s=REFERENCE_VIDEO_EVERY_S, max_frames=REFERENCE_VIDEO_FRAMES, timeline=timeline
            )
        else:
            frames = sample_video_frames(  # upright, as players show it (phone clips stored sideways)
                path, every_s=REFERENCE_VIDEO_EVERY_S, max_frames=REFERENCE_VIDEO_FRAMES, autorotate=True, limits=limits
            )
        for frame in frames:
            seconds = float(frame.pts_s or 0.0)
            frame_sha256 = hashlib.sha256(f"{file_sha256}:{seconds:.3f}".encode()).hexdigest()
            yield f"{path} @ {seconds:.1f} s", frame_sha256, frame.rgb
    except MediaError as exc:
        report.skipped.append((str(path), exc.reason))
    except OSError as exc:
        report.skipped.append((str(path), f"cannot read ({exc.strerror or exc})"))


def _one_subject_face(label: str, rgb: np.ndarray, detector: Any, report: EnrollmentReport) -> Any | None:
    """The single face in ``rgb``, or None with the reason added to ``report.skipped``."""
    try:
        detected = detector.detect(rgb)
    except FaceError as exc:
        report.skipped.append((label, f"face detection failed ({exc})"))
        return None
    if not detected:
        report.skipped.append((label, "no face found"))
        return None
    if len(detected) > 1:
        report.skipped.append((label, f"{len(detected)} faces found; a reference photo must show only the subject"))
        return None
    return detected[0]
