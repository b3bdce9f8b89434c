"""Durable file placement: the one way the product writes a file whole.

A reader (or a process killed mid-write, or a power loss) sees the previous file or the new one,
never a torn one. Bytes in memory go through :func:`write_atomic`; a file another library writes
(an encoder, a signer, a zip or index writer) goes through :func:`atomic_path`; a writer whose
life spans many calls (the video encoder) uses the steps themselves: :func:`create_temporary`,
:func:`commit_temporary`, :func:`remove_temporary`.

Each temporary is ``.<name>.<random>.part`` beside the file it becomes, created exclusively
(``O_EXCL``: nothing planted under that name is written through) with the file's final mode, so
a 0600 key never exists, not even as a temporary, with wider rights.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: What a temporary's name ends with (:func:`remove_stale_temporaries` finds them by it).
TEMPORARY_SUFFIX = ".part"
# The bytes of the file's name a temporary keeps: room for ".", "." + 8 hex and the suffix within
# the 255 bytes a file name may have.
_NAME_BYTES_KEPT = 255 - 2 - 8 - len(TEMPORARY_SUFFIX)

# What ``link`` fails with where a file system has no hard links.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})

#: Turns the ``OSError`` of a failed write into the caller's typed error (naming the file).
ErrorFor = Callable[[OSError], BaseException]


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable; not supported on every platform, harmless to skip there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_prefix(path: Path) -> str:
    name = path.name
    while len(os.fsencode(name)) > _NAME_BYTES_KEPT:  # a long (Hangul: 3 bytes a letter) name
        name = name[:-1]
    return f".{name}."


def create_temporary(path: Path, *, mode: int | None = None) -> tuple[int, Path]:
    """A new, empty ``.<name>.<random>.part`` beside ``path``, opened for writing: (fd, its path).

    ``mode``: the file's exact permissions from its creation on (0o600 for keys); None: 0o666 less
    the umask, like any file a user writes.
    """
    path = Path(path)
    for _ in range(100):
        candidate = path.parent / f"{_temporary_prefix(path)}{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.fchmod(fd, mode)  # the umask may have narrowed it; make it exact
            except BaseException:
                os.close(fd)
                remove_temporary(candidate)
                raise
        return fd, candidate
    raise FileExistsError(f"no free temporary name beside {path}")


def commit_temporary(temporary: Path, path: Path, *, overwrite: bool = True) -> None:
    """Make ``temporary``'s bytes durable, put it at ``path`` and make that durable too.

    ``overwrite=False``: never replace a file at ``path`` (``FileExistsError``): the temporary is
    hard-linked into place, or, on file systems without hard links, the name is reserved
    exclusively and then replaced. On a failure the temporary stays, for the caller to remove
    (:func:`remove_temporary`) or to place elsewhere.
    """
    _fsync_file(temporary)
    if overwrite:
        os.replace(temporary, path)
    else:
        _place_new(temporary, path)
    fsync_folder(Path(path).parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place_new(temporary: Path, path: Path) -> None:
    try:
        os.link(temporary, path)  # fails when ``path`` exists: never a replacement
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here (FAT sticks): reserve the name exclusively, then rename onto it.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            os.replace(temporary, path)
        except BaseException:
            remove_temporary(path)  # the empty reservation, never a file of someone else's
            raise
        return
    remove_temporary(temporary)


def remove_temporary(temporary: Path) -> None:
    """Remove ``temporary`` if it is still there."""
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries a killed writer of ``path`` left beside it; returns what was removed.

    Each temporary has a random name, so a rerun never reuses a killed run's file: without this,
    they would stay.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*{TEMPORARY_SUFFIX}"):
        try:
            stale.unlink()
        except FileNotFoundError:
            continue
        removed.append(stale)
    return removed


@contextmanager
def atomic_path(
    path: Path, *, mode: int | None = None, overwrite: bool = True, error: ErrorFor | None = None
) -> Iterator[Path]:
    """Yield a new empty temporary path for ``path``; when the block ends normally, the file
    written there becomes ``path`` (:func:`commit_temporary`); when it raises, it is removed.

    ``error``: makes the caller's typed error of an ``OSError`` (raised in the block or while
    placing the file); None lets the ``OSError`` through.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with atomic_path(Path(folder) / "notes.txt") as temporary:
    ...         _ = temporary.write_text("kept whole")
    ...     [p.name for p in Path(folder).iterdir()], (Path(folder) / "notes.txt").read_text()
    (['notes.txt'], 'kept whole')
    """
    path = Path(path)
    with _raising(error):
        fd, temporary = create_temporary(path, mode=mode)
        os.close(fd)
        try:
            yield temporary
            commit_temporary(temporary, path, overwrite=overwrite)
        except BaseException:
            remove_temporary(temporary)
            raise


def write_atomic(
    path: Path, payload: bytes, *, mode: int | None = None, overwrite: bool = True, error: ErrorFor | None = None
) -> Path:
    """Write ``payload`` to ``path`` whole or not at all (see the module's docstring); returns ``path``.

    ``mode``: the file's exact permissions, from its temporary's creation on (None: 0o666 less the
    umask). ``overwrite=False``: ``FileExistsError`` (or ``error`` of it) when ``path`` exists.
    ``error``: makes the caller's typed error of an ``OSError``; None lets it through.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     oct(write_atomic(Path(folder) / "secret.key", b"k", mode=0o600).stat().st_mode & 0o777)
    '0o600'
    """
    path = Path(path)
    with _raising(error):
        fd, temporary = create_temporary(path, mode=mode)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(payload)
            commit_temporary(temporary, path, overwrite=overwrite)
        except BaseException:
            remove_temporary(temporary)
            raise
    return path


@contextmanager
def _raising(error: ErrorFor | None) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if error is None:
            raise
        raise error(exc) from exc
