"""Durable file placement: the one way the product writes a file whole.

A reader (or a process killed mid-write, or a power loss) sees the previous file or the new one,
never a torn one. Bytes in memory go through :func:`write_atomic`; a file another library writes
(an encoder, a signer, a zip or index writer) goes through :func:`atomic_path`; a writer whose
life spans many calls (the video encoder) uses the steps themselves: :func:`create_temporary`,
:func:`commit_temporary`, :func:`remove_temporary`.

Each temporary is ``.<name>.<random>.<writer>.part`` beside the file it becomes, created
exclusively (``O_EXCL``: nothing planted under that name is written through) with the file's
final mode, so a 0600 key never exists, not even as a temporary, with wider rights.

``<writer>`` is ``<domain>-<pid>``: the writing process's id and a short hash of where that id
names a process (host, boot, pid namespace). A folder many processes write into (a scan's
evidence folder) is cleaned by :func:`remove_orphaned_temporaries`, which removes only
temporaries whose writer is known to be gone; a concurrent writer's stay.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: What a temporary's name ends with (:func:`remove_stale_temporaries` finds them by it).
TEMPORARY_SUFFIX = ".part"
#: The most digits a writer's pid takes in a temporary's name.
_PID_DIGITS = 10
# The bytes of the file's name a temporary keeps within the 255 a file name may have: room for
# the leading ".", "." + 8 hex of randomness, "." + the writer (8 hex, "-", the pid) and the suffix.
_NAME_BYTES_KEPT = 255 - 1 - 9 - (1 + 8 + 1 + _PID_DIGITS) - len(TEMPORARY_SUFFIX)
_OWNED_TEMPORARY = re.compile(
    rf"\.(?P<name>.+)\.[0-9a-f]{{8}}\.(?P<domain>[0-9a-f]{{8}})-(?P<pid>[1-9][0-9]{{0,{_PID_DIGITS - 1}}})"
    + re.escape(TEMPORARY_SUFFIX)
)
#: How long a temporary of a writer that is gone must have been left untouched before
#: :func:`remove_orphaned_temporaries` removes it: a writer whose pid this process reads wrongly
#: (another pid namespace under the same host name and boot) still touches its file while it
#: writes it.
ORPHAN_AGE_S = 10 * 60

logger = logging.getLogger(__name__)

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


@cache
def _pid_domain() -> str:
    """8 hex naming where this process's pid names it: host name, boot and pid namespace (the
    last two where the system says; Linux). Two processes with the same domain see each other's
    pids."""
    parts = [socket.gethostname()]
    for source, read in (
        ("/proc/sys/kernel/random/boot_id", lambda p: Path(p).read_text().strip()),
        ("/proc/self/ns/pid", os.readlink),
    ):
        try:
            parts.append(read(source))
        except OSError:
            parts.append("")
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _writer_tag() -> str:
    # The pid is read at each call: a forked child writes under its own.
    return f"{_pid_domain()}-{os.getpid()}"


@dataclass(frozen=True)
class TemporaryWriter:
    """The process that made a temporary: its ``pid``, valid where :func:`_pid_domain` is ``domain``."""

    domain: str
    pid: int


def temporary_writer(temporary: Path) -> TemporaryWriter | None:
    """Who made ``temporary``, read from its name; None for a name this module did not give
    (another program's file, or a temporary of an earlier release that named no writer)."""
    match = _OWNED_TEMPORARY.fullmatch(Path(temporary).name)
    if match is None:
        return None
    return TemporaryWriter(match["domain"], int(match["pid"]))


def writer_gone(writer: TemporaryWriter) -> bool:
    """Whether ``writer`` has certainly ended: a process of this domain that no longer exists
    (or is a zombie, which writes nothing). A writer of another host or pid namespace, or one
    the system will not say of, is taken as alive."""
    if writer.domain != _pid_domain():
        return False
    try:
        os.kill(writer.pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: another user's process, alive
        return False
    return _zombie(writer.pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for its parent to reap it (Linux says, in the state
    field after the command name; elsewhere: not known, False)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def create_temporary(path: Path, *, mode: int | None = None) -> tuple[int, Path]:
    """A new, empty ``.<name>.<random>.<writer>.part`` beside ``path``, opened for writing: (fd, its path).

    ``mode``: the file's exact permissions from its creation on (0o600 for keys); None: 0o666 less
    the umask, like any file a user writes.
    """
    path = Path(path)
    for _ in range(100):
        candidate = path.parent / f"{_temporary_prefix(path)}{secrets.token_hex(4)}.{_writer_tag()}{TEMPORARY_SUFFIX}"
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
    they would stay. For the one writer of ``path``: a temporary of a concurrent writer of the
    same name goes too (:func:`remove_orphaned_temporaries` is for folders many processes write).
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


def remove_orphaned_temporaries(
    folder: str | os.PathLike[str], *, older_than_s: float = ORPHAN_AGE_S, now: float | None = None
) -> list[Path]:
    """Remove the temporaries in ``folder`` whose writer is gone (:func:`writer_gone`) and that
    nobody touched for ``older_than_s`` seconds; returns what was removed.

    Safe beside concurrent writers into ``folder``: a temporary of a live process, of another
    host or pid namespace, or of an unknown writer (an earlier release's name, or a file this
    module did not name) stays, as does anything that is not a regular file. A missing folder
    has none.
    """
    folder = Path(folder)
    deadline = (time.time() if now is None else now) - older_than_s
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        writer = temporary_writer(Path(entry.name))
        if writer is None or not writer_gone(writer):
            continue
        try:
            status = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(status.st_mode) or status.st_mtime > deadline:
            continue
        remove_temporary(Path(entry.path))
        removed.append(Path(entry.path))
        logger.info("removed %s: its writer (pid %d) ended before it finished", entry.path, writer.pid)
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
