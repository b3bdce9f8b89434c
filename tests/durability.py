"""Watch what a writer does on disk (``watch_disk``): which files it fsyncs and renames or links
onto which names, in order, and each temporary's permissions at that moment. ``assert_written_whole``
checks the one durable way to write a file: the bytes are fsynced under a temporary name beside
it, only then is the temporary renamed or linked onto the file, and then the folder is fsynced.
``failing_placements`` makes every rename and link fail, as on a full or failing disk. ``Writer``
is a process in the middle of writing a file, to kill as an OOM kill does."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Placement:
    """A temporary renamed or linked onto ``target``: its permissions at that moment."""

    source: Path
    target: Path
    mode: int


@dataclass
class DiskLog:
    """In order: ``("fsync", path)`` and ``("place", Placement)`` events."""

    events: list[tuple[str, object]] = field(default_factory=list)

    def placements(self, target: Path) -> list[Placement]:
        return [p for kind, p in self.events if kind == "place" and isinstance(p, Placement) and p.target == target]

    def synced(self, path: Path) -> list[int]:
        """Positions of the fsyncs of ``path`` in :attr:`events`."""
        return [i for i, (kind, p) in enumerate(self.events) if kind == "fsync" and p == path]


def watch_disk(monkeypatch: pytest.MonkeyPatch) -> DiskLog:
    log = DiskLog()
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        log.events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def placing(real):  # noqa: ANN001, ANN202 - os.replace or os.link
        def place(source, target, *args, **kwargs):  # noqa: ANN001, ANN202
            mode = os.stat(source, follow_symlinks=False).st_mode & 0o777
            log.events.append(("place", Placement(Path(source).absolute(), Path(target).absolute(), mode)))
            return real(source, target, *args, **kwargs)

        return place

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", placing(real_replace))
    monkeypatch.setattr(os, "link", placing(real_link))
    return log


def assert_written_whole(log: DiskLog, path: Path) -> Placement:
    """``path`` came from a temporary beside it whose bytes were fsynced before it was placed,
    and the folder was fsynced after; returns that placement."""
    path = Path(path).absolute()
    placements = log.placements(path)
    assert placements, f"{path.name} was written in place, not renamed or linked from a temporary"
    placement = placements[-1]
    at = log.events.index(("place", placement))
    assert placement.source.parent == path.parent and placement.source.name.startswith("."), placement
    assert any(i < at for i in log.synced(placement.source)), f"{path.name}'s bytes were not fsynced before placing"
    assert any(i > at for i in log.synced(path.parent)), f"{path.parent} was not fsynced after placing {path.name}"
    return placement


def failing_placements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rename and hard link fails with EIO (after the temporary is written)."""

    def fail(source, target, *args, **kwargs):  # noqa: ANN001, ANN202
        raise OSError(errno.EIO, "Input/output error", str(target))

    monkeypatch.setattr(os, "replace", fail)
    monkeypatch.setattr(os, "link", fail)


def hidden_files(folder: Path) -> list[str]:
    """Names starting with a dot anywhere under ``folder`` (temporaries)."""
    return sorted(p.name for p in Path(folder).rglob(".*"))


_WRITER = """
import sys
from pathlib import Path
import likeness.durable as durable
if len(sys.argv) > 2:  # a pid of that many digits
    durable._writer_tag = lambda: f"{durable._pid_domain()}-{'9' * int(sys.argv[2])}"
with durable.atomic_path(Path(sys.argv[1])) as temporary:
    temporary.write_bytes(b"PK half a zip")
    print(temporary, flush=True)
    sys.stdin.read()  # until the test ends it
"""


class Writer:
    """A process in the middle of an ``atomic_path`` write of ``path`` (``temporary``), ended
    when the ``with`` block ends."""

    def __init__(self, path: Path, pid_digits: int | None = None) -> None:
        args = [str(path)] + ([str(pid_digits)] if pid_digits else [])
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.temporary = Path(self.process.stdout.readline().strip())
        assert self.temporary.is_file(), "the writer never made its temporary"

    def kill(self) -> None:
        """SIGKILL (an OOM kill): no ``finally`` runs and the temporary stays; then reaped."""
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def untouched_for(path: Path, seconds: float) -> None:
    """Set ``path``'s times ``seconds`` back (a link's own, not its target's)."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
