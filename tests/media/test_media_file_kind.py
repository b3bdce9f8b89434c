"""The file sniffer is media's: faceset and verify both decide a file's kind through
``likeness.media.file_kind`` (faceset imported it from ``likeness.verify``, a layer above it)."""

from __future__ import annotations

import ast
from pathlib import Path

import likeness.faceset
import likeness.media


def _imported_modules(package_folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for source in sorted(package_folder.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        names = found.setdefault(source.name, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return found


def test_faceset_and_media_import_nothing_from_verify() -> None:
    for package in (likeness.faceset, likeness.media):
        for module, names in _imported_modules(Path(package.__file__).parent).items():
            upward = sorted(n for n in names if n == "likeness.verify" or n.startswith("likeness.verify."))
            assert not upward, (package.__name__, module, upward)


def test_verify_decides_with_the_media_sniffer() -> None:
    from likeness.media import file_kind
    from likeness.verify import pipeline

    assert pipeline.sniff is file_kind.sniff
    assert pipeline.MEDIA_SUFFIXES is file_kind.MEDIA_SUFFIXES


def test_transport_streams_are_told_by_three_sync_bytes_not_one() -> None:
    from likeness.media.file_kind import SNIFF_BYTES, sniff

    def packets(size: int, offset: int) -> bytes:
        stream = bytearray(SNIFF_BYTES)
        for start in range(offset, SNIFF_BYTES, size):
            stream[start] = 0x47
        return bytes(stream)

    assert sniff(packets(188, 0)).container == "mpegts"
    assert sniff(packets(192, 4)).container == "mpegts"  # .m2ts/.mts: a timestamp before each packet
    assert sniff(b"Good morning, this is a text file. " * 20).media_type is None
    assert sniff(packets(188, 0)[:300]).media_type is None  # too short to show three packets
    assert sniff(b"FLV\x01\x01\x00\x00\x00\x09" + bytes(20)).container == "flv"
    assert sniff(b"\x00\x00\x01\xba\x44" + bytes(20)).container == "mpeg-ps"
