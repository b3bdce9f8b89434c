"""Colour tags of a video stream: FFmpeg's names for primaries, transfer and matrix, and the
swscale matrix the encoder converts RGB with (:class:`ColourTags`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from likeness.media.video.decode import VideoInfo


# FFmpeg's av_color_*_name() spellings, keyed by the AVCOL_* values PyAV exposes as ints.
_PRIMARIES_NAMES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
_TRC_NAMES = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}
_COLORSPACE_NAMES = {
    0: "gbr",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}
_RANGE_NAMES = {1: "tv", 2: "pc"}

# AVCOL_SPC_* -> swscale matrix names understood by VideoFrame.reformat(src_colorspace=...).
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


def _code_for(names: dict[int, str], name: str | None) -> int | None:
    return next((code for code, known in names.items() if known == name), None)


@dataclass(frozen=True, slots=True)
class ColourTags:
    """Colour description an encoded stream carries, in FFmpeg's names (None: unspecified).

    :class:`VideoEncoder` converts RGB to YUV with the matrix ``colorspace`` names and writes
    these tags, so a render keeps its source's description: an SD source in BT.601 stays BT.601
    instead of being relabelled BT.709 (its RGB values are in the source's primaries and
    transfer, which the tags must then keep naming). ``ColourTags.of(probe_video(path))``.
    """

    primaries: str | None = "bt709"
    trc: str | None = "bt709"
    colorspace: str | None = "bt709"

    @classmethod
    def of(cls, info: VideoInfo) -> ColourTags:
        """The tags of a probed source; unspecified ones become what decoding assumed for it
        (BT.709 from 720 lines up, else BT.601 as SMPTE 170M), so pixels round-trip."""
        assumed = "bt709" if info.height >= 720 else "smpte170m"
        return cls(info.color_primaries or assumed, info.color_trc or assumed, info.colorspace or assumed)

    def resolved(self) -> tuple[int, int, int, str]:
        """``(primaries, trc, colorspace)`` AVCOL codes and the swscale matrix for encoding.

        A matrix swscale cannot produce (or an unspecified one) becomes BT.709, and unknown or
        unspecified primaries/transfer become BT.709 too: the common case for HD, and never a
        tag that contradicts the matrix actually used.
        """
        space = _code_for(_COLORSPACE_NAMES, self.colorspace)
        if space not in _SWS_MATRIX:
            space = 1
        primaries = _code_for(_PRIMARIES_NAMES, self.primaries) or 1
        trc = _code_for(_TRC_NAMES, self.trc) or 1
        return primaries, trc, space, _SWS_MATRIX[space]
