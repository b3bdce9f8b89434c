"""Where a scan's files come from: folders, manifests (CSV or Parquet of paths), fsspec URLs.

Each file becomes one ``ScanItem`` with its location (what the results name: a local path or a
URL) and its SHA-256, which the parent computes before anything is verified: a scan is
resumable by (sha256, verifier version), so it has to know the bytes' digest to skip them.

Workers read local paths and fsspec URLs themselves. A filesystem that lives inside this
process (fsspec's ``memory://``) cannot be reached from a worker process, so its bytes travel in
the item; every other protocol is opened by the worker (``s3://``, ``gcs://``, ``http(s)://``
with the matching fsspec backend installed on the workers).

Example::

    items = collect_items(["/crawl/2026-12-05", "manifest.parquet", "memory://tips/"])
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from likeness.config import resolve_user_path
from likeness.digests import sha256_file
from likeness.errors import ConfigError
from likeness.verify.pipeline import MEDIA_SUFFIXES
from likeness.verify.scan import iter_media_files

MANIFEST_SUFFIXES = frozenset({".csv", ".parquet"})
#: fsspec protocols whose files exist only inside the process that wrote them.
IN_PROCESS_PROTOCOLS = frozenset({"memory"})
#: manifest columns taken as the file's location, first match wins (else the first column).
LOCATION_COLUMNS = ("location", "path", "url", "file")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ScanItem:
    """One file to scan. ``local_path`` for files on this machine's (or a shared) disk, ``data``
    for bytes from an in-process filesystem; neither for a URL the worker opens itself."""

    location: str
    sha256: str | None  # None when the file could not be read here (the worker reports why)
    local_path: str | None = None
    data: bytes | None = None

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.location.split("?", 1)[0]).suffix.lower()


def is_url(source: str) -> bool:
    return "://" in source and not Path(source).exists()


def collect_items(sources: Sequence[str | Path]) -> list[ScanItem]:
    """Every file named by ``sources``, once, in order, with its SHA-256 (None if unreadable)."""
    items: list[ScanItem] = []
    seen: set[str] = set()
    for location in _locations(sources):
        if location in seen:
            continue
        seen.add(location)
        items.append(_item(location))
    return items


def _locations(sources: Sequence[str | Path]) -> Iterator[str]:
    for source in sources:
        text = str(source)
        if is_url(text):
            yield from _url_locations(text)
            continue
        path = Path(text)
        # a symbolic link loop is named as one, as ``verify`` names it (``exists`` says False for it);
        # the path stays as given (results name what the user named)
        resolve_user_path(path, "give a folder, a file, a CSV/Parquet manifest or an fsspec URL")
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            for entry in read_manifest(path):
                if is_url(entry):
                    yield from _url_locations(entry)
                else:
                    entry_path = Path(entry) if Path(entry).is_absolute() else path.parent / entry
                    yield from (str(p) for p in iter_media_files([entry_path]))
            continue
        if not path.exists():
            raise ConfigError(f"{text}: not found (a folder, a file, a CSV/Parquet manifest or an fsspec URL)")
        yield from (str(p) for p in iter_media_files([path]))


def read_manifest(path: Path) -> list[str]:
    """The locations listed in a CSV (with a header row) or Parquet manifest."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        names = table.column_names
        column = next((c for c in LOCATION_COLUMNS if c in names), names[0] if names else None)
        if column is None:
            raise ConfigError(f"{path}: the manifest has no columns")
        return [str(v) for v in table.column(column).to_pylist() if v]
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the manifest ({exc})") from None
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    index = next((header.index(c) for c in LOCATION_COLUMNS if c in header), 0)
    return [row[index].strip() for row in rows[1:] if len(row) > index and row[index].strip()]


def _url_locations(url: str) -> Iterator[str]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{url}: no fsspec filesystem for it ({exc})") from None
    if fs.isdir(root):
        found = sorted(
            p
            for p in fs.find(root)
            if PurePosixPath(p).suffix.lower() in MEDIA_SUFFIXES
            and not any(part.startswith(".") for part in PurePosixPath(p).parts)
        )
        yield from (fs.unstrip_protocol(p) for p in found)
    elif fs.exists(root):
        yield fs.unstrip_protocol(root)
    else:
        raise ConfigError(f"{url}: not found")


def _item(location: str) -> ScanItem:
    if not is_url(location):
        try:
            return ScanItem(location, sha256_file(location), local_path=location)
        except OSError:
            return ScanItem(location, None, local_path=location)
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    try:
        if protocols & IN_PROCESS_PROTOCOLS:
            data = fs.cat_file(root)
            return ScanItem(location, hashlib.sha256(data).hexdigest(), data=data)
        digest = hashlib.sha256()
        with fs.open(root, "rb") as handle:
            for chunk in iter(lambda: handle.read(_READ_CHUNK), b""):
                digest.update(chunk)
        return ScanItem(location, digest.hexdigest())
    except OSError:
        return ScanItem(location, None)


def fetch(item: ScanItem, folder: Path) -> tuple[Path, bool]:
    """A local path holding ``item``'s bytes: its own path, or a copy in ``folder`` (then the
    second value is True and the caller removes it). The copy keeps the suffix, which verify
    compares with the content."""
    if item.local_path is not None:
        return Path(item.local_path), False
    name = f"item-{hashlib.sha256(item.location.encode()).hexdigest()[:16]}{item.suffix}"
    target = folder / name
    if item.data is not None:
        target.write_bytes(item.data)
        return target, True
    import fsspec

    with fsspec.open(item.location, "rb") as source, open(target, "wb") as sink:
        sink.writelines(iter(lambda: source.read(_READ_CHUNK), b""))
    return target, True
