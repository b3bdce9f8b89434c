"""Faces other rights holders' subjects are enrolled with: a new reference must not be one of them.

A rights holder signs consent for their subject's face. Were a reference photo of someone
already enrolled accepted for a new subject under another holder (one whose key anyone can
make), that holder's signature would authorise synthesis of the first person's face. So every
new reference is held against the sealed references of every subject of another holder, as the
verifier recognises a face (``likeness.verify.gallery``, whose rules live in ``likeness.faces.identity``): the subject's own threshold from the
spread of its references (``subject_threshold``, at most ``faces.IDENTITY_THRESHOLD``), and
the same similarity. The distances of all new references to all enrolled ones are one matrix
product over the stored embeddings; no photo is embedded again. Extraction holds the faces it
keeps against the same subjects, batch after batch (``OtherHoldersFaces``): a different photo of
an enrolled person that recognition does not match enrols them again, but their footage matches.

Example::

    >>> import numpy as np
    >>> mina = np.zeros((1, 128), np.float32); mina[0, 0] = 1.0
    >>> faces = EnrolledFaces.of([("mina", "haneul", mina)], cap=0.40)
    >>> faces.closest_matches(np.vstack([mina + 0.01, -mina]))[0].slug
    'mina'
    >>> faces.closest_matches(-mina)[0] is None
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from likeness.faces.identity import distance_to_similarity, subject_threshold


@dataclass(frozen=True)
class FaceMatch:
    """A face recognised as enrolled subject ``slug`` of organisation ``org``."""

    slug: str
    org: str
    distance: float
    threshold: float

    @property
    def similarity(self) -> float:
        """As the verifier reports it: 1.0 identical, 0.5 at the threshold."""
        return distance_to_similarity(self.distance, threshold=self.threshold)


@dataclass(frozen=True)
class EnrolledFaces:
    """Reference embeddings ``(N, 128)`` float32, grouped by subject (subject ``i``'s rows
    begin at ``starts[i]``), and each subject's slug, organisation and threshold."""

    slugs: tuple[str, ...]
    orgs: tuple[str, ...]
    thresholds: np.ndarray
    embeddings: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, subjects: Sequence[tuple[str, str, np.ndarray]], *, cap: float) -> EnrolledFaces:
        """From ``(slug, organisation, references (K, 128))`` per subject; thresholds as the
        gallery calibrates them, at most ``cap``."""
        kept = [(slug, org, np.asarray(refs, np.float32)) for slug, org, refs in subjects if len(refs)]
        if not kept:
            return cls((), (), np.zeros(0), np.zeros((0, 128), np.float32), np.zeros(0, np.intp))
        sizes = [len(refs) for _, _, refs in kept]
        return cls(
            slugs=tuple(slug for slug, _, _ in kept),
            orgs=tuple(org for _, org, _ in kept),
            thresholds=np.array([subject_threshold(refs, cap=cap) for _, _, refs in kept]),
            embeddings=np.concatenate([refs for _, _, refs in kept]),
            starts=np.cumsum([0, *sizes[:-1]]).astype(np.intp),
        )

    def closest_matches(self, embeddings: np.ndarray) -> list[FaceMatch | None]:
        """For each face ``(M, 128)`` (or one ``(128,)``): the closest subject within its own
        threshold, or ``None``."""
        faces = np.atleast_2d(np.asarray(embeddings, np.float64))
        if not len(self.slugs):
            return [None] * len(faces)
        per_subject = np.minimum.reduceat(identity_distances(faces, self.embeddings), self.starts, axis=1)
        # Beyond its threshold a subject is never the match: set it out of reach.
        within = np.where(per_subject <= self.thresholds[None, :], per_subject, np.inf)
        closest = within.argmin(axis=1)
        return [
            FaceMatch(self.slugs[s], self.orgs[s], float(within[n, s]), float(self.thresholds[s]))
            if np.isfinite(within[n, s])
            else None
            for n, s in enumerate(closest)
        ]


class OtherHoldersFaces:
    """The faces of the subjects of other rights holders than ``subject``'s, for faces that come
    batch after batch (an extraction's frames): every stored reference row is read once; each
    batch is held against all of them by one matrix product (a subject's threshold is never
    above ``IDENTITY_THRESHOLD``), and only the subjects with a row that near a face are read
    with their seals and holders (``Registry.references_of_other_holders``), the first time."""

    def __init__(self, registry: Any, subject: str) -> None:
        from likeness.faces import IDENTITY_THRESHOLD

        self.registry, self.subject, self.cap = registry, subject, float(IDENTITY_THRESHOLD)
        self.subject_ids, self.stored = registry.stored_reference_vectors()
        self._read: set[str] = set()
        self._subjects: list[tuple[str, str, np.ndarray]] = []
        self._enrolled = EnrolledFaces.of([], cap=self.cap)

    def near(self, embeddings: np.ndarray) -> EnrolledFaces | None:
        """The subjects read so far once those near any of ``embeddings`` ``(M, 128)`` are, or
        None when no stored row is near any of them."""
        near = identity_distances(embeddings, self.stored) <= self.cap
        among = {self.subject_ids[j] for j in np.flatnonzero(near.any(axis=0))}
        if not among:
            return None
        unread = among - self._read
        if unread:
            self._subjects += self.registry.references_of_other_holders(self.subject, unread)
            self._read |= unread
            self._enrolled = EnrolledFaces.of(self._subjects, cap=self.cap)
        return self._enrolled

    def closest_matches(self, embeddings: np.ndarray) -> list[FaceMatch | None]:
        """``EnrolledFaces.closest_matches`` over the subjects of other holders."""
        enrolled = self.near(embeddings)
        if enrolled is None:
            return [None] * len(np.atleast_2d(embeddings))
        return enrolled.closest_matches(embeddings)


def refuse_faces_of_other_holders(registry: Any, subject: str, faces: Sequence[tuple[str, np.ndarray]]) -> None:
    """``FaceOfAnotherHolder`` for the first of ``faces`` (label, embedding) that is another
    rights holder's subject's, before ``subject`` is given any of them as a reference."""
    from likeness.errors import FaceOfAnotherHolder

    if not faces:
        return
    matches = OtherHoldersFaces(registry, subject).closest_matches(np.stack([embedding for _, embedding in faces]))
    for (label, _), match in zip(faces, matches):
        if match is not None:
            raise FaceOfAnotherHolder(
                label,
                subject,
                match.slug,
                match.org,
                similarity=match.similarity,
                threshold=match.threshold,
                distance=match.distance,
            )


def identity_distances(faces: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(M, N)`` between faces ``(M, 128)`` (or one ``(128,)``) and
    references ``(N, 128)``, by one matrix product."""
    a = np.atleast_2d(np.asarray(faces, np.float64))
    b = np.asarray(references, np.float64).reshape(-1, a.shape[1])
    squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


__all__ = ["EnrolledFaces", "FaceMatch", "OtherHoldersFaces", "identity_distances"]
