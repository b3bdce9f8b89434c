"""Sparse, keyframe-aware sampling of a video (:func:`sample_video_frames`, :func:`sample_times`);
frames are bit-identical to a full decode."""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Iterator
from pathlib import Path

import av
import av.error

from likeness.errors import MediaError
from likeness.media.video.budget import DecodeLimits, DecodeMeter, Interrupt
from likeness.media.video.decode import (
    _AV_ERRORS,
    DEFAULT_MAX_VIDEO_PIXELS,
    VideoFrame,
    _bounded_video_stream,
    _check_max_side,
    _check_readable,
    _decoded,
    _describe,
    _open_input,
    _seconds,
    _video_frame,
    _video_stream,
)

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


def _keyframe_times(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    meter: DecodeMeter,
    limits: DecodeLimits,
) -> list[float] | None:
    """Presentation times (s, on the stream clock) of the keyframes, from a demux-only pass.

    Demuxing reads packets without decoding them, which costs a small fraction of decoding.
    None when a keyframe has no timestamp (then seeking cannot be planned). The pass counts
    against ``meter``'s time and interrupt, and more than ``limits.max_frames`` packets (a
    container that declared no frame count) are refused.
    """
    times: list[float] = []
    time_base = stream.time_base
    packets = 0
    try:
        for packet in container.demux(stream):
            meter.packet()
            packets += 1
            if packets > limits.max_frames:
                raise MediaError(meter.path, f"video holds more than {limits.max_frames:,} frames (video_max_frames)")
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
    limits: DecodeLimits | None = None,
    interrupt: Interrupt | None = None,
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

    Budget (``limits``, default ``DecodeLimits()``): the container checks of
    :func:`iter_video_frames`, then every frame the decoder produces on the way to the targets
    (reference frames included) counts against ``limits.sample_max_frames`` and the time spent
    decoding (not the time the caller holds a frame) against ``limits.sample_max_decode_s``;
    ``interrupt`` is called between packets and stops the sampling by raising.

    Errors are those of :func:`iter_video_frames`: :class:`MediaError` before the first frame
    for missing, empty, corrupt, audio-only or too-large input; damage part-way, or a spent
    budget, yields the frames decoded before it and then raises :class:`MediaError` naming the
    time where decoding stopped (or the budget).

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> from likeness.media.synthetic import grace_hopper, write_clip
        >>> clip = write_clip(Path(tempfile.mkdtemp()) / "clip.mp4", grace_hopper(), seconds=4.0, size=(160, 90))
        >>> [round(f.pts_s, 2) for f in sample_video_frames(clip)]
        [0.0, 1.04, 2.0, 3.0]
    """
    path = Path(path)
    if not isinstance(every_s, (int, float)) or not math.isfinite(every_s) or every_s <= 0:
        raise MediaError(path, f"every_s must be a positive number of seconds, got {every_s!r}")
    if not isinstance(max_frames, int) or max_frames < 1:
        raise MediaError(path, f"max_frames must be an integer >= 1, got {max_frames!r}")
    _check_max_side(path, max_side)
    _check_readable(path)
    return _sample_frames(
        path,
        every_s=float(every_s),
        max_frames=max_frames,
        keyframes_only=bool(keyframes_only),
        max_side=max_side,
        autorotate=autorotate,
        max_pixels=max_pixels,
        limits=limits or DecodeLimits(),
        interrupt=interrupt,
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
    limits: DecodeLimits,
    interrupt: Interrupt | None,
) -> Iterator[VideoFrame]:
    meter = DecodeMeter(
        path,
        max_frames=limits.sample_max_frames,
        max_decode_s=limits.sample_max_decode_s,
        interrupt=interrupt,
        setting="video_sample_max_frames",
    )
    container = _open_input(path)
    try:
        stream = _bounded_video_stream(container, path, max_pixels, limits)
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        frame_s = 1.0 / float(rate) if rate else 0.04
        origin_s = float(stream.start_time * time_base) if stream.start_time is not None and time_base else 0.0
        duration_s = _seconds(stream.duration, time_base)
        if duration_s is None and container.duration is not None:
            duration_s = container.duration / av.time_base
        duration_s = float(duration_s or 0.0)
        targets = [origin_s + t for t in sample_times(duration_s, every_s=every_s, max_frames=max_frames)]
        keyframes = _keyframe_times(container, stream, meter, limits) if time_base is not None else None
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
                frames = _decoded(container, stream, meter)
            elif keyframe is not None and time_base is not None and keyframe > decoded_until + tolerance_s:
                # Everything between what was decoded and the keyframe before the target is
                # skipped: a seek (decoder flush) costs far less than decoding it.
                try:
                    container.seek(
                        int(round(keyframe / float(time_base))), stream=stream, backward=True, any_frame=False
                    )
                    frames = _decoded(container, stream, meter)
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
            sampled = _video_frame(chosen, index=yielded, pts_s=decoded_until, max_side=max_side, autorotate=autorotate)
            meter.pause()  # the caller's time with the frame is not decoding
            yield sampled
            meter.resume()
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
