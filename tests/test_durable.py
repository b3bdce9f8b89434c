"""The one way files are written whole (``likeness.durable``): fsynced under a temporary beside
the file, renamed or linked into place, the folder fsynced; nothing left over on any failure."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from likeness.durable import atomic_path, remove_stale_temporaries, write_atomic
from likeness.errors import ConfigError
from tests.durability import assert_written_whole, failing_placements, hidden_files, watch_disk


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
    """A temporary named ``.<name>.<random>.part`` after such a name is too long for the file
    system (ENAMETOOLONG): 85 Hangul letters are 255 bytes."""
    path = tmp_path / ("가" * 81 + ".png")
    assert len(os.fsencode(path.name)) == 247
    write_atomic(path, b"png")
    assert path.read_bytes() == b"png" and hidden_files(tmp_path) == []
    (tmp_path / f".{'가' * 80}.0badc0de.part").write_bytes(b"torn")  # its temporary's name, cut
    assert [p.name for p in remove_stale_temporaries(path)] == [f".{'가' * 80}.0badc0de.part"]
