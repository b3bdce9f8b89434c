"""The faceset on disk: aligned face crops, one JSON-Lines index, and a hashed manifest.

Layout of a faceset folder::

    FACESET/
      faces/000000.png ...   aligned RGB crops (size x size), one per record
      index.jsonl            one JSON object per face, in ``faces/`` order
      manifest.json          faceset_sha256, subject, grant or release, created_at, counts, size,
                             and the organisation's seal (``likeness.consent.artefacts``)

``faceset_sha256`` is the SHA-256 of the ``index.jsonl`` bytes. Every index record carries the
SHA-256 of its image file, so the one hash binds the metadata and every pixel, and it is
deterministic: the same footage, options and grant give the same hash (``created_at`` lives in
the manifest, outside the hash). Reading a faceset never needs the source footage.

``load_faceset`` checks the files against the manifest; ``verify_faceset`` checks the manifest
against its signed ``faceset.created`` ledger event, which is where training takes the subject and
the consent from (an edited manifest is refused, never believed).

Example::

    faceset = load_faceset("mina-faceset")
    for record in faceset:
        crop = faceset.image(record)     # uint8 (size, size, 3) RGB, loaded lazily
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from likeness import strict_json
from likeness.digests import sha256_file
from likeness.errors import FacesetError, MediaError

FACESET_FORMAT = "likeness.faceset/1"
INDEX_NAME = "index.jsonl"
MANIFEST_NAME = "manifest.json"
FACES_DIR = "faces"
LANDMARK_COUNT = 478

# Landmarks are crop pixels: a thousandth of a pixel is far below any use downstream and keeps
# the index about half the size of full float precision.
_LANDMARK_DECIMALS = 3
_METRIC_DECIMALS = 4


@dataclass(frozen=True)
class FaceRecord:
    """One aligned face of a faceset (one line of ``index.jsonl``).

    ``landmarks`` are float32 (478, 2) in crop pixel coordinates; ``affine`` is float64 (2, 3)
    mapping source-frame pixels to crop pixels. Angles are degrees (``faces.head_pose``
    convention); ``face_size`` is the face's extent in source pixels; ``sharpness`` is the
    variance of the Laplacian of the grey crop; ``brightness`` is mean grey level 0..255 inside
    the face; ``identity_distance`` is the distance to the closest reference embedding.
    """

    file: str
    source: str
    frame_index: int
    timestamp_s: float | None
    track_id: int
    landmarks: np.ndarray
    affine: np.ndarray
    yaw: float
    pitch: float
    roll: float
    sharpness: float
    face_size: float
    eye_openness: float
    mouth_openness: float
    brightness: float
    identity_distance: float
    grant_id: str | None
    release_id: str | None = None
    image_sha256: str = ""
    perceptual_hash: str = ""

    def to_json(self) -> str:
        """One index line (no newline); key order and float rounding fixed for hashing."""
        record: dict[str, Any] = {}
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if name == "landmarks":
                value = np.round(np.asarray(value, dtype=np.float64), _LANDMARK_DECIMALS).tolist()
            elif name == "affine":
                value = np.asarray(value, dtype=np.float64).tolist()
            elif isinstance(value, float):
                value = _finite(round(value, _METRIC_DECIMALS), name)
            record[name] = value
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str = "index") -> FaceRecord:
        """Parse one index object; raises ``FacesetError`` naming ``where`` on any bad field."""
        if not isinstance(raw, Mapping):
            raise FacesetError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        names = {f.name for f in fields(cls)}
        required = names - {"release_id", "image_sha256", "perceptual_hash"}
        missing = sorted(required - raw.keys())
        if missing:
            raise FacesetError(f"{where}: missing field(s) {', '.join(missing)}")
        values = {k: raw[k] for k in names if k in raw}
        try:
            landmarks = np.asarray(values["landmarks"], dtype=np.float32)
            affine = np.asarray(values["affine"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise FacesetError(f"{where}: landmarks/affine are not numeric arrays ({exc})") from None
        if landmarks.shape != (LANDMARK_COUNT, 2):
            raise FacesetError(f"{where}: landmarks must be ({LANDMARK_COUNT}, 2), got {landmarks.shape}")
        if affine.shape != (2, 3):
            raise FacesetError(f"{where}: affine must be (2, 3), got {affine.shape}")
        values["landmarks"] = landmarks
        values["affine"] = affine
        try:
            return cls(**values)
        except TypeError as exc:
            raise FacesetError(f"{where}: {exc}") from None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as nested lists)."""
        return json.loads(self.to_json())


@dataclass(frozen=True)
class FacesetManifest:
    """``manifest.json``: what the faceset is, whose face, under which consent."""

    faceset_sha256: str
    subject_id: str
    subject_slug: str
    grant_id: str | None
    release_id: str | None
    org_id: str | None
    created_at: str
    counts: dict[str, Any]
    size: int
    coverage: str = "wf"
    format: str = FACESET_FORMAT
    options: dict[str, Any] = field(default_factory=dict)
    seal: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(self.document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"

    def document(self) -> dict[str, Any]:
        """The manifest as the JSON object written to disk (seal included when there is one)."""
        return asdict(self)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise FacesetError(f"face metric {name} is not finite ({value})")
    return value


def index_sha256(index_path: Path) -> str:
    """The faceset hash: SHA-256 of the index bytes (which carry every image's SHA-256)."""
    return sha256_file(index_path)


class FaceIndex(Sequence[FaceRecord]):
    """``index.jsonl`` as a lazy, read-only sequence of :class:`FaceRecord`.

    Only the byte offset of each line, an 8-byte BLAKE2b digest of it and the face's yaw are kept
    (about 20 bytes per face), so a 50 000-face faceset costs about 1 MB of memory instead of the
    ~1 GB its parsed records (478x2 landmarks each) would. ``index[i]`` reads and parses line ``i``
    on demand (thread-safe: each access opens the file); iteration streams the file. A line that
    no longer matches its digest (the index was changed after loading) raises ``FacesetError``.
    """

    def __init__(self, index_path: Path, offsets: np.ndarray, digests: np.ndarray, yaws: np.ndarray) -> None:
        self.path = index_path
        self._offsets = offsets  # int64 (N, 2): record i is bytes [offsets[i, 0], offsets[i, 1])
        self._digests = digests  # uint64 (N,)
        self._yaws = yaws  # float32 (N,)

    @classmethod
    def scan(cls, index_path: Path, *, expected_sha256: str | None = None) -> FaceIndex:
        """Stream ``index_path`` once: hash it, validate every record, note offsets, digests and yaws.

        Raises ``FacesetError`` naming the line of a malformed record, or, when
        ``expected_sha256`` is given and differs, that the faceset was altered (that message wins:
        an edited index is reported as edited, not as malformed).
        """
        file_digest = hashlib.sha256()
        spans: list[tuple[int, int]] = []
        digests: list[int] = []
        yaws: list[float] = []
        first_error: FacesetError | None = None
        position = 0
        try:
            with open(index_path, "rb") as handle:
                for number, line in enumerate(handle, start=1):
                    file_digest.update(line)
                    start, position = position, position + len(line)
                    if first_error is not None or not line.strip():
                        continue
                    try:
                        record = _parse_line(line, where=f"{index_path}:{number}")
                    except FacesetError as exc:
                        first_error = exc
                        continue
                    spans.append((start, position))
                    digests.append(_line_digest(line))
                    yaws.append(record.yaw)
        except OSError as exc:
            raise FacesetError(f"{index_path}: cannot read the index ({exc})") from None
        if expected_sha256 is not None and file_digest.hexdigest() != expected_sha256:
            raise FacesetError(
                f"{index_path.parent}: faceset altered: index hashes to {file_digest.hexdigest()[:16]}…, "
                f"manifest says {str(expected_sha256)[:16]}…"
            )
        if first_error is not None:
            raise first_error
        table = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        return cls(index_path, table, np.asarray(digests, dtype=np.uint64), np.asarray(yaws, dtype=np.float32))

    def __len__(self) -> int:
        return len(self._digests)

    def _read(self, handle: Any, i: int) -> FaceRecord:
        start, end = (int(v) for v in self._offsets[i])
        handle.seek(start)
        line = handle.read(end - start)
        if _line_digest(line) != int(self._digests[i]):
            raise FacesetError(f"{self.path}: index record {i} changed after the faceset was loaded")
        return _parse_line(line, where=f"{self.path}: record {i}")

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"faceset indices must be integers or slices, not {type(i).__name__}")
        index = int(i) + n if i < 0 else int(i)
        if not 0 <= index < n:
            raise IndexError(f"face index {i} out of range for a faceset of {n} faces")
        try:
            with open(self.path, "rb") as handle:
                return self._read(handle, index)
        except OSError as exc:
            raise FacesetError(f"{self.path}: cannot read the index ({exc})") from None

    def __iter__(self) -> Iterator[FaceRecord]:
        try:
            with open(self.path, "rb") as handle:
                for i in range(len(self)):
                    yield self._read(handle, i)
        except OSError as exc:
            raise FacesetError(f"{self.path}: cannot read the index ({exc})") from None

    def yaws(self) -> np.ndarray:
        """float32 (N,) yaw of every face in degrees (kept from the loading scan; no re-read)."""
        return self._yaws.copy()

    @property
    def nbytes(self) -> int:
        """Memory held by the index tables, in bytes."""
        return int(self._offsets.nbytes + self._digests.nbytes + self._yaws.nbytes)


def _line_digest(line: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")


def _parse_line(line: bytes, *, where: str) -> FaceRecord:
    try:
        raw = strict_json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FacesetError(f"{where}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    return FaceRecord.from_mapping(raw, where=where)


class Faceset:
    """A verified faceset folder: iterate records, load crops lazily.

    Construct with ``load_faceset``. ``len(faceset)`` is the number of faces; ``faceset[i]``
    is the i-th ``FaceRecord``; ``faceset.image(record_or_i)`` reads the crop (uint8 RGB,
    (size, size, 3)) and checks its SHA-256 against the index. ``records`` is a sequence of
    records: a lazy :class:`FaceIndex` for loaded facesets (memory bounded by a few bytes per
    face, records parsed on access), or whatever sequence was passed in.
    """

    def __init__(self, path: Path, manifest: FacesetManifest, records: Sequence[FaceRecord]):
        self.path = path
        self.manifest = manifest
        self.records: Sequence[FaceRecord] = records if isinstance(records, FaceIndex) else tuple(records)

    @property
    def faceset_sha256(self) -> str:
        return self.manifest.faceset_sha256

    @property
    def subject_id(self) -> str:
        return self.manifest.subject_id

    @property
    def subject_slug(self) -> str:
        return self.manifest.subject_slug

    @property
    def grant_id(self) -> str | None:
        return self.manifest.grant_id

    @property
    def release_id(self) -> str | None:
        return self.manifest.release_id

    @property
    def size(self) -> int:
        return self.manifest.size

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[FaceRecord]:
        return iter(self.records)

    def __getitem__(self, i: int) -> FaceRecord:
        return self.records[i]

    def _record(self, record: FaceRecord | int) -> FaceRecord:
        return self.records[record] if isinstance(record, (int, np.integer)) else record

    def image_path(self, record: FaceRecord | int) -> Path:
        return self.path / self._record(record).file

    def image(self, record: FaceRecord | int, *, verify: bool = True) -> np.ndarray:
        """The aligned crop, uint8 RGB (size, size, 3); ``FacesetError`` if missing or altered."""
        from likeness.media import read_image

        record = self._record(record)
        path = self.path / record.file
        if not path.is_file():
            raise FacesetError(f"{path}: face image missing from the faceset")
        if verify and record.image_sha256 and sha256_file(path) != record.image_sha256:
            raise FacesetError(f"{path}: face image altered (SHA-256 differs from the index)")
        try:
            rgb = read_image(path)
        except MediaError as exc:
            raise FacesetError(f"{path}: face image unreadable ({exc.reason})") from None
        if rgb.shape != (self.size, self.size, 3):
            raise FacesetError(f"{path}: expected a ({self.size}, {self.size}, 3) crop, got {rgb.shape}")
        return rgb

    def mask(self, record: FaceRecord | int) -> np.ndarray:
        """Landmark hull mask of a face, uint8 (size, size), 255 inside; rebuilt from the index
        landmarks (``faces.hull_mask``) rather than stored, so it never disagrees with them."""
        from likeness.faces import hull_mask

        return hull_mask(self._record(record).landmarks, self.size)

    def landmarks(self) -> np.ndarray:
        """float32 (N, 478, 2) crop-coordinate landmarks of every face.

        The result itself is ~3.8 kB per face; it is filled while streaming the index, so no
        parsed records are held beside it.
        """
        out = np.zeros((len(self.records), LANDMARK_COUNT, 2), np.float32)
        for i, record in enumerate(self.records):
            out[i] = record.landmarks
        return out

    def yaws(self) -> np.ndarray:
        """float32 (N,) yaw of every face in degrees."""
        if isinstance(self.records, FaceIndex):
            return self.records.yaws()
        return np.asarray([r.yaw for r in self.records], dtype=np.float32)


def read_index(index_path: Path) -> list[FaceRecord]:
    """Parse ``index.jsonl`` into a list; ``FacesetError`` names the line of any malformed record.

    Holds every record (landmarks included) in memory: for small indexes and the extraction's
    resume; ``load_faceset`` uses the bounded :class:`FaceIndex` instead.
    """
    return list(FaceIndex.scan(index_path))


def read_manifest(path: Path) -> FacesetManifest:
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FacesetError(f"{path}: not a faceset (no {MANIFEST_NAME}; unfinished extraction?)")
    try:
        raw = strict_json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FacesetError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(raw, dict):
        raise FacesetError(f"{manifest_path}: manifest must be a JSON object")
    known = {f.name for f in fields(FacesetManifest)}
    try:
        return FacesetManifest(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise FacesetError(f"{manifest_path}: {exc}") from None


def verify_faceset(workspace: Any, faceset: Faceset) -> Any:
    """The ``faceset.created`` ledger event ``faceset``'s manifest is bound to (a ``LedgerEvent``
    whose payload names ``subject_id``, ``subject_slug``, ``grant_id``, ``release_id``, ``org_id``).

    Raises ``ConsentError``: ``artefact_unsigned`` for a manifest written before facesets were
    signed, ``artefact_altered`` when manifest, seal, event or signature disagree (a relabelled
    subject is named) or this workspace's ledger has no event for it.
    """
    from likeness.consent.artefacts import FACESET_EVENT, FACESET_FIELDS, verify_document

    return verify_document(
        workspace,
        faceset.path / MANIFEST_NAME,
        faceset.manifest.document(),
        FACESET_EVENT,
        compare=FACESET_FIELDS,
        remedy="extract the faceset again to sign it",
    )


def load_faceset(path: str | os.PathLike[str], *, verify_images: bool = False) -> Faceset:
    """Open a faceset folder and verify it against its manifest.

    Always checks that the index hashes to ``manifest.faceset_sha256`` and that every listed
    image exists; with ``verify_images=True`` also re-hashes every crop now (otherwise each crop
    is checked when it is loaded). Raises ``FacesetError`` if anything is missing or altered.

    Memory stays bounded for large facesets: the index is streamed (hash, validation and the
    image check in two passes) and only a :class:`FaceIndex` of offsets and digests is kept.
    """
    root = Path(path)
    if not root.is_dir():
        found = "is a file, not a faceset folder" if root.exists() else "faceset folder not found"
        raise FacesetError(f"{root}: {found}")
    manifest = read_manifest(root)
    index_path = root / INDEX_NAME
    if not index_path.is_file():
        raise FacesetError(f"{root}: {INDEX_NAME} missing")
    records = FaceIndex.scan(index_path, expected_sha256=manifest.faceset_sha256)
    for record in records:
        image_path = root / record.file
        if not image_path.is_file():
            raise FacesetError(f"{image_path}: face image missing from the faceset")
        if verify_images and sha256_file(image_path) != record.image_sha256:
            raise FacesetError(f"{image_path}: face image altered (SHA-256 differs from the index)")
    return Faceset(root, manifest, records)
