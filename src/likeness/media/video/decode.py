"""Probe a video and stream its frames as RGB (:func:`probe_video`, :func:`iter_video_frames`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import av.error
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import Interpolation

from likeness.errors import MediaError
from likeness.media.video.budget import DecodeLimits, DecodeMeter, Interrupt, container_refusal
from likeness.media.video.colour import _COLORSPACE_NAMES, _PRIMARIES_NAMES, _RANGE_NAMES, _SWS_MATRIX, _TRC_NAMES
from likeness.media.video.deinterlace import Deinterlacer, deinterlacer_available

# 64 MP covers 8K (33 MP) with margin; one RGB frame at the limit is 192 MB.
DEFAULT_MAX_VIDEO_PIXELS = 64_000_000

_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What :func:`probe_video` learns from the container header and the first frame.

    ``width``/``height`` are the stored pixel size; ``rotation`` is the display rotation in
    degrees counter-clockwise (0, 90, 180 or 270); ``mirrored`` says the display matrix also
    flips the picture (front-camera and edited phone footage), which ``autorotate`` applies and
    an encoder cannot write back: write such frames upright, with rotation 0. ``fps`` is a float for arithmetic,
    ``frame_rate`` the exact rational (None if the container does not say). ``frame_count`` is
    the container's count (None when the format does not record it). Colour fields use FFmpeg's
    names (e.g. ``"bt709"``, ``"tv"``) or None when unspecified. ``field_order`` is None for
    progressive footage, else how its fields are stored (``"tt"``: top field first).
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
    mirrored: bool = False
    field_order: str | None = None  # interlaced: FFmpeg's "tt", "bb", "tb", "bt" ("interlaced": order unsaid)

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` as shown to a viewer, after applying ``rotation``."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One decoded frame: ``index`` counts decoded frames from 0 in presentation order,
    ``pts_s`` is its presentation time in seconds, ``rgb`` is ``uint8 (H, W, 3)``.
    ``display_matrix`` is the display matrix still to apply to ``rgb`` to show it (None when
    read with ``autorotate`` or when the stream has none): see :meth:`shown`."""

    index: int
    pts_s: float
    rgb: np.ndarray
    display_matrix: tuple[int, ...] | None = None

    def shown(self) -> np.ndarray:
        """``rgb`` as a player shows it (upright, unmirrored): what faces are looked for in,
        while a watermark is read from the stored pixels."""
        return show_as_displayed(self.rgb, self.display_matrix)

    def disputed_views(self) -> Iterator[np.ndarray]:
        """The other ways a player may show ``rgb`` under its display matrix (see
        :func:`disputed_views`): where a face missing from :meth:`shown` may be in plain sight."""
        return disputed_views(self.rgb, self.display_matrix)


def _check_max_side(path: Path, max_side: object) -> None:
    """``MediaError`` unless ``max_side`` (frames are downscaled to ``max(H, W) <= max_side``) is
    an integer >= 2 or ``None`` (kept as decoded)."""
    if max_side is not None and (not isinstance(max_side, int) or max_side < 2):
        raise MediaError(path, f"max_side must be an integer >= 2 or None, got {max_side!r}")


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
    if isinstance(exc, av.error.MemoryError):
        # FFmpeg's ENOMEM is mostly its own limits (streams per file, the largest buffer), not
        # the machine's memory, which "Cannot allocate memory" would make the reader think.
        return (
            "the decoder would not allocate what the file asks for (more streams than the decoder "
            "takes, or a buffer past its size limit)"
        )
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


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix (FFmpeg's nine int32s, row-major) or None."""
    side_data: Any = frame.side_data  # a SideDataContainer; PyAV's stub says a TypedDict
    try:
        data = bytes(side_data[SideDataType.DISPLAYMATRIX])
    except KeyError:
        return None
    return tuple(np.frombuffer(data[:36], dtype="<i4").tolist()) if len(data) >= 36 else None


def _mirrors(matrix: tuple[int, ...] | None) -> bool:
    """Whether ``matrix`` flips the picture (a negative determinant), besides turning it."""
    return matrix is not None and matrix[0] * matrix[4] - matrix[1] * matrix[3] < 0


def _rotation_of(matrix: tuple[int, ...]) -> float:
    """The matrix's rotation in degrees counter-clockwise (FFmpeg's ``av_display_rotation_get``)."""
    scale_x, scale_y = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if not scale_x or not scale_y:
        return 0.0
    return -math.degrees(math.atan2(matrix[1] / scale_y, matrix[0] / scale_x))


def show_as_displayed(stored: np.ndarray, matrix: tuple[int, ...] | None) -> np.ndarray:
    """``stored`` ``(H, W, C)`` as a player shows it under the display ``matrix``: FFmpeg's
    autorotate, whose rules players follow (a turn, a mirror or both; other angles go to the
    nearest quarter turn). A contiguous array; ``stored`` itself when there is nothing to apply."""
    if matrix is None:
        return stored
    return np.ascontiguousarray(_turned(stored, matrix))


def disputed_views(stored: np.ndarray, matrix: tuple[int, ...] | None) -> Iterator[np.ndarray]:
    """The quarter turns of ``stored`` other than :func:`show_as_displayed`'s, where a frame has
    a display matrix (nothing otherwise): players disagree on where it comes from and what it
    means. FFmpeg takes the frame's (an H.264 display orientation message included) and turns a
    scaled, sheared or odd-angled matrix to the nearest quarter turn; Chromium's <video> takes
    only the container's, and shows one that is not a quarter turn or mirror of unit entries as
    stored (or turned another way when only its entries' sizes match). An upright face stored
    under a half turn scaled by 2, or under frames' messages turning it, plays upright in
    Chromium and upside down in FFmpeg."""
    if matrix is None:
        return
    shown_turn = None if _mirrors(matrix) else _normalise_rotation(_rotation_of(matrix)) // 90
    for quarter_turns in range(4):
        if quarter_turns != shown_turn:
            yield np.ascontiguousarray(np.rot90(stored, k=quarter_turns))


def _turned(stored: np.ndarray, matrix: tuple[int, ...]) -> np.ndarray:
    quarter_turns = _normalise_rotation(_rotation_of(matrix)) // 90
    if not _mirrors(matrix):
        return np.rot90(stored, k=quarter_turns)
    if quarter_turns == 3:  # FFmpeg's transpose "cclock_flip" when matrix[3] > 0
        return stored.transpose(1, 0, 2) if matrix[3] > 0 else np.rot90(stored, k=-1)
    if quarter_turns == 1:  # "clock_flip" when matrix[3] < 0
        return np.rot90(stored, k=-1)[::-1] if matrix[3] < 0 else np.rot90(stored, k=1)
    if quarter_turns == 2:
        shown = stored[:, ::-1] if matrix[0] < 0 else stored
        return shown[::-1] if matrix[4] < 0 else shown
    return stored[::-1] if matrix[4] < 0 else stored


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
        # Read from the matrix as the frames are shown: PyAV's ``rotation`` of a matrix with no
        # scale (all zeros) is NaN as an integer, which would read as 270.
        matrix = _display_matrix(first)
        rotation = _normalise_rotation(_rotation_of(matrix)) if matrix is not None else 0
        mirrored = _mirrors(matrix)
        primaries = context.color_primaries or first.color_primaries
        trc = context.color_trc or first.color_trc
        colorspace = context.colorspace if context.colorspace not in (None, 2) else first.colorspace
        color_range = context.color_range or first.color_range
        field_order = _field_order(context, first)

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
            mirrored=mirrored,
            field_order=field_order,
        )
    finally:
        container.close()


# AVFieldOrder values of interlaced streams (0: unknown, 1: progressive).
_FIELD_ORDERS = {2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def _field_order(context: Any, first: av.VideoFrame) -> str | None:
    """``VideoInfo.field_order`` from the stream's declaration, else the first frame's flag."""
    declared = _FIELD_ORDERS.get(int(context.field_order or 0))
    return declared or ("interlaced" if first.interlaced_frame else None)


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


def first_frame_shown(
    video: BinaryIO, *, name: Path, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS
) -> np.ndarray:
    """The first frame of the open video file ``video`` (named ``name`` in errors) as a player
    shows it: RGB ``(H, W, 3)`` turned upright under its display matrix (a phone clip stored
    landscape with a rotation comes out portrait), as ``iter_video_frames(..., autorotate=True)``
    turns every frame. Read from the handle, so a caller that hashed its bytes reads those bytes.

    Raises :class:`MediaError` for a file with no video stream, a frame above ``max_pixels`` or
    nothing decodable.
    """
    try:
        container = av.open(video, mode="r")
    except _AV_ERRORS as exc:
        raise MediaError(name, f"cannot open media: {_describe(exc)}") from exc
    with container:
        stream = _video_stream(container, name)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise MediaError(name, f"video frame too large: {width}x{height} exceeds {max_pixels} pixels")
        first = _first_frame(container, stream, name)
        return _video_frame(first, index=0, pts_s=0.0, max_side=max_side, autorotate=True).rgb


# swscale's default YUV->RGB path (table driven) truncates: a decoded frame comes out 1.1-1.3
# grey levels darker than the stored picture (BT.709 limited 4:2:0, every channel). Accurate
# rounding with full chroma interpolation takes its exact path (within 0.2 of a level) at about
# 4 ms a 720p frame instead of 1, so only readers that write frames back ask for it (``exact``).
_EXACT = Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def _rgb_options(frame: av.VideoFrame, max_side: int | None, exact: bool = False) -> dict[str, Any]:
    """Reformat arguments that convert ``frame`` to RGB with the matrix its stream declares."""
    options: dict[str, Any] = {"format": "rgb24"}
    if exact:
        options["interpolation"] = Interpolation.BILINEAR | _EXACT
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
        options["interpolation"] = Interpolation.AREA | _EXACT if exact else "AREA"
    return options


def _video_frame(
    frame: av.VideoFrame, *, index: int, pts_s: float, max_side: int | None, autorotate: bool, exact: bool = False
) -> VideoFrame:
    rgb: np.ndarray = frame.to_ndarray(**_rgb_options(frame, max_side, exact))
    matrix = _display_matrix(frame)
    if not autorotate:
        return VideoFrame(index=index, pts_s=pts_s, rgb=rgb, display_matrix=matrix)
    return VideoFrame(index=index, pts_s=pts_s, rgb=show_as_displayed(rgb, matrix))


def iter_video_frames(
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    step: int = 1,
    max_side: int | None = None,
    autorotate: bool = False,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
    limits: DecodeLimits | None = None,
    interrupt: Interrupt | None = None,
    exact: bool = False,
    deinterlace: bool = False,
) -> Iterator[VideoFrame]:
    """Stream frames ``start, start + step, ...`` of ``path`` as :class:`VideoFrame`.

    Memory stays bounded (one decoded frame plus the decoder's reference frames). ``start``
    lets a resumed job skip finished frames: on a constant-frame-rate stream it seeks to the
    keyframe before ``start`` and decodes forward; otherwise it decodes and discards the frames
    before ``start`` (no RGB conversion). ``max_side`` downscales so ``max(H, W) <= max_side``;
    ``autorotate`` turns frames upright using the stream's display rotation. ``limits``
    (default ``DecodeLimits()``) bound what the container may declare and how many frames are
    decoded; ``interrupt`` is called between packets and stops the read by raising
    (``likeness.media.video.budget``). ``exact`` converts to RGB within 0.2 of a grey level
    (about 4x the conversion time) instead of 1.1-1.3 levels dark: for frames written back to a
    file (render, transcode), whose untouched pixels must keep the source's level.
    ``deinterlace`` turns each frame of an interlaced stream (``VideoInfo.field_order`` set) into
    one progressive picture with the same index and time (:class:`Deinterlacer`, bwdif), so a
    face drawn on it is drawn at one instant; a progressive stream's frames are untouched.

    Errors: :class:`MediaError` before the first frame for missing/empty/corrupt files,
    audio-only files (``"no video stream"``), frames above ``max_pixels`` and containers the
    limits refuse (too long, or too many frames for the file's size); more decoded frames than
    ``limits.max_frames`` raise it where they are reached. A file that breaks
    part-way (corrupt packets, or truncated so that frames the header promises are missing)
    yields every frame that decoded and *then* raises :class:`MediaError` whose reason names
    the frame index where decoding stopped; callers keep the frames they got and report it.
    """
    path = Path(path)
    if not isinstance(start, int) or start < 0:
        raise MediaError(path, f"start must be an integer >= 0, got {start!r}")
    if not isinstance(step, int) or step < 1:
        raise MediaError(path, f"step must be an integer >= 1, got {step!r}")
    _check_max_side(path, max_side)
    # Cheap checks now, so a missing or empty file fails at the call, not at the first next().
    _check_readable(path)
    return _iter_frames(
        path,
        start=start,
        step=step,
        max_side=max_side,
        autorotate=autorotate,
        max_pixels=max_pixels,
        allow_seek=True,
        limits=limits or DecodeLimits(),
        interrupt=interrupt,
        exact=exact,
        deinterlace=deinterlace,
    )


def _bounded_video_stream(
    container: av.container.InputContainer, path: Path, max_pixels: int, limits: DecodeLimits
) -> av.video.stream.VideoStream:
    """The video stream, refused before decoding when one frame would exceed ``max_pixels`` or
    the container declares more than ``limits`` allow (``container_refusal``)."""
    stream = _video_stream(container, path)
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > max_pixels:
        raise MediaError(path, f"video frame too large: {width}x{height} exceeds {max_pixels} pixels")
    duration_s = _seconds(stream.duration, stream.time_base)
    if duration_s is None and container.duration is not None:
        duration_s = container.duration / av.time_base
    declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
    rate = stream.average_rate or stream.guessed_rate
    if declared is None and duration_s is not None and rate:
        declared = int(math.ceil(duration_s * float(rate)))  # formats without a count (Matroska, MPEG-TS)
    refusal = container_refusal(
        declared_frames=declared, duration_s=duration_s, size_bytes=path.stat().st_size, limits=limits
    )
    if refusal is not None:
        raise MediaError(path, refusal)
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
    limits: DecodeLimits,
    interrupt: Interrupt | None,
    exact: bool,
    deinterlace: bool = False,
) -> Iterator[VideoFrame]:
    container = _open_input(path)
    try:
        stream = _bounded_video_stream(container, path, max_pixels, limits)
        stream.thread_type = "AUTO"
        # A full read decodes every frame it returns: its cost is the footage's, so only the
        # frame count is capped (formats without a declared count), not the time.
        meter = DecodeMeter(
            path, max_frames=limits.max_frames, max_decode_s=None, interrupt=interrupt, setting="video_max_frames"
        )
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
        deinterlacer: Deinterlacer | None = None
        undecided = deinterlace

        def wanted(index: int) -> bool:
            return index >= start and (index - start) % step == 0

        def converted(pictures: Iterator[tuple[av.VideoFrame, tuple[int, float]]]) -> Iterator[VideoFrame]:
            for picture, (index, pts_s) in pictures:
                if wanted(index):
                    yield _video_frame(
                        picture, index=index, pts_s=pts_s, max_side=max_side, autorotate=autorotate, exact=exact
                    )

        try:
            for packet in container.demux(stream):
                meter.packet()
                for frame in packet.decode():
                    meter.frame()
                    if next_index is None:
                        # After a seek, the first decoded frame's timestamp gives its index;
                        # from there on we count, which is what a full decode would number.
                        located = index_of(frame)
                        if located is None or located > start:
                            raise _SeekMissed()
                        next_index = located
                    if undecided:
                        deinterlacer, undecided = _deinterlacer_for(stream, frame), False
                    index = next_index
                    next_index += 1
                    last_index = index
                    pts_s = float(frame.time) if frame.time is not None else index / float(rate or 1)
                    last_pts_s = pts_s
                    # The frame before ``start`` still goes to the deinterlacer: it looks back one frame.
                    look_back = 1 if deinterlacer is not None else 0
                    if index + look_back < start or (deinterlacer is None and not wanted(index)):
                        continue
                    if frame.width * frame.height > max_pixels:
                        raise MediaError(path, f"video frame too large: {frame.width}x{frame.height}")
                    if deinterlacer is not None:
                        yield from converted(deinterlacer.push(frame, (index, pts_s)))
                        continue
                    yield _video_frame(
                        frame, index=index, pts_s=pts_s, max_side=max_side, autorotate=autorotate, exact=exact
                    )
            if deinterlacer is not None:
                yield from converted(deinterlacer.flush())
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
                limits=limits,
                interrupt=interrupt,
                exact=exact,
                deinterlace=deinterlace,
            )
            return
        except MediaError:
            raise
        except _AV_ERRORS as exc:
            if deinterlacer is not None:  # the frames it holds decoded: they are yielded before the error
                try:
                    yield from converted(deinterlacer.flush())
                except _AV_ERRORS:
                    pass
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


def _deinterlacer_for(stream: av.video.stream.VideoStream, first: av.VideoFrame) -> Deinterlacer | None:
    """A deinterlacer for an interlaced stream (None for a progressive one, or where this FFmpeg
    build has none: its frames are then yielded woven, as stored)."""
    field_order = _field_order(stream.codec_context, first)
    name = deinterlacer_available()
    return Deinterlacer(name, field_order) if field_order is not None and name is not None else None


class _SeekMissed(Exception):
    """Internal: timestamps after a seek did not identify the frame index."""


def _decoded(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, meter: DecodeMeter
) -> Iterator[av.VideoFrame]:
    """Every frame the decoder produces, each counted by ``meter`` (skipped frames are not
    produced; the interrupt is still called per packet)."""
    for packet in container.demux(stream):
        meter.packet()
        for frame in packet.decode():
            meter.frame()
            yield frame


def _looks_cfr(stream: av.video.stream.VideoStream) -> bool:
    average, base = stream.average_rate, stream.base_rate
    if not average or not base:
        return False
    return abs(float(average) - float(base)) <= 0.001 * float(base)
