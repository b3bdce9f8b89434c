"""Video and audio codec I/O through PyAV: probe, stream frames, encode H.264 + copied audio.

Conventions:

* Frames are ``uint8`` RGB ``(H, W, 3)`` *as stored* in the file. Phone footage often stores
  landscape pixels plus a display rotation; :attr:`VideoInfo.rotation` gives it (degrees,
  counter-clockwise, one of 0/90/180/270) and ``iter_video_frames(..., autorotate=True)`` turns
  frames upright (then pass ``rotation=0`` to :class:`VideoEncoder`). Without autorotate, pass
  ``rotation=info.rotation`` to the encoder to keep the original display orientation.
* YUV -> RGB uses the matrix the stream declares (BT.709 when it declares none and is HD, else
  BT.601); the encoder converts RGB -> YUV with BT.709 (limited range) and tags the stream so.
* Timestamps are seconds (``pts_s``) on the source stream's clock.

Example::

    >>> from likeness.media import probe_video, iter_video_frames, VideoEncoder
    >>> info = probe_video("clip.mp4")                                   # doctest: +SKIP
    >>> with VideoEncoder("out.mp4", width=info.width, height=info.height,
    ...                   fps=info.frame_rate, audio_source="clip.mp4") as enc:  # doctest: +SKIP
    ...     for frame in iter_video_frames("clip.mp4"):
    ...         enc.write(frame.rgb, pts_s=frame.pts_s)
"""

from __future__ import annotations

import bisect
import glob
import math
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import av.error
import cv2
import numpy as np

from likeness.errors import MediaError
from likeness.media.images import require_rgb

__all__ = [
    "COPYABLE_AUDIO_CODECS",
    "DEFAULT_MAX_VIDEO_PIXELS",
    "ColourTags",
    "VideoEncoder",
    "remove_stale_parts",
    "VideoFrame",
    "VideoInfo",
    "iter_video_frames",
    "probe_video",
    "sample_times",
    "sample_video_frames",
    "transcode",
]

# Audio codecs the MP4 muxer carries as-is; anything else (PCM, Vorbis, ...) is re-encoded to AAC.
COPYABLE_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})

# 64 MP covers 8K (33 MP) with margin; one RGB frame at the limit is 192 MB.
DEFAULT_MAX_VIDEO_PIXELS = 64_000_000

# Output clock: 1/90000 s represents 24, 25, 30, 50, 60 and the NTSC 1000/1001 rates exactly.
_ENCODER_TIME_BASE = Fraction(1, 90_000)

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

_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, ValueError)


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


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What :func:`probe_video` learns from the container header and the first frame.

    ``width``/``height`` are the stored pixel size; ``rotation`` is the display rotation in
    degrees counter-clockwise (0, 90, 180 or 270). ``fps`` is a float for arithmetic,
    ``frame_rate`` the exact rational (None if the container does not say). ``frame_count`` is
    the container's count (None when the format does not record it). Colour fields use FFmpeg's
    names (e.g. ``"bt709"``, ``"tv"``) or None when unspecified.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_rate: Fraction | None
    frame_count: int | None
    duration_s: float
    has_audio: bool
    rotation: int
    codec: str
    pix_fmt: str | None
    container_format: str
    bit_rate: int | None
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_duration_s: float | None
    color_primaries: str | None
    color_trc: str | None
    colorspace: str | None
    color_range: str | None

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` as shown to a viewer, after applying ``rotation``."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One decoded frame: ``index`` counts decoded frames from 0 in presentation order,
    ``pts_s`` is its presentation time in seconds, ``rgb`` is ``uint8 (H, W, 3)``."""

    index: int
    pts_s: float
    rgb: np.ndarray


# --------------------------------------------------------------------------------------------
# reading


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")


def _open_input(path: Path) -> av.container.InputContainer:
    _check_readable(path)
    try:
        return av.open(str(path), mode="r")
    except av.error.InvalidDataError as exc:
        raise MediaError(path, "not a readable media file (corrupt or unsupported format)") from exc
    except PermissionError as exc:
        raise MediaError(path, "permission denied") from exc
    except _AV_ERRORS as exc:
        raise MediaError(path, f"cannot open media: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    # FFmpegError's str() carries an errno and the C function name; the message is enough.
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip() or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    for stream in container.streams.video:
        # Cover art in audio files is an attached picture, not a video track.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if not container.streams:
        raise MediaError(path, "corrupt or unsupported file: no media streams found")
    raise MediaError(path, "no video stream")


def _normalise_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) * 90 % 360


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's size, rate, length, rotation, codecs and colour tags.

    Decodes at most the first frame (the display rotation lives in its side data). Raises
    :class:`MediaError` for missing, empty, corrupt or unsupported files, files without a video
    stream (``"no video stream"``), and video streams with no decodable frame.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        context = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        frame_rate = Fraction(rate) if rate else None
        fps = float(frame_rate) if frame_rate else 0.0

        duration_s = _seconds(stream.duration, stream.time_base)
        if duration_s is None and container.duration is not None:
            duration_s = container.duration / av.time_base
        frame_count = int(stream.frames) if stream.frames and stream.frames > 0 else None

        audio = next(iter(container.streams.audio), None)
        audio_duration_s = None
        if audio is not None:
            audio_duration_s = _seconds(audio.duration, audio.time_base)

        first = _first_frame(container, stream, path)
        rotation = _normalise_rotation(first.rotation)
        primaries = context.color_primaries or first.color_primaries
        trc = context.color_trc or first.color_trc
        colorspace = context.colorspace if context.colorspace not in (None, 2) else first.colorspace
        color_range = context.color_range or first.color_range

        return VideoInfo(
            path=str(path),
            width=int(context.width or first.width),
            height=int(context.height or first.height),
            fps=fps,
            frame_rate=frame_rate,
            frame_count=frame_count,
            duration_s=float(duration_s or 0.0),
            has_audio=audio is not None,
            rotation=rotation,
            codec=context.name,
            pix_fmt=context.pix_fmt,
            container_format=container.format.name,
            bit_rate=int(bit_rate) if (bit_rate := getattr(stream, "bit_rate", None)) else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            audio_channels=int(audio.codec_context.channels) if audio is not None else None,
            audio_duration_s=audio_duration_s,
            color_primaries=_PRIMARIES_NAMES.get(int(primaries or 2)),
            color_trc=_TRC_NAMES.get(int(trc or 2)),
            colorspace=_COLORSPACE_NAMES.get(int(colorspace if colorspace is not None else 2)),
            color_range=_RANGE_NAMES.get(int(color_range or 0)),
        )
    finally:
        container.close()


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> av.VideoFrame:
    try:
        for packet_number, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return frame
            if packet_number > 256:
                break
    except _AV_ERRORS as exc:
        raise MediaError(path, f"corrupt video: {_describe(exc)}") from exc
    raise MediaError(path, "video stream has no decodable frame")


def _rgb_options(frame: av.VideoFrame, max_side: int | None) -> dict[str, Any]:
    """Reformat arguments that convert ``frame`` to RGB with the matrix its stream declares."""
    options: dict[str, Any] = {"format": "rgb24"}
    if frame.format.name not in ("rgb24", "bgr24", "rgba", "bgra", "gbrp", "gray"):
        matrix = _SWS_MATRIX.get(int(frame.colorspace))
        if matrix is None:
            # Unspecified: what players assume (HD -> BT.709, SD -> BT.601).
            matrix = "ITU709" if frame.height >= 720 else "ITU601"
        options["src_colorspace"] = matrix
        options["src_color_range"] = "JPEG" if int(frame.color_range) == 2 else "MPEG"
        if frame.format.name.startswith("yuvj"):
            options["src_color_range"] = "JPEG"
    if max_side is not None and max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        options["width"] = max(1, int(round(frame.width * scale)))
        options["height"] = max(1, int(round(frame.height * scale)))
        options["interpolation"] = "AREA"
    return options


def _to_rgb(frame: av.VideoFrame, *, max_side: int | None, autorotate: bool) -> np.ndarray:
    rgb: np.ndarray = frame.to_ndarray(**_rgb_options(frame, max_side))
    if autorotate:
        quarter_turns = _normalise_rotation(frame.rotation) // 90
        if quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))
    return rgb


def iter_video_frames(
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    step: int = 1,
    max_side: int | None = None,
    autorotate: bool = False,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
) -> Iterator[VideoFrame]:
    """Stream frames ``start, start + step, ...`` of ``path`` as :class:`VideoFrame`.

    Memory stays bounded (one decoded frame plus the decoder's reference frames). ``start``
    lets a resumed job skip finished frames: on a constant-frame-rate stream it seeks to the
    keyframe before ``start`` and decodes forward; otherwise it decodes and discards the frames
    before ``start`` (no RGB conversion). ``max_side`` downscales so ``max(H, W) <= max_side``;
    ``autorotate`` turns frames upright using the stream's display rotation.

    Errors: :class:`MediaError` before the first frame for missing/empty/corrupt files,
    audio-only files (``"no video stream"``) and frames above ``max_pixels``. A file that breaks
    part-way (corrupt packets, or truncated so that frames the header promises are missing)
    yields every frame that decoded and *then* raises :class:`MediaError` whose reason names
    the frame index where decoding stopped; callers keep the frames they got and report it.
    """
    path = Path(path)
    if not isinstance(start, int) or start < 0:
        raise MediaError(path, f"start must be an integer >= 0, got {start!r}")
    if not isinstance(step, int) or step < 1:
        raise MediaError(path, f"step must be an integer >= 1, got {step!r}")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 2):
        raise MediaError(path, f"max_side must be an integer >= 2 or None, got {max_side!r}")
    # Cheap checks now, so a missing or empty file fails at the call, not at the first next().
    _check_readable(path)
    return _iter_frames(
        path, start=start, step=step, max_side=max_side, autorotate=autorotate, max_pixels=max_pixels, allow_seek=True
    )


def _bounded_video_stream(
    container: av.container.InputContainer, path: Path, max_pixels: int
) -> av.video.stream.VideoStream:
    """The video stream, refused before decoding when one frame would exceed ``max_pixels``."""
    stream = _video_stream(container, path)
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > max_pixels:
        raise MediaError(path, f"video frame too large: {width}x{height} exceeds {max_pixels} pixels")
    return stream


def _iter_frames(
    path: Path,
    *,
    start: int,
    step: int,
    max_side: int | None,
    autorotate: bool,
    max_pixels: int,
    allow_seek: bool,
) -> Iterator[VideoFrame]:
    container = _open_input(path)
    try:
        stream = _bounded_video_stream(container, path, max_pixels)
        stream.thread_type = "AUTO"
        rate = stream.average_rate
        expected = int(stream.frames) if stream.frames and stream.frames > 0 else None
        time_base = stream.time_base
        origin = stream.start_time or 0

        def index_of(frame: av.VideoFrame) -> int | None:
            if frame.pts is None or rate is None or time_base is None:
                return None
            return int(round(float((frame.pts - origin) * time_base * rate)))

        seek_ok = allow_seek and start > 0 and rate is not None and time_base is not None and _looks_cfr(stream)
        if seek_ok and rate is not None and time_base is not None:
            target_pts = origin + int(math.floor((start - 0.5) / rate / time_base))
            try:
                container.seek(max(target_pts, origin), stream=stream, backward=True, any_frame=False)
            except _AV_ERRORS:
                seek_ok = False
                container.seek(origin, stream=stream, backward=True)

        next_index: int | None = None if seek_ok else 0
        last_index = -1
        last_pts_s = 0.0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if next_index is None:
                        # After a seek, the first decoded frame's timestamp gives its index;
                        # from there on we count, which is what a full decode would number.
                        located = index_of(frame)
                        if located is None or located > start:
                            raise _SeekMissed()
                        next_index = located
                    index = next_index
                    next_index += 1
                    last_index = index
                    pts_s = float(frame.time) if frame.time is not None else index / float(rate or 1)
                    last_pts_s = pts_s
                    if index < start or (index - start) % step:
                        continue
                    if frame.width * frame.height > max_pixels:
                        raise MediaError(path, f"video frame too large: {frame.width}x{frame.height}")
                    yield VideoFrame(
                        index=index, pts_s=pts_s, rgb=_to_rgb(frame, max_side=max_side, autorotate=autorotate)
                    )
        except _SeekMissed:
            container.close()
            # The index could not be located from timestamps: fall back to decode-and-skip.
            yield from _iter_frames(
                path,
                start=start,
                step=step,
                max_side=max_side,
                autorotate=autorotate,
                max_pixels=max_pixels,
                allow_seek=False,
            )
            return
        except MediaError:
            raise
        except _AV_ERRORS as exc:
            raise MediaError(path, f"decoding stopped at frame {last_index + 1}: {_describe(exc)}") from exc

        if expected is not None and last_index + 1 < expected - 1:
            duration_s = _seconds(stream.duration, time_base)
            frame_s = 1.0 / float(rate) if rate else 0.0
            if duration_s is None or last_pts_s < duration_s - 2 * frame_s:
                raise MediaError(
                    path,
                    f"truncated or corrupt: decoding stopped at frame {last_index + 1} "
                    f"of {expected} (t={last_pts_s:.3f}s)",
                )
    finally:
        container.close()


class _SeekMissed(Exception):
    """Internal: timestamps after a seek did not identify the frame index."""


# Sampling: a frame counts for a target time if it starts at most half a frame before it.
_SAMPLE_TOLERANCE_FRAMES = 0.5


def sample_times(duration_s: float, *, every_s: float = 1.0, max_frames: int = 16) -> list[float]:
    """Target times (seconds from the first frame) for sparse sampling of a clip.

    About one target every ``every_s`` seconds, at most ``max_frames``, spread evenly over the
    whole clip: a 10 s clip gets ``0, 1, ..., 9``; a 600 s clip gets 16 targets 37.5 s apart.
    A clip of unknown or zero length gets the single target 0.

    >>> sample_times(10.0)
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    >>> sample_times(600.0)[:3]
    [0.0, 37.5, 75.0]
    """
    if not math.isfinite(duration_s) or duration_s <= 0:
        return [0.0]
    interval = max(float(every_s), duration_s / max_frames)
    count = min(max_frames, max(1, int(math.floor(duration_s / interval + 1e-9))))
    return [k * interval for k in range(count)]


def _keyframe_times(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> list[float] | None:
    """Presentation times (s, on the stream clock) of the keyframes, from a demux-only pass.

    Demuxing reads packets without decoding them, which costs a small fraction of decoding.
    None when a keyframe has no timestamp (then seeking cannot be planned).
    """
    times: list[float] = []
    time_base = stream.time_base
    try:
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.size:
                if packet.pts is None or time_base is None:
                    return None
                times.append(float(packet.pts * time_base))
    except _AV_ERRORS:
        # Damage shows up again (with frames before it kept) when decoding; the keyframes
        # found up to here are still a valid plan for that part.
        pass
    return sorted(times) or None


def sample_video_frames(
    path: str | os.PathLike[str],
    *,
    every_s: float = 1.0,
    max_frames: int = 16,
    keyframes_only: bool = False,
    max_side: int | None = None,
    autorotate: bool = False,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
) -> Iterator[VideoFrame]:
    """Sparse frames of ``path``: about one every ``every_s`` seconds, at most ``max_frames``,
    spread evenly over the whole clip (targets from :func:`sample_times`), in time order.

    Unlike ``iter_video_frames(step=...)``, which decodes every frame to keep one in ``step``,
    this decodes only what the targets need. A demux-only pass finds the keyframes; for each
    target the decoder seeks to the keyframe before it when that keyframe lies beyond what was
    already decoded (else it decodes forward), and frames no other frame references are not
    decoded at all (``skip_frame="NONREF"``). Each target yields the first decoded frame that
    starts at most half a frame before it, so a yielded frame can be a few frames after its
    target (``pts_s`` is the frame's true time); a target whose frame was already yielded for
    the previous target is skipped. ``keyframes_only=True`` decodes keyframes alone (the
    cheapest; for streams with long groups of pictures this yields fewer frames than targets).
    ``VideoFrame.index`` numbers the yielded frames 0, 1, ... (not the frame's position in the
    stream).

    Errors are those of :func:`iter_video_frames`: :class:`MediaError` before the first frame
    for missing, empty, corrupt, audio-only or too-large input; damage part-way yields the
    frames decoded before it and then raises :class:`MediaError` naming the time where
    decoding stopped.

    Example::

        >>> [round(f.pts_s, 2) for f in sample_video_frames("clip.mp4")]   # doctest: +SKIP
        [0.0, 1.0, 2.0, 3.0]
    """
    path = Path(path)
    if not isinstance(every_s, (int, float)) or not math.isfinite(every_s) or every_s <= 0:
        raise MediaError(path, f"every_s must be a positive number of seconds, got {every_s!r}")
    if not isinstance(max_frames, int) or max_frames < 1:
        raise MediaError(path, f"max_frames must be an integer >= 1, got {max_frames!r}")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 2):
        raise MediaError(path, f"max_side must be an integer >= 2 or None, got {max_side!r}")
    _check_readable(path)
    return _sample_frames(
        path,
        every_s=float(every_s),
        max_frames=max_frames,
        keyframes_only=bool(keyframes_only),
        max_side=max_side,
        autorotate=autorotate,
        max_pixels=max_pixels,
    )


def _sample_frames(
    path: Path,
    *,
    every_s: float,
    max_frames: int,
    keyframes_only: bool,
    max_side: int | None,
    autorotate: bool,
    max_pixels: int,
) -> Iterator[VideoFrame]:
    container = _open_input(path)
    try:
        stream = _bounded_video_stream(container, path, max_pixels)
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.04
        origin_s = float(stream.start_time * time_base) if stream.start_time is not None and time_base else 0.0
        duration_s = _seconds(stream.duration, time_base)
        if duration_s is None and container.duration is not None:
            duration_s = container.duration / av.time_base
        duration_s = float(duration_s or 0.0)
        targets = [origin_s + t for t in sample_times(duration_s, every_s=every_s, max_frames=max_frames)]
        keyframes = _keyframe_times(container, stream) if time_base is not None else None
    except BaseException:
        container.close()
        raise
    # The keyframe scan read the packets; decode from a fresh demuxer at the start.
    container.close()
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        # Frames nothing refers to are never needed to reach a later target.
        stream.codec_context.skip_frame = "NONKEY" if keyframes_only else "NONREF"
        tolerance_s = _SAMPLE_TOLERANCE_FRAMES * frame_s
        decoded_until = -math.inf  # time of the last frame the decoder produced
        last_yielded_s = -math.inf
        yielded = 0
        missed_target: float | None = None
        frames: Iterator[av.VideoFrame] | None = None
        for target in targets:
            keyframe = None
            if keyframes is not None:
                position = bisect.bisect_right(keyframes, target + tolerance_s)
                keyframe = keyframes[position - 1] if position else None
            # Keyframes only: the keyframe at or before the target stands for it.
            wanted = keyframe if keyframes_only and keyframe is not None else target
            if wanted <= last_yielded_s + tolerance_s:
                continue  # the frame already yielded is this target's frame too
            if frames is None:
                frames = _decoded(container, stream)
            elif keyframe is not None and time_base is not None and keyframe > decoded_until + tolerance_s:
                # Everything between what was decoded and the keyframe before the target is
                # skipped: a seek (decoder flush) costs far less than decoding it.
                try:
                    container.seek(
                        int(round(keyframe / float(time_base))), stream=stream, backward=True, any_frame=False
                    )
                    frames = _decoded(container, stream)
                except _AV_ERRORS:
                    pass  # not seekable here: keep decoding forward
            chosen = None
            try:
                for frame in frames:
                    frame_time = float(frame.time) if frame.time is not None else decoded_until + frame_s
                    decoded_until = frame_time
                    if frame_time + tolerance_s >= wanted and frame_time > last_yielded_s:
                        chosen = frame
                        break
            except _AV_ERRORS as exc:
                raise MediaError(
                    path, f"decoding stopped after t={max(decoded_until, 0.0):.3f}s: {_describe(exc)}"
                ) from exc
            if chosen is None:
                missed_target = wanted
                break  # the stream ended before this target
            if chosen.width * chosen.height > max_pixels:
                raise MediaError(path, f"video frame too large: {chosen.width}x{chosen.height}")
            last_yielded_s = decoded_until
            yield VideoFrame(
                index=yielded, pts_s=decoded_until, rgb=_to_rgb(chosen, max_side=max_side, autorotate=autorotate)
            )
            yielded += 1
        if yielded == 0:
            raise MediaError(path, "video stream has no decodable frame")
        end_s = origin_s + duration_s - 2 * frame_s
        if not keyframes_only and missed_target is not None and duration_s and missed_target < end_s:
            raise MediaError(
                path, f"truncated or corrupt: no frame after t={decoded_until:.3f}s of a {duration_s:.3f}s stream"
            )
    finally:
        container.close()


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    for packet in container.demux(stream):
        yield from packet.decode()


def _looks_cfr(stream: av.video.stream.VideoStream) -> bool:
    average, base = stream.average_rate, stream.base_rate
    if not average or not base:
        return False
    return abs(float(average) - float(base)) <= 0.001 * float(base)


# --------------------------------------------------------------------------------------------
# writing

_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _as_frame_rate(fps: Fraction | float | int, path: Path) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(10_000) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError) as exc:
        raise MediaError(path, f"fps must be a positive number, got {fps!r}") from exc
    if not rate > 0 or rate > 1000:
        raise MediaError(path, f"fps must be in (0, 1000], got {fps!r}")
    return rate


def remove_stale_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``.<name>.<random>.part`` temporaries a killed writer of ``path`` left beside it.

    Encoders (and ``likeness.media.images``) write through such a same-folder temporary, named
    with a random suffix, so a rerun never reuses a killed run's file. Returns what was removed.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            stale.unlink()
        except FileNotFoundError:
            continue
        removed.append(stale)
    return removed


class VideoEncoder:
    """Write RGB frames to an H.264 (libx264, yuv420p, limited range) MP4, optionally with the
    audio of ``audio_source``. Use as a context manager::

        with VideoEncoder("out.mp4", width=640, height=360, fps=25, audio_source="in.mp4") as enc:
            enc.write(rgb)                    # constant rate: frame n at n / fps
            enc.write(rgb, pts_s=1.234)       # or explicit times (keeps variable frame rate)

    * Odd sizes: yuv420p needs even dimensions, so an odd ``width``/``height`` is padded by one
      replicated column/row on the right/bottom; ``encoded_size`` says what was written and
      ``padded`` is True. Content keeps its pixel coordinates (top-left aligned).
    * Audio: the first audio stream of ``audio_source`` is copied packet-for-packet when MP4
      carries its codec (:data:`COPYABLE_AUDIO_CODECS`), else decoded and re-encoded to AAC;
      ``audio_mode`` is ``"copy"``, ``"aac"`` or None (no source or no audio stream). Audio past
      the end of the video is dropped so the tracks end together.
    * ``rotation`` (degrees counter-clockwise, a multiple of 90) is written as the display
      matrix, so players show the frames turned as the source was.
    * ``colour`` (:class:`ColourTags`, default BT.709) picks the RGB->YUV matrix and the
      primaries/transfer/matrix tags; pass ``ColourTags.of(probe_video(source))`` to keep a
      source's description.
    * ``deadzones`` (inter, intra), 0..32: x264's quantisation deadzones, used by the presets
      without trellis (``ultrafast`` to ``veryfast``). Smaller keeps more low-amplitude detail
      at a larger file; None keeps x264's (21, 11). The labelled writer lowers them for small
      frames so the invisible watermark survives (``docs/watermark.md``).
    * Atomic: frames go to a temporary file beside ``path`` that is renamed over ``path`` only
      when :meth:`close` succeeds; an exception inside the ``with`` block (or :meth:`abort`)
      leaves no output file. A process killed outright (SIGKILL, out of memory, power loss)
      never reaches that cleanup and leaves ``.<name>.<random>.part``; the next encoder for the
      same ``path`` removes it (:func:`remove_stale_parts`). The MP4 index is moved to the
      front (``faststart``) for streaming.
    * Overlapped: :meth:`write` converts the frame to YUV on the caller's thread and hands it to
      an encoding thread (H.264 and muxing), which keeps x264 fed while the caller prepares the
      next frame. A failure there is raised by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: Fraction | float | int,
        audio_source: str | os.PathLike[str] | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        rotation: int = 0,
        colour: ColourTags | None = None,
        deadzones: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= 16384:
                raise MediaError(self.path, f"{name} must be an integer in 1..16384, got {value!r}")
        if not isinstance(crf, (int, np.integer)) or not 0 <= int(crf) <= 51:
            raise MediaError(self.path, f"crf must be an integer in 0..51, got {crf!r}")
        if preset not in _X264_PRESETS:
            raise MediaError(self.path, f"preset must be one of {', '.join(_X264_PRESETS)}, got {preset!r}")
        if not isinstance(rotation, (int, np.integer)) or int(rotation) % 90:
            raise MediaError(self.path, f"rotation must be a multiple of 90 degrees, got {rotation!r}")
        if deadzones is not None and not (
            isinstance(deadzones, tuple)
            and len(deadzones) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 32 for v in deadzones)
        ):
            raise MediaError(self.path, f"deadzones must be (inter, intra) integers in 0..32, got {deadzones!r}")
        self.deadzones = None if deadzones is None else (int(deadzones[0]), int(deadzones[1]))
        self.width, self.height = int(width), int(height)
        self.frame_rate = _as_frame_rate(fps, self.path)
        self.rotation = int(rotation) % 360
        if colour is not None and not isinstance(colour, ColourTags):
            raise MediaError(self.path, f"colour must be ColourTags, got {type(colour).__name__}")
        self.colour = colour or ColourTags()
        self._primaries, self._trc, self._colorspace, self._matrix = self.colour.resolved()
        self.encoded_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.padded = self.encoded_size != (self.width, self.height)
        self.frames_written = 0
        self.audio_mode: str | None = None
        self._frame_ticks = float(1 / self.frame_rate / _ENCODER_TIME_BASE)
        self._next_pts_s = 0.0
        self._last_pts: int | None = None
        self._end_s = 0.0
        self._closed = False
        self._audio_input: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._pending_audio: av.Packet | None = None
        self._audio_in_stream: av.audio.stream.AudioStream | None = None
        self._audio_out_stream: av.audio.stream.AudioStream | None = None
        # Frames waiting for the encoding thread: a few are enough to absorb jitter, and each
        # 1080p YUV frame is 3 MB.
        self._pending: queue.Queue = queue.Queue(maxsize=4)
        self._worker: threading.Thread | None = None
        self._failure: BaseException | None = None

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_parts(self.path)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
            os.close(handle)
        except OSError as exc:
            raise MediaError(self.path, f"cannot create output: {exc.strerror or exc}") from exc
        self._temporary = Path(temporary)
        try:
            self._output = av.open(
                str(self._temporary), mode="w", format="mp4", container_options={"movflags": "+faststart"}
            )
            self._video = self._add_video_stream(int(crf), preset)
            if audio_source is not None:
                self._add_audio(Path(audio_source))
        except BaseException as exc:
            self.abort()
            if isinstance(exc, MediaError):
                raise
            if isinstance(exc, _AV_ERRORS):
                raise MediaError(self.path, f"cannot start encoding: {_describe(exc)}") from exc
            raise

    def _add_video_stream(self, crf: int, preset: str) -> av.video.stream.VideoStream:
        options = {"crf": str(crf), "preset": preset}
        if self.deadzones is not None:
            options["x264-params"] = "deadzone-inter={}:deadzone-intra={}".format(*self.deadzones)
        stream = self._output.add_stream("libx264", rate=self.frame_rate, options=options)
        stream.width, stream.height = self.encoded_size
        stream.pix_fmt = "yuv420p"
        context = stream.codec_context
        context.time_base = _ENCODER_TIME_BASE
        # Tag what _yuv_from_rgb produces, so decoders pick the same matrix back.
        context.colorspace = self._colorspace
        context.color_primaries = self._primaries
        context.color_trc = self._trc
        context.color_range = 1
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self._reformatter = av.video.reformatter.VideoReformatter()
        return stream

    def _add_audio(self, source: Path) -> None:
        self._audio_input = _open_input(source)
        in_stream = next(iter(self._audio_input.streams.audio), None)
        if in_stream is None:
            self._audio_input.close()
            self._audio_input = None
            return
        self._audio_in_stream = in_stream
        if in_stream.codec_context.name in COPYABLE_AUDIO_CODECS:
            self._audio_out_stream = self._output.add_stream_from_template(in_stream)
            self.audio_mode = "copy"
        else:
            context = in_stream.codec_context
            rate = int(context.sample_rate) if 8000 <= int(context.sample_rate or 0) <= 96000 else 48000
            layout = context.layout.name if 1 <= int(context.channels or 0) <= 8 else "stereo"
            self._audio_out_stream = self._output.add_stream("aac", rate=rate, layout=layout)
            self.audio_mode = "aac"
        self._audio_packets = iter(self._audio_input.demux(in_stream))

    # -- frames -----------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, *, pts_s: float | None = None, luma_offset: np.ndarray | None = None) -> None:
        """Encode one RGB ``uint8 (height, width, 3)`` frame.

        Without ``pts_s`` the frame follows the previous one by ``1 / fps``; with it, the frame
        is shown at ``pts_s`` seconds (must increase by at least 1/90000 s per frame).
        ``luma_offset``: int16 ``(height, width)`` levels added (with saturation) to the Y plane
        after the RGB->YUV conversion; the labelled writer marks frames this way
        (``WatermarkEmbedder.luma_offset``).
        """
        if self._closed:
            raise MediaError(self.path, "encoder is closed")
        try:
            require_rgb(rgb, name=f"frame {self.frames_written}")
        except MediaError as exc:
            raise MediaError(self.path, exc.reason) from exc
        if rgb.shape[:2] != (self.height, self.width):
            raise MediaError(
                self.path,
                f"frame {self.frames_written}: expected shape ({self.height}, {self.width}, 3), got {rgb.shape}",
            )
        time_s = self._next_pts_s if pts_s is None else float(pts_s)
        if not math.isfinite(time_s):
            raise MediaError(self.path, f"frame {self.frames_written}: pts_s must be finite, got {pts_s!r}")
        pts = int(round(time_s / float(_ENCODER_TIME_BASE)))
        if self._last_pts is not None and pts <= self._last_pts:
            raise MediaError(
                self.path,
                f"frame {self.frames_written}: timestamps must increase "
                f"(got {time_s:.6f}s after {self._last_pts * float(_ENCODER_TIME_BASE):.6f}s)",
            )
        if luma_offset is not None and (
            not isinstance(luma_offset, np.ndarray)
            or luma_offset.dtype != np.int16
            or luma_offset.shape != (self.height, self.width)
        ):
            got = (
                f"{luma_offset.dtype} {luma_offset.shape}"
                if isinstance(luma_offset, np.ndarray)
                else type(luma_offset).__name__
            )
            raise MediaError(
                self.path,
                f"frame {self.frames_written}: luma_offset must be int16 ({self.height}, {self.width}), got {got}",
            )
        self._raise_failure()
        frame = self._yuv_from_rgb(rgb)
        if luma_offset is not None:
            _add_to_luma(frame, luma_offset)
        frame.pts = pts
        frame.time_base = _ENCODER_TIME_BASE
        frame.duration = int(round(self._frame_ticks))
        self._last_pts = pts
        self._next_pts_s = time_s + float(1 / self.frame_rate)
        self._end_s = max(self._end_s, self._next_pts_s)
        if self._worker is None:
            self._worker = threading.Thread(target=self._encode_pending, name="video-encode", daemon=True)
            self._worker.start()
        self._pending.put((frame, time_s, self.frames_written))
        self.frames_written += 1

    def _encode_pending(self) -> None:
        """Encoding thread: H.264-encode and mux queued frames (and the audio up to them) until
        the ``None`` that close/abort sends. After a failure it only drains the queue, so a
        writer blocked on a full queue is always released."""
        while True:
            item = self._pending.get()
            if item is None:
                return
            if self._failure is not None or self._closed:
                continue
            frame, time_s, index = item
            try:
                self._output.mux(self._video.encode(frame))
                self._pump_audio(until_s=time_s)
            except _AV_ERRORS as exc:
                self._failure = MediaError(self.path, f"encoding failed at frame {index}: {_describe(exc)}")
            except BaseException as exc:  # raised again on the caller's thread
                self._failure = exc

    def _finish_pending(self) -> None:
        """Wait until every queued frame is encoded (or dropped after a failure)."""
        if self._worker is not None:
            self._pending.put(None)
            self._worker.join()
            self._worker = None

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure = self._failure
            self.abort()
            raise failure

    def _yuv_from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        if self.padded:
            rgb = np.pad(
                rgb,
                ((0, self.encoded_size[1] - self.height), (0, self.encoded_size[0] - self.width), (0, 0)),
                mode="edge",
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        # PyAV takes a colorspace name too; its stub says int only.
        return self._reformatter.reformat(
            frame,
            format="yuv420p",
            dst_colorspace=self._matrix,  # type: ignore[arg-type]
            dst_color_range="MPEG",
        )

    # -- audio ------------------------------------------------------------------------------

    def _next_audio_packet(self) -> av.Packet | None:
        if self._pending_audio is not None:
            packet, self._pending_audio = self._pending_audio, None
            return packet
        if self._audio_packets is None:
            return None
        try:
            return next(self._audio_packets)
        except StopIteration:
            self._audio_packets = None
            return None

    def _pump_audio(self, *, until_s: float, final: bool = False) -> None:
        """Mux source audio up to ``until_s`` so the file stays interleaved."""
        if self._audio_out_stream is None:
            return
        while True:
            packet = self._next_audio_packet()
            if packet is None:
                if final and self.audio_mode == "aac":
                    self._output.mux(self._audio_out_stream.encode(None))
                return
            start_s = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if start_s is not None and start_s >= self._end_s and final:
                # Past the end of the video: drop the rest.
                self._audio_packets = None
                continue
            if start_s is not None and start_s > until_s and not final:
                self._pending_audio = packet
                return
            if self.audio_mode == "copy":
                if packet.dts is None or packet.size == 0:
                    continue
                packet.stream = self._audio_out_stream
                self._output.mux(packet)
            else:
                for audio_frame in packet.decode():
                    if not isinstance(audio_frame, av.AudioFrame):  # an audio packet decodes to audio
                        continue
                    audio_frame.pts = None
                    self._output.mux(self._audio_out_stream.encode(audio_frame))

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoder, finish the audio, and move the file into place. Returns ``path``."""
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise MediaError(self.path, "no frames were written")
        self._finish_pending()
        self._raise_failure()
        try:
            self._output.mux(self._video.encode(None))
            self._pump_audio(until_s=self._end_s, final=True)
            self._output.close()
            if self._audio_input is not None:
                self._audio_input.close()
            os.replace(self._temporary, self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, _AV_ERRORS):
                raise MediaError(self.path, f"finishing the video failed: {_describe(exc)}") from exc
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop without producing an output file (the temporary file is removed)."""
        self._closed = True  # the encoding thread drops what is still queued
        if getattr(self, "_worker", None) is not None and self._worker is not threading.current_thread():
            self._finish_pending()
        for container in (getattr(self, "_output", None), self._audio_input):
            if container is not None:
                try:
                    container.close()
                except Exception:  # noqa: BLE001 - already failing; the temp file goes anyway
                    pass
        try:
            self._temporary.unlink()
        except (FileNotFoundError, AttributeError):
            pass

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _add_to_luma(frame: av.VideoFrame, offset: np.ndarray) -> None:
    """Add int16 ``offset`` (H, W) to the top-left of ``frame``'s 8-bit Y plane, in place, saturating."""
    plane = frame.planes[0]
    # A VideoPlane is a buffer (PyAV implements the buffer protocol; its stub does not declare it).
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)  # type: ignore[call-overload]
    region = luma[: offset.shape[0], : offset.shape[1]]
    result = cv2.add(region, offset, dst=region, dtype=cv2.CV_8U)
    if not np.shares_memory(result, luma):  # a copy would leave the frame unmarked
        raise MediaError(None, "could not add the luma offset to the frame in place")


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    crf: int = 20,
    preset: str = "veryfast",
    max_frames: int | None = None,
) -> int:
    """Decode ``src`` to RGB and encode it again with :class:`VideoEncoder` (timestamps,
    rotation, colour tags and audio kept; audio is trimmed to the video). Nothing else is done to the
    pixels, so its speed is the floor any per-frame render can reach. ``max_frames`` stops
    after that many frames. Returns the number of frames written."""
    if max_frames is not None and max_frames < 1:
        raise MediaError(src, f"max_frames must be >= 1 or None, got {max_frames!r}")
    info = probe_video(src)
    with VideoEncoder(
        dst,
        width=info.width,
        height=info.height,
        fps=info.frame_rate or Fraction(25),
        audio_source=src if info.has_audio else None,
        crf=crf,
        preset=preset,
        rotation=info.rotation,
        colour=ColourTags.of(info),
    ) as encoder:
        for frame in iter_video_frames(src):
            if max_frames is not None and encoder.frames_written >= max_frames:
                break
            encoder.write(frame.rgb, pts_s=frame.pts_s)
    return encoder.frames_written
