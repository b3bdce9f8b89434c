"""The one way files are written whole (``likeness.durable``): fsynced under a temporary beside
the file, renamed or linked into place, the folder fsynced; nothing left over on any failure."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from likeness.durable import (
    ORPHAN_AGE_S,
    atomic_path,
    remove_orphaned_temporaries,
    remove_stale_temporaries,
    temporary_writer,
    write_atomic,
)
from likeness.errors import ConfigError
from tests.durability import (
    Writer,
    assert_written_whole,
    failing_placements,
    hidden_files,
    untouched_for,
    watch_disk,
)


@pytest.fixture
def open_umask():
    """Umask 0: a temporary's permissions are then what the writer asked for, nothing narrows them."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_file_is_fsynced_under_a_temporary_then_placed_then_its_folder_fsynced(tmp_path: Path, monkeypatch):
    log = watch_disk(monkeypatch)
    path = write_atomic(tmp_path / "notes.json", b"{}")
    assert path.read_bytes() == b"{}"
    placement = assert_written_whole(log, path)
    assert placement.source.name.endswith(".part") and hidden_files(tmp_path) == []


def test_a_key_never_exists_wider_than_0600_not_even_as_its_temporary(tmp_path: Path, monkeypatch, open_umask):
    log = watch_disk(monkeypatch)
    path = write_atomic(tmp_path / "org.pem", b"secret", mode=0o600)
    assert assert_written_whole(log, path).mode == 0o600 and path.stat().st_mode & 0o777 == 0o600


def test_a_mode_is_exact_whatever_the_umask(tmp_path: Path):
    previous = os.umask(0o077)
    try:
        path = write_atomic(tmp_path / "ledger-head.json", b"{}", mode=0o644)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_a_write_failing_at_any_step_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch, interrupt):
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def broken_fsync(_fd: int) -> None:
        raise interrupt(errno.EIO, "Input/output error") if interrupt is OSError else interrupt()

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(interrupt):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and hidden_files(tmp_path) == []


def test_a_failure_raises_the_caller_s_error_naming_the_file(tmp_path: Path, monkeypatch):
    path = tmp_path / "gallery.json"
    failing_placements(monkeypatch)
    with pytest.raises(ConfigError, match=r"gallery.json: cannot write it \(Input/output error\)"):
        write_atomic(path, b"{}", error=lambda exc: ConfigError(f"{path}: cannot write it ({exc.strerror})"))
    assert list(tmp_path.iterdir()) == []


def test_a_block_that_raises_leaves_no_file_and_no_temporary(tmp_path: Path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "evidence.zip") as temporary:
        temporary.write_bytes(b"PK half a zip")
        raise RuntimeError("the zip writer failed")
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_refuses_an_existing_file_and_a_planted_link(tmp_path: Path):
    kept, victim = tmp_path / "holder.pem", tmp_path / "victim"
    kept.write_bytes(b"the holder's key")
    victim.write_bytes(b"untouched")
    (tmp_path / "planted.pem").symlink_to(victim)
    for path in (kept, tmp_path / "planted.pem"):
        with pytest.raises(FileExistsError):
            write_atomic(path, b"another key", mode=0o600, overwrite=False)
    assert kept.read_bytes() == b"the holder's key" and victim.read_bytes() == b"untouched"
    assert hidden_files(tmp_path) == []


def test_no_overwrite_without_hard_links_reserves_the_name(tmp_path: Path, monkeypatch):
    def no_links(*_args: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    path = write_atomic(tmp_path / "anchor.json", b"head", overwrite=False)
    assert path.read_bytes() == b"head" and hidden_files(tmp_path) == []
    with pytest.raises(FileExistsError):
        write_atomic(path, b"other head", overwrite=False)
    assert path.read_bytes() == b"head"


def test_a_killed_writer_s_temporaries_are_removed_and_only_theirs(tmp_path: Path):
    path = tmp_path / "checkpoint.pt"
    stale = [tmp_path / ".checkpoint.pt.0badc0de.part", tmp_path / ".checkpoint.pt.12345678.part"]
    others = [tmp_path / ".checkpoint.pt.0badc0de.tmp", tmp_path / ".other.pt.0badc0de.part"]
    for leftover in stale + others:
        leftover.write_bytes(b"torn")
    assert sorted(remove_stale_temporaries(path)) == stale
    assert all(p.exists() for p in others)


def test_a_file_whose_name_is_as_long_as_a_name_may_be_is_written(tmp_path: Path):
    """A temporary named ``.<name>.<random>.<writer>.part`` after such a name is too long for the
    file system (ENAMETOOLONG): 85 Hangul letters are 255 bytes."""
    path = tmp_path / ("가" * 81 + ".png")
    assert len(os.fsencode(path.name)) == 247
    write_atomic(path, b"png")
    assert path.read_bytes() == b"png" and hidden_files(tmp_path) == []
    with Writer(path, pid_digits=10) as writer:  # the longest writer a temporary's name may carry
        assert writer.temporary.name.startswith(f".{'가' * 73}.")
        assert len(os.fsencode(writer.temporary.name)) <= 255 and temporary_writer(writer.temporary) is not None
        assert remove_stale_temporaries(path) == [writer.temporary]


# -- temporaries of writers killed mid-write, in a folder many processes write into ---------------


def test_a_killed_writer_s_temporary_goes_and_a_live_writer_s_stays(tmp_path: Path):
    finished = [tmp_path / "clip-0.zip", tmp_path / "results.json"]
    for path in finished:
        write_atomic(path, b"finished")
    with Writer(tmp_path / "clip-1.zip") as killed, Writer(tmp_path / "clip-2.zip") as live:
        killed.kill()
        for writer in (killed, live):
            untouched_for(writer.temporary, ORPHAN_AGE_S + 60)
        assert remove_orphaned_temporaries(tmp_path) == [killed.temporary]
        assert live.temporary.read_bytes() == b"PK half a zip"
    assert all(path.read_bytes() == b"finished" for path in finished)


def test_a_killed_writer_s_temporary_stays_until_it_is_old(tmp_path: Path):
    """A pid read in another pid namespace under the same host name looks gone: the writer,
    alive, still touches its file, so a young temporary is never taken as orphaned."""
    with Writer(tmp_path / "clip.zip") as writer:
        writer.kill()
    untouched_for(writer.temporary, ORPHAN_AGE_S - 60)
    assert remove_orphaned_temporaries(tmp_path) == [] and writer.temporary.exists()
    assert remove_orphaned_temporaries(tmp_path, now=time.time() + 120) == [writer.temporary]


def test_temporaries_of_unknown_or_foreign_writers_stay(tmp_path: Path):
    with Writer(tmp_path / "clip.zip") as writer:
        writer.kill()
    name = writer.temporary.name  # .clip.zip.RANDOM.DOMAIN-PID.part
    domain = name.split(".")[-2].split("-")[0]
    foreign = tmp_path / name.replace(f".{domain}-", ".0badc0de-")  # another host's or pid namespace's
    unnamed = tmp_path / ".clip.zip.0badc0de.part"  # an earlier release's: names no writer
    folder, link = (tmp_path / name.replace("clip.zip", other) for other in ("folder.zip", "link.zip"))
    writer.temporary.rename(foreign)
    unnamed.write_bytes(b"torn")
    folder.mkdir()
    link.symlink_to(tmp_path / "elsewhere")
    for path in (foreign, unnamed, folder, link):
        untouched_for(path, ORPHAN_AGE_S + 60)
    assert remove_orphaned_temporaries(tmp_path) == []
    assert foreign.exists() and unnamed.exists() and folder.is_dir() and link.is_symlink()


def test_a_folder_that_is_not_there_has_no_orphans(tmp_path: Path):
    assert remove_orphaned_temporaries(tmp_path / "missing") == []


def test_a_killed_writer_not_yet_reaped_is_gone(tmp_path: Path):
    """A killed worker its parent has not waited for yet is a zombie: its pid still answers
    ``kill(pid, 0)``, but it writes nothing more."""
    import signal

    with Writer(tmp_path / "clip.zip") as writer:
        os.kill(writer.process.pid, signal.SIGKILL)
        given_up = time.monotonic() + 10
        while (Path(f"/proc/{writer.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
            assert time.monotonic() < given_up, "the killed writer never became a zombie"
            time.sleep(0.01)
        untouched_for(writer.temporary, ORPHAN_AGE_S + 60)
        assert remove_orphaned_temporaries(tmp_path) == [writer.temporary]
