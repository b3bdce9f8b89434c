"""Watch what a writer does on disk (``watch_disk``): which files it fsyncs and renames or links
onto which names, in order, and each temporary's permissions at that moment. ``assert_written_whole``
checks the one durable way to write a file: the bytes are fsynced under a temporary name beside
it, only then is the temporary renamed or linked onto the file, and then the folder is fsynced.
``failing_placements`` makes every rename and link fail, as on a full or failing disk."""

from __future__ import annotations

import errno
import os
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
