"""The artist gallery: a FAISS index over every enrolled subject's reference embeddings.

The index lives in the workspace (``HOME/gallery/index.faiss`` + ``HOME/gallery/ids.json``) and
is brought up to date incrementally: each indexed reference row is remembered by the SHA-256 of
its float32 bytes, new rows are appended, and only a removed or changed row forces a rebuild.

Distances are dlib identity distances (Euclidean in 128-D; FAISS's flat L2 index returns squared
distances, so we take the root). Every subject has its own threshold, calibrated from the spread
of its own references (:func:`subject_threshold`, docs/calibration.md): the mean distance between
its reference embeddings, within ``[SUBJECT_THRESHOLD_FLOOR, threshold]`` (the gallery's
``threshold``, by default ``likeness.faces.IDENTITY_THRESHOLD``), and
``SINGLE_REFERENCE_THRESHOLD`` for a subject with one reference. A face whose descriptor moves
less between photos of one person than that person's own references do is accepted; a lookalike
that is merely nearer than the global threshold is not.

A face or a video track is scored per subject by :meth:`ArtistGallery.query_tracks`: the mean
of its ``n`` embedded views (steadier than any one view) takes its nearest reference of the
subject, and ``k`` of the ``n`` views on their own (``k = n // 2 + 1``: 1 of 1, 2 of 2, 2 of 3)
must also come within ``VIEW_TOLERANCE`` times the threshold (:func:`track_distance`), so one
lucky view of a lookalike, or a cut to another person inside one track, cannot make a match. The nearest subject within its threshold is the match;
if that subject is a **performer** (subject kind ``performer``: footage owners, whose raw
footage is expected anywhere) it is reported as a known performer, never as an artist. For
people, distances become a similarity in [0, 1] against the subject's threshold::

    similarity = clip(1 - distance / (2 * threshold), 0, 1)

so 1.0 is an identical embedding, 0.5 is exactly the threshold, and 0.0 is twice the threshold
or further.

Example::

    >>> import numpy as np, tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1, 128)).astype(np.float32)
    >>> g = ArtistGallery.sync(pathlib.Path(tempfile.mkdtemp()),
    ...                        [SubjectReferences("s1", "mina", "Mina", ref)], threshold=0.5)
    >>> g.query(ref[0]).match.slug
    'mina'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness import strict_json
from likeness.durable import atomic_path, write_atomic
from likeness.errors import ConfigError, FaceError
from likeness.faces.identity import distance_to_similarity, subject_threshold  # (enrolment's check uses them too)
from likeness.verify.result import ArtistMatch

EMBEDDING_DIM = 128
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
_IDS_VERSION = 1
# The gallery holds face embeddings of the agency's artists: readable by the workspace's owner only.
_GALLERY_MODE = 0o600
#: Version of the matching rule, part of the gallery fingerprint: resumed scans re-verify when it
#: changes.
MATCH_RULE = "subject-spread+majority-of-views/1"
SUBJECT_KINDS_NOT_ARTISTS = frozenset({"performer"})
#: k of n views of a track must lie within this many times the subject's threshold (single
#: views are noisier than the track's mean: the 2nd-best of 3 genuine views reached 1.15x).
VIEW_TOLERANCE = 1.25
#: Neighbours fetched per query before grouping by subject. A flat index scans every row anyway,
#: so fetch enough that a subject with many references cannot crowd the others out of the
#: candidate list of an agency-sized gallery.
_SEARCH_K = 2048


@dataclass(frozen=True)
class SubjectReferences:
    """One enrolled subject's reference embeddings, float32 ``(K, 128)``, and its kind
    (``artist``, ``virtual_idol`` or ``performer``)."""

    subject_id: str
    slug: str
    name: str
    embeddings: np.ndarray
    kind: str = "artist"


@dataclass(frozen=True)
class GalleryQuery:
    """Candidates for one face or track, closest subject first. ``match`` is the closest
    candidate within its own threshold when it is an artist (or virtual idol); ``performer``
    the same when it is a performer; ``threshold`` is the gallery's cap."""

    candidates: tuple[ArtistMatch, ...]
    threshold: float

    @property
    def nearest(self) -> ArtistMatch | None:
        return self.candidates[0] if self.candidates else None

    @property
    def within(self) -> ArtistMatch | None:
        """The closest candidate within its threshold, whatever its kind."""
        for candidate in self.candidates:
            limit = candidate.threshold if candidate.threshold is not None else self.threshold
            if candidate.distance <= limit:
                return candidate
        return None

    @property
    def match(self) -> ArtistMatch | None:
        found = self.within
        return found if found is not None and found.kind not in SUBJECT_KINDS_NOT_ARTISTS else None

    @property
    def performer(self) -> ArtistMatch | None:
        found = self.within
        return found if found is not None and found.kind in SUBJECT_KINDS_NOT_ARTISTS else None


def track_distance(view_distances: np.ndarray, mean_distance: float) -> float:
    """A track's distance to one subject: its mean embedding's nearest-reference distance, or
    more when fewer than ``k = n // 2 + 1`` of its views' distances ``(n,)`` (``inf`` where a
    view has no reference of the subject among its neighbours) come within
    ``VIEW_TOLERANCE`` of it: ``max(mean_distance, k-th smallest view / VIEW_TOLERANCE)``.
    Checked against the subject's threshold T, this is "mean within T and k of n views within
    VIEW_TOLERANCE x T"; a single face (n = 1) is just its own distance.

    >>> track_distance(np.array([0.30]), 0.30)
    0.3
    >>> track_distance(np.array([0.2, 0.6, 0.7]), 0.35)   # one lucky view: 0.6 / 1.25
    0.48
    """
    ordered = np.sort(np.asarray(view_distances, dtype=np.float64))
    if len(ordered) == 1:
        return float(max(mean_distance, ordered[0]))
    return float(max(mean_distance, ordered[len(ordered) // 2] / VIEW_TOLERANCE))


def row_key(subject_id: str, embedding: np.ndarray) -> str:
    """Stable identity of one reference row: subject plus the SHA-256 of its float32 bytes."""
    digest = hashlib.sha256(np.ascontiguousarray(embedding, dtype=np.float32).tobytes()).hexdigest()
    return f"{subject_id}:{digest}"


def _vectors_match_keys(index: Any, rows: list[dict[str, str]]) -> bool:
    """Whether every indexed vector hashes to its row's key (:func:`row_key`)."""
    if not rows:
        return True
    vectors = index.reconstruct_n(0, len(rows))
    try:
        return all(row_key(str(row["subject_id"]), vector) == row["key"] for row, vector in zip(rows, vectors))
    except (KeyError, TypeError):
        return False


def _check_embeddings(embeddings: np.ndarray, *, what: str) -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != EMBEDDING_DIM:
        raise FaceError(f"{what}: expected float32 (K, {EMBEDDING_DIM}) embeddings, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise FaceError(f"{what}: expected floating embeddings, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise FaceError(f"{what}: embeddings contain NaN or infinity")
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass(frozen=True)
class GallerySnapshot:
    """An :class:`ArtistGallery` handed to worker processes (``ArtistGallery.snapshot``)."""

    index: np.ndarray  # faiss.serialize_index
    rows: tuple[dict[str, str], ...]
    threshold: float
    folder: str | None


class ArtistGallery:
    """A persisted FAISS index of reference embeddings with the subject of every row.

    Build or refresh it with :meth:`sync` (or :func:`open_gallery` for a workspace); query it
    with :meth:`query`. Read-only after construction, so worker processes can each load one.
    """

    def __init__(self, index: Any, rows: list[dict[str, str]], *, threshold: float, folder: Path | None):
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self._index = index
        self._rows = rows
        self.threshold = float(threshold)
        self.folder = folder
        self.last_sync_added = 0
        self.last_sync_rebuilt = False
        self.subject_thresholds = self._subject_thresholds()

    def _subject_thresholds(self) -> dict[str, float]:
        """Per-subject thresholds from the indexed references (:func:`subject_threshold`)."""
        if not self._rows:
            return {}
        vectors = self._index.reconstruct_n(0, len(self._rows))
        by_subject: dict[str, list[int]] = {}
        for position, row in enumerate(self._rows):
            by_subject.setdefault(row["subject_id"], []).append(position)
        return {
            subject: subject_threshold(vectors[positions], cap=self.threshold)
            for subject, positions in by_subject.items()
        }

    # ------------------------------------------------------------------ build / persist

    @classmethod
    def sync(
        cls, folder: Path, references: Iterable[SubjectReferences], *, threshold: float, save: bool = True
    ) -> ArtistGallery:
        """Bring the index in ``folder`` up to date with ``references`` and return it.

        New reference rows are appended to the persisted index; if any indexed row is gone
        (a reference or subject was removed, or the files are damaged) the index is rebuilt from
        scratch. Writes are atomic (temporary file + rename). ``save=False``: the index is
        brought up to date in memory only, for a command that only reads the workspace.
        """
        import faiss

        folder = Path(folder)
        wanted: list[tuple[str, dict[str, str], np.ndarray]] = []
        for subject in references:
            vectors = _check_embeddings(subject.embeddings, what=f"references of {subject.slug}")
            for vector in vectors:
                key = row_key(subject.subject_id, vector)
                meta = {
                    "key": key,
                    "subject_id": subject.subject_id,
                    "slug": subject.slug,
                    "name": subject.name,
                    "kind": subject.kind,
                }
                wanted.append((key, meta, vector))
        # Duplicated photos give identical rows; one copy is enough for nearest-neighbour search.
        unique: dict[str, tuple[dict[str, str], np.ndarray]] = {}
        for key, meta, vector in wanted:
            unique.setdefault(key, (meta, vector))

        index, rows = cls._load_files(folder)
        rebuilt = False
        if index is None or any(row["key"] not in unique for row in rows):
            index, rows, rebuilt = faiss.IndexFlatL2(EMBEDDING_DIM), [], True
        indexed = {row["key"] for row in rows}
        # Names (and kinds) can change without the embeddings changing; keep the labels current.
        relabelled = [
            dict(
                row,
                slug=unique[row["key"]][0]["slug"],
                name=unique[row["key"]][0]["name"],
                kind=unique[row["key"]][0]["kind"],
            )
            for row in rows
        ]
        labels_changed = relabelled != rows
        rows = relabelled
        new = [(meta, vector) for key, (meta, vector) in unique.items() if key not in indexed]
        if new:
            index.add(np.stack([vector for _, vector in new]))
            rows.extend(meta for meta, _ in new)
        if save and (new or rebuilt or labels_changed):
            cls._save_files(folder, index, rows)
        gallery = cls(index, rows, threshold=threshold, folder=folder)
        gallery.last_sync_added = len(new)
        gallery.last_sync_rebuilt = rebuilt
        return gallery

    def snapshot(self) -> GallerySnapshot:
        """This gallery as it is now, picklable, for worker processes: they recognise with
        exactly the index this process synced and checked, never with whatever the folder holds
        when they start (an index edited in between loaded as empty, and a worker recognised
        nobody without a word)."""
        import faiss

        return GallerySnapshot(
            index=np.asarray(faiss.serialize_index(self._index)),
            rows=tuple(dict(row) for row in self._rows),
            threshold=self.threshold,
            folder=str(self.folder) if self.folder is not None else None,
        )

    @classmethod
    def from_snapshot(cls, snapshot: GallerySnapshot) -> ArtistGallery:
        import faiss

        folder = Path(snapshot.folder) if snapshot.folder is not None else None
        return cls(
            faiss.deserialize_index(snapshot.index),
            [dict(row) for row in snapshot.rows],
            threshold=snapshot.threshold,
            folder=folder,
        )

    @classmethod
    def load(cls, folder: Path, *, threshold: float) -> ArtistGallery:
        """Open a persisted index without syncing."""
        import faiss

        index, rows = cls._load_files(Path(folder))
        if index is None:
            index, rows = faiss.IndexFlatL2(EMBEDDING_DIM), []
        return cls(index, rows, threshold=threshold, folder=Path(folder))

    @staticmethod
    def _load_files(folder: Path) -> tuple[Any, list[dict[str, str]]]:
        import faiss

        index_path, ids_path = folder / INDEX_FILE, folder / IDS_FILE
        if not index_path.exists() or not ids_path.exists():
            return None, []
        try:
            manifest = strict_json.loads(ids_path.read_text(encoding="utf-8"))
            rows = manifest["rows"]
            if manifest.get("version") != _IDS_VERSION or not isinstance(rows, list):
                return None, []
            index = faiss.read_index(str(index_path))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            # A damaged gallery is a cache: rebuild it from the registry rather than fail.
            return None, []
        if index.ntotal != len(rows) or index.d != EMBEDDING_DIM:
            return None, []
        if not _vectors_match_keys(index, rows):
            # Vectors edited under their row keys (which name the same references, so nothing
            # else notices) would make verify recognise other faces, or none, as a subject.
            return None, []
        return index, rows

    @staticmethod
    def _save_files(folder: Path, index: Any, rows: list[dict[str, str]]) -> None:
        import faiss

        def refused(exc: OSError) -> ConfigError:
            return ConfigError(f"cannot write the artist gallery in {folder}: {exc}")

        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise refused(exc) from exc
        ids = json.dumps({"version": _IDS_VERSION, "dim": EMBEDDING_DIM, "rows": rows}, indent=1)
        with atomic_path(folder / INDEX_FILE, mode=_GALLERY_MODE, error=refused) as temporary:
            faiss.write_index(index, str(temporary))
        write_atomic(folder / IDS_FILE, ids.encode("utf-8"), mode=_GALLERY_MODE, error=refused)

    # ------------------------------------------------------------------ queries

    @property
    def size(self) -> int:
        """Number of indexed reference rows."""
        return len(self._rows)

    @property
    def subject_count(self) -> int:
        return len({row["subject_id"] for row in self._rows})

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the indexed row keys and kinds, the threshold and the matching rule:
        changes whenever a verdict that depends on the gallery could change (used to invalidate
        resumed scans)."""
        keys = sorted(f"{row['key']}:{row.get('kind', 'artist')}" for row in self._rows)
        return hashlib.sha256(json.dumps([keys, self.threshold, MATCH_RULE]).encode()).hexdigest()

    def subject_references(self, subject_id: str) -> dict[str, Any]:
        """What a face is recognised as ``subject_id`` against: how many of its reference rows
        are indexed, the SHA-256 over their sorted row keys, its threshold and the match rule."""
        keys = sorted(row["key"] for row in self._rows if row["subject_id"] == subject_id)
        return {
            "references": len(keys),
            "references_sha256": hashlib.sha256(json.dumps(keys).encode()).hexdigest(),
            "threshold": self.subject_thresholds.get(subject_id),
            "match_rule": MATCH_RULE,
        }

    def query(self, embedding: np.ndarray) -> GalleryQuery:
        """Candidates for one float32 ``(128,)`` face embedding, one per subject, closest first."""
        return self.query_many(np.asarray(embedding)[None, :])[0]

    def query_many(self, embeddings: np.ndarray, *, rule: str = "subject") -> list[GalleryQuery]:
        """:meth:`query` for float32 ``(N, 128)`` embeddings (N single-view faces)."""
        vectors = _check_embeddings(embeddings, what="query embeddings")
        return self.query_tracks([vector[None, :] for vector in vectors], rule=rule)

    def query_tracks(self, tracks: Sequence[np.ndarray], *, rule: str = "subject") -> list[GalleryQuery]:
        """Candidates for faces or video tracks, each float32 ``(n, 128)`` (its ``n`` embedded
        views), in one FAISS call; per subject the track's distance is :func:`track_distance`.

        ``rule="nearest"`` is the rule before per-subject thresholds (kept for the benchmark):
        the track's mean embedding's nearest reference against the gallery's threshold.
        """
        if rule not in ("subject", "nearest"):
            raise ValueError(f"rule must be 'subject' or 'nearest', got {rule!r}")
        views = [_check_embeddings(track, what="query embeddings") for track in tracks]
        if self.size == 0 or not views:
            return [GalleryQuery(candidates=(), threshold=self.threshold) for _ in views]
        means = [track.mean(axis=0, keepdims=True) for track in views]
        flat = np.ascontiguousarray(np.concatenate(views + means, axis=0), dtype=np.float32)
        k = min(self.size, _SEARCH_K)
        squared, positions = _search(self._index, flat, k)
        per_view: list[dict[str, float]] = []
        for row_squared, row_positions in zip(squared, positions):
            best: dict[str, float] = {}
            for sq, position in zip(row_squared, row_positions):
                if position < 0:
                    continue
                subject = self._rows[int(position)]["subject_id"]
                distance = float(np.sqrt(max(float(sq), 0.0)))
                if distance < best.get(subject, np.inf):
                    best[subject] = distance
            per_view.append(best)
        per_mean = per_view[sum(len(track) for track in views) :]
        meta = {row["subject_id"]: row for row in self._rows}
        results, start = [], 0
        for number, track in enumerate(views):
            track_views = per_view[start : start + len(track)]
            start += len(track)
            mean_view = per_mean[number]
            subjects = {subject for view in track_views for subject in view} | set(mean_view)
            scored = []
            for subject in subjects:
                distances = np.array([view.get(subject, np.inf) for view in track_views])
                mean_distance = mean_view.get(subject, np.inf)
                if rule == "nearest":
                    distance, limit = float(mean_distance), self.threshold
                else:
                    distance = track_distance(distances, mean_distance)
                    limit = self.subject_thresholds[subject]
                if np.isfinite(distance):
                    scored.append((distance, limit, meta[subject]))
            candidates = tuple(
                ArtistMatch(
                    subject_id=row["subject_id"],
                    slug=row["slug"],
                    name=row["name"],
                    distance=distance,
                    similarity=distance_to_similarity(distance, threshold=limit),
                    threshold=limit,
                    kind=row.get("kind", "artist"),
                )
                for distance, limit, row in sorted(scored, key=lambda item: item[0])
            )
            results.append(GalleryQuery(candidates=candidates, threshold=self.threshold))
        return results


#: Below this many distance evaluations (queries x rows) a search runs on one thread: OpenMP's
#: start-up and spin-waiting cost far more than the scan (measured: 11 ms against 0.04 ms for
#: two faces against six references on the 2-core machine, while other jobs kept it busy).
_SINGLE_THREAD_WORK = 4_000_000


def _search(index: Any, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    if len(vectors) * index.ntotal > _SINGLE_THREAD_WORK:
        return index.search(vectors, k)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(vectors, k)
    finally:
        faiss.omp_set_num_threads(previous)


def references_from_registry(
    rows: Sequence[tuple[Any, str, str, np.ndarray]], kinds: dict[str, str] | None = None
) -> list[SubjectReferences]:
    """Adapt ``Registry.all_reference_embeddings()`` rows ``(subject_id, slug, name, (K,128))``;
    ``kinds`` maps subject ids to their kind (default ``artist``)."""
    kinds = kinds or {}
    return [
        SubjectReferences(
            subject_id=str(subject_id),
            slug=slug,
            name=name,
            embeddings=embeddings,
            kind=kinds.get(str(subject_id), "artist"),
        )
        for subject_id, slug, name, embeddings in rows
        if embeddings is not None and len(embeddings) > 0
    ]


def gallery_folder(home: Path) -> Path:
    return Path(home) / "gallery"


def open_gallery(workspace: Any, *, threshold: float | None = None, save: bool = True) -> ArtistGallery:
    """Sync and return the workspace's gallery (``HOME/gallery``) from its registry.

    ``threshold`` defaults to the calibrated ``likeness.faces.IDENTITY_THRESHOLD``; ``save=False``
    leaves ``HOME/gallery`` as it is (``ArtistGallery.sync``).
    """
    if threshold is None:
        from likeness.faces import IDENTITY_THRESHOLD

        threshold = float(IDENTITY_THRESHOLD)
    kinds = {str(record.id): record.kind for record in workspace.registry.list_subjects()}
    references = references_from_registry(workspace.registry.all_reference_embeddings(), kinds)
    return ArtistGallery.sync(gallery_folder(workspace.home), references, threshold=threshold, save=save)
