"""Reference enrollment: identity embeddings of a subject from their reference photos.

Each reference photo must show exactly one face (the subject's); photos with no face or with
several faces are skipped with a reason rather than guessed at, because a wrong reference would
make the identity filter keep someone else's face. A photo whose face clearly belongs to someone
other than the subject's already enrolled references is skipped too.

Example::

    report = enroll_reference_photos(workspace, "mina", ["mina_front.jpg", "mina_left.jpg"])
    print(report.added, report.skipped)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from likeness.digests import sha256_file
from likeness.errors import FaceError, MediaError
from likeness.faceset.reference_faces import save_reference_face

# Reference photos are portraits: a face smaller than this is too little detail to anchor an
# identity on.
MIN_REFERENCE_FACE_PX = 48
# A new reference must lie within this distance of one already enrolled. Deliberately looser than
# faces.IDENTITY_THRESHOLD (0.40): genuine photos of one person under other poses and light are
# often 0.4-0.55 apart (benchmarks/identity_filter.py), and rejecting them would starve the
# extraction filter of references. It only catches an obviously different person handed in.
REFERENCE_CONSISTENCY_THRESHOLD = 0.6


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
) -> EnrollmentReport:
    """Compute and store one 128-D reference embedding per usable photo of ``subject``, and keep
    an upright head crop of it for evidence pages (:mod:`likeness.faceset.reference_faces`).

    Unreadable files (``MediaError``), photos with no face, several faces, or a face too small
    are skipped with a plain-language reason; so is a photo whose face is farther than
    ``identity_threshold`` (default ``REFERENCE_CONSISTENCY_THRESHOLD``) from every reference
    already enrolled for the subject, which catches a wrong photo handed in by mistake.
    """
    from likeness import faces
    from likeness.media import read_image

    record = workspace.registry.get_subject(subject)
    detector = detector if detector is not None else faces.FaceDetector(max_faces=4, min_confidence=0.5)
    embedder = embedder if embedder is not None else faces.FaceEmbedder()
    threshold = identity_threshold if identity_threshold is not None else REFERENCE_CONSISTENCY_THRESHOLD
    existing = np.asarray(workspace.registry.reference_embeddings(record.slug), dtype=np.float32)
    report = EnrollmentReport(subject_slug=record.slug)

    for raw in paths:
        path = Path(raw)
        try:
            rgb = read_image(path)
        except MediaError as exc:
            report.skipped.append((str(path), exc.reason))
            continue
        try:
            detected = detector.detect(rgb)
        except FaceError as exc:
            report.skipped.append((str(path), f"face detection failed ({exc})"))
            continue
        if not detected:
            report.skipped.append((str(path), "no face found"))
            continue
        if len(detected) > 1:
            report.skipped.append(
                (str(path), f"{len(detected)} faces found; a reference photo must show only the subject")
            )
            continue
        landmarks = np.asarray(detected[0].landmarks, dtype=np.float32)
        extent = float(np.ptp(landmarks, axis=0).max())
        if extent < MIN_REFERENCE_FACE_PX:
            report.skipped.append(
                (str(path), f"face too small ({extent:.0f} px; need {MIN_REFERENCE_FACE_PX} px or more)")
            )
            continue
        try:
            embedding = np.asarray(embedder.embed(rgb, landmarks), dtype=np.float32)
        except FaceError as exc:
            report.skipped.append((str(path), f"could not compute an identity embedding ({exc})"))
            continue
        if len(existing):
            distance, same = faces.match_identity(embedding, existing, threshold=threshold)
            if not same:
                report.skipped.append(
                    (
                        str(path),
                        f"face does not match {record.slug}'s other reference photos "
                        f"(distance {distance:.2f} > {threshold:.2f})",
                    )
                )
                continue
        photo_sha256 = sha256_file(path)
        try:
            # The picture evidence pages show beside a matched face; kept before the embedding so
            # that every stored reference has one (re-enrolling a photo writes it again).
            save_reference_face(workspace.home, record.id, photo_sha256, rgb, landmarks)
        except (FaceError, MediaError) as exc:
            report.skipped.append((str(path), f"could not keep the reference picture ({exc})"))
            continue
        added = workspace.registry.add_reference_embedding(
            record.slug, embedding, source_name=path.name, source_sha256=photo_sha256
        )
        if added:
            report.added += 1
            report.enrolled.append(str(path))
            existing = np.vstack([existing.reshape(-1, embedding.shape[0]), embedding[None, :]])
        else:
            report.already_enrolled.append(str(path))
    return report
