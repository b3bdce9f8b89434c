"""What a media file is, from its bytes rather than its name: the media suffixes the product
takes, and container sniffing (extract, enrolment, verify and uploads decide by this)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from likeness.digests import leading_bytes

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif"})
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".3gp", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv"}
)
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
#: Image containers that may hold an animation, which is sampled as a clip.
ANIMATED_CONTAINERS = frozenset({"gif", "png", "webp"})
#: What the product reads, as a person names the formats (problem messages list them).
READ_FORMATS = "JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, MP4/MOV/3GP, Matroska/WebM, AVI, MPEG-TS, MPEG-PS, FLV"
#: How many leading bytes ``sniff`` needs: an MPEG transport stream shows itself by its sync
#: byte at three packet starts (188-byte packets, or 192 with a Blu-ray timestamp before each).
SNIFF_BYTES = 512
_TS_PACKETS = ((0, 188), (4, 192))
#: ISOBMFF brands of AVIF (AV1 pictures, which Pillow decodes) ...
AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: ... and of HEIF/HEIC (HEVC pictures: Pillow needs a plugin this product does not ship).
HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})


@dataclass(frozen=True)
class FileKind:
    """What the first bytes say a file is (extensions lie)."""

    media_type: str | None  # "image" | "video" | None
    container: str | None


def sniff(head: bytes) -> FileKind:
    """Classify a file from its first ``SNIFF_BYTES`` bytes (fewer when the file is shorter).

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8)).container
    'png'
    """
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind("image", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind("image", "png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FileKind("image", "webp")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return FileKind("video", "avi")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FileKind("image", "gif")
    if head[:2] == b"BM":
        return FileKind("image", "bmp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return FileKind("image", "tiff")
    if head[4:8] == b"ftyp":
        return _isobmff_kind(head)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return FileKind("video", "matroska")
    if head[:4] == b"\x00\x00\x01\xba":
        return FileKind("video", "mpeg-ps")
    if head[:4] == b"FLV\x01":
        return FileKind("video", "flv")
    if _transport_stream(head):
        return FileKind("video", "mpegts")
    return FileKind(None, None)


def _transport_stream(head: bytes) -> bool:
    """Whether ``head`` begins an MPEG transport stream: the sync byte 0x47 at the start of three
    packets in a row (one would match any text beginning with "G")."""
    return any(
        len(head) > offset + 2 * size and all(head[offset + k * size] == 0x47 for k in range(3))
        for offset, size in _TS_PACKETS
    )


def sniff_file(path: Path) -> FileKind:
    """What the first bytes of ``path`` say it is (names lie). A FIFO or device says nothing:
    opened without blocking (a FIFO with no writer would wait forever) and not read, so its
    suffix's reader names it "not a regular file"."""
    return sniff(leading_bytes(path, SNIFF_BYTES))


def _isobmff_kind(head: bytes) -> FileKind:
    """An ``ftyp`` box: AVIF when its major or a compatible brand (as far as ``head`` goes) is
    AVIF's, HEIC (unreadable, ``media_type`` None) for the other HEIF brands, else MP4/MOV."""
    box_end = min(len(head), max(16, int.from_bytes(head[:4], "big")))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    if brands & AVIF_BRANDS:
        return FileKind("image", "avif")
    if head[8:12] in HEIC_BRANDS:
        return FileKind(None, "heic")
    return FileKind("video", "mp4")


def unreadable_reason(kind: FileKind) -> str:
    """Why a file of ``kind`` (``media_type`` None) is not read, and what to do instead."""
    if kind.container == "heic":
        return (
            "a HEIC/HEIF picture (an iPhone's default format), which this product cannot decode: "
            "export it as JPEG (or share it as 'Most Compatible') and check that"
        )
    return f"not an image or video this product reads (unrecognised file signature; it reads {READ_FORMATS})"
