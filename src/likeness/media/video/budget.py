"""How much decoding one video file may cost (:class:`DecodeLimits`), checked before the first
frame and inside the decode loops, and the caller's hook to stop a decode (``interrupt``).

A crafted MP4 of 6 MB can hold 200,000 frames (one keyframe, then copies of a 25-byte P-frame):
a frame count and a duration that look like a film, and every frame a reference frame, so even
sparse sampling decodes them all (about 1,300 a second at 1080p). Two guards, both here:

* **Before decoding** (:func:`container_refusal`): a declared duration or frame count beyond the
  limits, or more frames than the file's bytes can hold as real footage, is refused.
* **While decoding** (:class:`DecodeMeter`): every decoded frame (reference frames included, not
  only the sampled ones) counts against the file's frame budget, the time spent decoding against
  its time budget, and the caller's ``interrupt`` is called between packets, so a cancelled job
  or a request past its deadline stops within a frame.

``interrupt`` is a callable taking nothing: it returns to let decoding go on and raises (the
caller's own exception, e.g. a job's cancellation) to stop it; the exception reaches the caller
unchanged. It runs on the thread that decodes (often a prefetch thread), so it must be cheap
and thread-safe.

>>> container_refusal(declared_frames=36_000, duration_s=600.0, size_bytes=400_000_000, limits=DecodeLimits())
>>> print(container_refusal(
...     declared_frames=200_000, duration_s=8_000.0, size_bytes=6_000_000, limits=DecodeLimits()))
video declares 200,000 frames in 6,000,000 bytes (30 bytes a frame): too many frames for its
size to be footage (beyond 36,000 frames at least 48 bytes a frame)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likeness.errors import MediaError

#: The caller's stop hook: returns to go on, raises to stop (see the module docstring).
Interrupt = Callable[[], None]


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Per-file decoding limits; the defaults are ``Settings``'s (``DecodeLimits.of(settings)``).

    ``max_duration_s`` and ``max_frames`` bound what a container may declare (and ``max_frames``
    also what a full read may decode, for formats that declare no count). Beyond
    ``free_frames`` (10 minutes at 60 fps, accepted whatever their size), a file must hold at
    least ``min_frame_bytes`` bytes per declared frame: real footage has keyframes every few
    seconds, which alone are hundreds of bytes a frame. ``sample_max_frames`` and
    ``sample_max_decode_s`` bound what sparse sampling decodes: a 10-minute 60 fps clip with a
    single keyframe needs 36,000 decoded frames, an ordinary one (a keyframe every few seconds)
    a few hundred.
    """

    max_duration_s: float = 4 * 3600.0
    max_frames: int = 4 * 3600 * 60
    min_frame_bytes: int = 48
    free_frames: int = 10 * 60 * 60
    sample_max_frames: int = 40_000
    sample_max_decode_s: float = 180.0

    @classmethod
    def of(cls, settings: Any) -> DecodeLimits:
        """The limits a ``likeness.config.Settings`` sets (``video_*`` fields)."""
        return cls(
            max_duration_s=float(settings.video_max_duration_s),
            max_frames=int(settings.video_max_frames),
            min_frame_bytes=int(settings.video_min_frame_bytes),
            sample_max_frames=int(settings.video_sample_max_frames),
            sample_max_decode_s=float(settings.video_sample_max_decode_s),
        )


def container_refusal(
    *, declared_frames: int | None, duration_s: float | None, size_bytes: int, limits: DecodeLimits
) -> str | None:
    """Why a video whose header declares this many frames and seconds in a file of
    ``size_bytes`` is refused before decoding, or None when it is not."""
    if duration_s is not None and math.isfinite(duration_s) and duration_s > limits.max_duration_s:
        return (
            f"video too long: it declares {duration_s:,.0f} s, the limit is {limits.max_duration_s:,.0f} s "
            "(video_max_duration_s)"
        )
    if declared_frames is None:
        return None
    if declared_frames > limits.max_frames:
        return f"video declares {declared_frames:,} frames, the limit is {limits.max_frames:,} (video_max_frames)"
    if declared_frames > limits.free_frames and size_bytes < declared_frames * limits.min_frame_bytes:
        return (
            f"video declares {declared_frames:,} frames in {size_bytes:,} bytes "
            f"({size_bytes / declared_frames:.0f} bytes a frame): too many frames for its size to be footage "
            f"(beyond {limits.free_frames:,} frames at least {limits.min_frame_bytes} bytes a frame)"
        )
    return None


#: Sound the encoder may re-encode from any file, whatever its size: ten minutes of one 7.1 track
#: (channel-seconds; at 96 kHz about 10 s of AAC encoding on one core).
FREE_SOUND_CHANNEL_S = 10 * 60 * 8
#: Beyond it, bytes the file must hold per channel-second of sound to re-encode. Real sound is
#: far above (AAC and Opus at their lowest rates hundreds, PCM thousands); a stretch the source
#: skips is filled with silence, which costs the same to encode but is in no byte of the file.
MIN_SOUND_BYTES_PER_CHANNEL_S = 64


def sound_refusal(*, channel_seconds: float, size_bytes: int) -> str | None:
    """Why re-encoding ``channel_seconds`` of sound (seconds times channels, summed over
    tracks, gaps filled with silence included) from a file of ``size_bytes`` is refused, or None.

    >>> sound_refusal(channel_seconds=4_800, size_bytes=1_000)
    >>> print(sound_refusal(channel_seconds=179_200, size_bytes=527_981))
    sound to encode is 179,200 channel-seconds from 527,981 bytes (3 bytes a channel-second): more
    than its size holds as real sound (beyond 4,800 channel-seconds at least 64 bytes each)
    """
    if channel_seconds <= FREE_SOUND_CHANNEL_S or size_bytes >= channel_seconds * MIN_SOUND_BYTES_PER_CHANNEL_S:
        return None
    return (
        f"sound to encode is {channel_seconds:,.0f} channel-seconds from {size_bytes:,} bytes "
        f"({size_bytes / channel_seconds:.0f} bytes a channel-second): more than its size holds as real sound "
        f"(beyond {FREE_SOUND_CHANNEL_S:,} channel-seconds at least {MIN_SOUND_BYTES_PER_CHANNEL_S} bytes each)"
    )


class DecodeMeter:
    """One file's decoding, counted against its budget: call :meth:`packet` per demuxed packet
    and :meth:`frame` per decoded frame; :meth:`pause` before handing a frame to the consumer and
    :meth:`resume` after (the consumer's time is not decoding). Raises :class:`MediaError` when a budget is spent; whatever
    ``interrupt`` raises passes through."""

    def __init__(
        self,
        path: Path,
        *,
        max_frames: int,
        max_decode_s: float | None,
        interrupt: Interrupt | None,
        setting: str,
    ) -> None:
        self.path = path
        self.max_frames = max_frames
        self.max_decode_s = max_decode_s
        self.interrupt = interrupt
        self.setting = setting  # named in the reason, so an operator knows what to raise
        self.frames = 0
        self._spent_s = 0.0
        self._since: float | None = time.monotonic()

    @property
    def decode_s(self) -> float:
        """Seconds spent decoding so far (time the consumer held a frame excluded)."""
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return self._spent_s + running

    def packet(self) -> None:
        if self.interrupt is not None:
            self.interrupt()
        if self.max_decode_s is not None and self.decode_s > self.max_decode_s:
            raise MediaError(
                self.path,
                f"decoding budget spent: {self.decode_s:.0f} s decoding {self.frames:,} frames, "
                f"the limit for one file is {self.max_decode_s:g} s (video_sample_max_decode_s)",
            )

    def frame(self) -> None:
        self.frames += 1
        if self.frames > self.max_frames:
            raise MediaError(
                self.path,
                f"decoding budget spent: more than {self.max_frames:,} frames decoded, "
                f"the limit for one file ({self.setting})",
            )
        self.packet()

    def pause(self) -> None:
        if self._since is not None:
            self._spent_s += time.monotonic() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = time.monotonic()
