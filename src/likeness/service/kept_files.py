"""Finding the kept copy of a made file (a render, a training preview) for the holders' portal.

Made events record a bare file name and the file's SHA-256, not where it lies: renders go to
``outputs/service/<job>/`` from the service and anywhere under ``outputs/`` from the CLI,
previews to a model folder. The portal finds a file by name under the kept folders and shows
it only when its bytes hash to the digest the ledger records; a file of the same name with
other bytes is never shown.

One walk of a folder serves a page and the up to 50 thumbnail requests it makes (each walked
the whole folder: 50 walks a page view). A walk is used for ``INDEX_FRESH_S`` seconds unless a
name looked up is not in it (a file made since), which walks the folder again; the page gives
thumbnails only to names it found, so its thumbnails do not walk.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from likeness import digests

T = TypeVar("T")

#: How long one walk of a kept folder answers lookups of the names it holds (a file moved away
#: in that time is a 404 thumbnail, which the page shows as a plain line).
INDEX_FRESH_S = 30.0
#: Folders whose walk is kept (a workspace's outputs and model folders).
KEPT_FOLDERS = 8
#: Copies of one name looked at, at most, per folder (a name is normally kept once or twice).
MAX_CANDIDATES = 20


@dataclass(frozen=True)
class FolderIndex:
    """The files under one folder by name, as one walk found them (paths as strings: making a
    ``Path`` of each of 22,000 files cost 0.4 s a walk)."""

    by_name: dict[str, tuple[str, ...]]
    walked_at: float

    def paths(self, name: str) -> list[Path]:
        return [Path(p) for p in self.by_name.get(name, ())]


def walk_folder(folder: Path) -> FolderIndex:
    """Every file under ``folder`` by its name (symbolic links to folders are not followed)."""
    by_name: dict[str, list[str]] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            by_name.setdefault(name, []).append(os.path.join(root, name))
    return FolderIndex({n: tuple(sorted(p)[:MAX_CANDIDATES]) for n, p in by_name.items()}, time.monotonic())


_indexes: dict[Path, FolderIndex] = {}
_lock = threading.Lock()


def kept_paths(folders: Iterable[Path], wanted: Iterable[Sequence[str]]) -> dict[str, list[Path]]:
    """The files under ``folders`` of each name in ``wanted``, a list of name groups (the names
    one made event records). The folders' kept walks answer unless one is older than
    ``INDEX_FRESH_S`` or no name of some group is in any of them: then they are walked again."""
    folders, groups, asked = list(folders), [list(g) for g in wanted], time.monotonic()
    indexes = [_kept_index(f) for f in folders]
    if any(asked - i.walked_at > INDEX_FRESH_S for i in indexes) or any(
        not any(i.paths(n) for i in indexes for n in group) for group in groups
    ):
        indexes = [_kept_index(f, walked_after=asked) for f in folders]
    return {n: [p for i in indexes for p in i.paths(n)] for group in groups for n in group}


def _kept_index(folder: Path, *, walked_after: float | None = None) -> FolderIndex:
    """The kept walk of ``folder``, walked now when there is none or it is older than ``walked_after``."""
    with _lock:
        index = _indexes.get(folder)
    if index is None or (walked_after is not None and index.walked_at < walked_after):
        index = walk_folder(folder) if folder.is_dir() else FolderIndex({}, time.monotonic())
        with _lock:
            _indexes.pop(folder, None)
            _indexes[folder] = index
            while len(_indexes) > KEPT_FOLDERS:  # the oldest walked first: a workspace has two
                _indexes.pop(next(iter(_indexes)))
    return index


def read_kept_file(
    folders: Iterable[Path], names: list[str], digest: object, read: Callable[[BinaryIO, Path], T]
) -> T | None:
    """``read(handle, path)`` of a kept file named one of ``names`` under ``folders`` whose
    SHA-256 is ``digest``, or None when none is kept.

    The file is opened once; its hash is taken (or found taken for this version of the file)
    through that handle, and ``read`` reads the same handle from its start. Checking the hash by
    path and reading the path again served a file swapped in between; the handle keeps the
    file that was checked, and a file written over in place while it is read has a new version
    when ``read`` returns, so its reading is not used."""
    if not isinstance(digest, str) or not names:
        return None
    found = kept_paths(folders, [names])
    for path in (p for name in names for p in found[name]):
        with _opened(path) as handle:
            if handle is None:
                continue
            version = _version(path, os.fstat(handle.fileno()))
            if _version_sha256(handle, version) != digest:
                continue
            handle.seek(0)
            result = read(handle, path)
            if _version(path, os.fstat(handle.fileno())) == version:
                return result
    return None


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO | None]:
    """``path`` open for reading when it is a regular file (opened without blocking: a FIFO with
    no writer is never waited on), else None."""

    def nonblocking(name: str, flags: int) -> int:
        return os.open(name, flags | os.O_NONBLOCK)

    try:
        handle = open(path, "rb", opener=nonblocking)  # noqa: SIM115 (closed below)
    except OSError:
        yield None
        return
    with handle:
        yield handle if stat.S_ISREG(os.fstat(handle.fileno()).st_mode) else None


#: A file's version: its path, size, modification time, inode and change time. The inode and
#: change time come in as well as size and modification time: a file replaced by one of the
#: same size with its mtime set back keeps neither.
FileVersion = tuple[str, int, int, int, int]


def _version(path: Path, status: os.stat_result) -> FileVersion:
    return (str(path), status.st_size, status.st_mtime_ns, status.st_ino, status.st_ctime_ns)


_hashed: dict[FileVersion, str] = {}
_hashed_lock = threading.Lock()
#: File versions whose hash is kept.
HASHED_VERSIONS = 4096


def _version_sha256(handle: BinaryIO, version: FileVersion) -> str:
    """The SHA-256 of the open file ``handle`` at ``version``, hashed once per version:
    ``/portal/made`` asks for up to 50 thumbnails a page, and hashing every render in full at
    every view took 0.05 s a 50 MB render (2.6 s a page; 26 s for 500 MB renders), each time
    the page was shown."""
    with _hashed_lock:
        known = _hashed.get(version)
    if known is not None:
        return known
    digest = digests.sha256_stream(handle)
    with _hashed_lock:
        _hashed[version] = digest
        while len(_hashed) > HASHED_VERSIONS:  # the oldest hashed first
            _hashed.pop(next(iter(_hashed)))
    return digest
