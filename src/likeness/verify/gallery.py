"""The artist gallery: a FAISS index over every enrolled subject's reference embeddings.

The index lives in the workspace (``HOME/gallery/index.faiss`` + ``HOME/gallery/ids.json``) and
is brought up to date incrementally: each indexed reference row is remembered by the SHA-256 of
its float32 bytes, new rows are appended, and only a removed or changed row forces a rebuild.

Distances are dlib identity distances (Euclidean in 128-D; FAISS's flat L2 index returns squared
distances, so we take the root). A face matches a subject when its nearest reference of that
subject is within the calibrated threshold (``likeness.faces.IDENTITY_THRESHOLD``). For people,
distances become a similarity in [0, 1]::

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
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness.errors import ConfigError, FaceError
from likeness.verify.result import ArtistMatch

EMBEDDING_DIM = 128
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
_IDS_VERSION = 1
#: Neighbours fetched per query before grouping by subject. A flat index scans every row anyway,
#: so fetch enough that a subject with many references cannot crowd the others out of the
#: candidate list of an agency-sized gallery.
_SEARCH_K = 2048


@dataclass(frozen=True)
class SubjectReferences:
    """One enrolled subject's reference embeddings, float32 ``(K, 128)``."""

    subject_id: str
    slug: str
    name: str
    embeddings: np.ndarray


@dataclass(frozen=True)
class GalleryQuery:
    """Candidates for one face, closest subject first; ``match`` is the first if within the
    threshold."""

    candidates: tuple[ArtistMatch, ...]
    threshold: float

    @property
    def nearest(self) -> ArtistMatch | None:
        return self.candidates[0] if self.candidates else None

    @property
    def match(self) -> ArtistMatch | None:
        nearest = self.nearest
        return nearest if nearest is not None and nearest.distance <= self.threshold else None


def distance_to_similarity(distance: float, *, threshold: float) -> float:
    """Map an identity distance to a similarity in [0, 1]; 0.5 is exactly ``threshold``.

    >>> distance_to_similarity(0.0, threshold=0.5), distance_to_similarity(0.5, threshold=0.5)
    (1.0, 0.5)
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return float(min(1.0, max(0.0, 1.0 - distance / (2.0 * threshold))))


def row_key(subject_id: str, embedding: np.ndarray) -> str:
    """Stable identity of one reference row: subject plus the SHA-256 of its float32 bytes."""
    digest = hashlib.sha256(np.ascontiguousarray(embedding, dtype=np.float32).tobytes()).hexdigest()
    return f"{subject_id}:{digest}"


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

    # ------------------------------------------------------------------ build / persist

    @classmethod
    def sync(
        cls, folder: Path, references: Iterable[SubjectReferences], *, threshold: float
    ) -> ArtistGallery:
        """Bring the index in ``folder`` up to date with ``references`` and return it.

        New reference rows are appended to the persisted index; if any indexed row is gone
        (a reference or subject was removed, or the files are damaged) the index is rebuilt from
        scratch. Writes are atomic (temporary file + rename).
        """
        import faiss

        folder = Path(folder)
        wanted: list[tuple[str, dict[str, str], np.ndarray]] = []
        for subject in references:
            rows = _check_embeddings(subject.embeddings, what=f"references of {subject.slug}")
            for vector in rows:
                key = row_key(subject.subject_id, vector)
                meta = {"key": key, "subject_id": subject.subject_id, "slug": subject.slug, "name": subject.name}
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
        # Names can change without the embeddings changing; keep the labels current.
        relabelled = [dict(row, slug=unique[row["key"]][0]["slug"], name=unique[row["key"]][0]["name"]) for row in rows]
        labels_changed = relabelled != rows
        rows = relabelled
        new = [(meta, vector) for key, (meta, vector) in unique.items() if key not in indexed]
        if new:
            index.add(np.stack([vector for _, vector in new]))
            rows.extend(meta for meta, _ in new)
        if new or rebuilt or labels_changed:
            cls._save_files(folder, index, rows)
        gallery = cls(index, rows, threshold=threshold, folder=folder)
        gallery.last_sync_added = len(new)
        gallery.last_sync_rebuilt = rebuilt
        return gallery

    @classmethod
    def load(cls, folder: Path, *, threshold: float) -> ArtistGallery:
        """Open a persisted index without syncing (worker processes)."""
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
            manifest = json.loads(ids_path.read_text(encoding="utf-8"))
            rows = manifest["rows"]
            if manifest.get("version") != _IDS_VERSION or not isinstance(rows, list):
                return None, []
            index = faiss.read_index(str(index_path))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            # A damaged gallery is a cache: rebuild it from the registry rather than fail.
            return None, []
        if index.ntotal != len(rows) or index.d != EMBEDDING_DIM:
            return None, []
        return index, rows

    @staticmethod
    def _save_files(folder: Path, index: Any, rows: list[dict[str, str]]) -> None:
        import faiss

        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp_index = tempfile.mkstemp(prefix=".index-", suffix=".faiss", dir=folder)
            os.close(fd)
            faiss.write_index(index, tmp_index)
            fd, tmp_ids = tempfile.mkstemp(prefix=".ids-", suffix=".json", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": _IDS_VERSION, "dim": EMBEDDING_DIM, "rows": rows}, handle, indent=1)
            os.replace(tmp_index, folder / INDEX_FILE)
            os.replace(tmp_ids, folder / IDS_FILE)
        except OSError as exc:
            raise ConfigError(f"cannot write the artist gallery in {folder}: {exc}") from exc

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
        """SHA-256 over the indexed row keys and the threshold: changes whenever a verdict that
        depends on the gallery could change (used to invalidate resumed scans)."""
        keys = sorted(row["key"] for row in self._rows)
        return hashlib.sha256(json.dumps([keys, self.threshold]).encode()).hexdigest()

    def query(self, embedding: np.ndarray) -> GalleryQuery:
        """Candidates for one float32 ``(128,)`` face embedding, one per subject, closest first."""
        return self.query_many(np.asarray(embedding)[None, :])[0]

    def query_many(self, embeddings: np.ndarray) -> list[GalleryQuery]:
        """:meth:`query` for float32 ``(N, 128)`` embeddings in one FAISS call."""
        vectors = _check_embeddings(embeddings, what="query embeddings")
        if self.size == 0 or len(vectors) == 0:
            return [GalleryQuery(candidates=(), threshold=self.threshold) for _ in range(len(vectors))]
        k = min(self.size, _SEARCH_K)
        squared, positions = _search(self._index, vectors, k)
        results = []
        for row_squared, row_positions in zip(squared, positions):
            best: dict[str, tuple[float, dict[str, str]]] = {}
            for sq, position in zip(row_squared, row_positions):
                if position < 0:
                    continue
                meta = self._rows[int(position)]
                distance = float(np.sqrt(max(float(sq), 0.0)))
                if meta["subject_id"] not in best or distance < best[meta["subject_id"]][0]:
                    best[meta["subject_id"]] = (distance, meta)
            candidates = tuple(
                ArtistMatch(
                    subject_id=meta["subject_id"], slug=meta["slug"], name=meta["name"],
                    distance=distance,
                    similarity=distance_to_similarity(distance, threshold=self.threshold),
                )
                for distance, meta in sorted(best.values(), key=lambda item: item[0])
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


def references_from_registry(rows: Sequence[tuple[Any, str, str, np.ndarray]]) -> list[SubjectReferences]:
    """Adapt ``Registry.all_reference_embeddings()`` rows ``(subject_id, slug, name, (K,128))``."""
    return [
        SubjectReferences(subject_id=str(subject_id), slug=slug, name=name, embeddings=embeddings)
        for subject_id, slug, name, embeddings in rows
        if embeddings is not None and len(embeddings) > 0
    ]


def gallery_folder(home: Path) -> Path:
    return Path(home) / "gallery"


def open_gallery(workspace: Any, *, threshold: float | None = None) -> ArtistGallery:
    """Sync and return the workspace's gallery (``HOME/gallery``) from its registry.

    ``threshold`` defaults to the calibrated ``likeness.faces.IDENTITY_THRESHOLD``.
    """
    if threshold is None:
        from likeness.faces import IDENTITY_THRESHOLD

        threshold = float(IDENTITY_THRESHOLD)
    references = references_from_registry(workspace.registry.all_reference_embeddings())
    return ArtistGallery.sync(gallery_folder(workspace.home), references, threshold=threshold)
