"""Animated images (GIF, animated WebP, APNG) read as short clips: a timeline, then sampled frames.

A reaction GIF or an animated sticker is footage, not a still: verification samples it like a
video (about one frame per second, at most 16, spread over the whole animation). Two steps:

* :func:`animation_timeline` walks the container's structure without decoding a pixel (GIF
  blocks, PNG chunks, RIFF chunks) and returns the canvas size and every frame's delay. It
  refuses, with a :class:`MediaError`, a canvas beyond ``max_pixels`` and more than
  ``max_frames`` frames, before any decoding: a hostile file cannot make the reader loop over
  millions of frames. A file that is not animated (one frame, or no animation chunk) gives
  ``None``.
* :func:`sample_animation_frames` decodes frames in order (GIF, WebP and APNG frames build on
  the ones before, so there is no seeking) and yields the sampled ones as
  :class:`likeness.media.VideoFrame`. It stops at the last sampled frame, and never decodes more
  than ``max_decode_pixels`` in all (frames x canvas): samples beyond that are dropped and a
  :class:`MediaError` says so after the frames before it were yielded, as a clip damaged part-way
  does. A frame that does not decode (truncated file, corrupt data) ends the animation the same
  way.

Delays follow what browsers show: a GIF, WebP or APNG delay under 20 ms (often 0) plays as
100 ms. Taken as written, an APNG of 0 ms frames would be a 0-second animation whose last frame
alone is sampled, however long it plays on screen.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> gif = Path(tempfile.mkdtemp()) / "reaction.gif"
    >>> frames = [Image.new("RGB", (64, 48), (60 * k, 90, 120)) for k in range(3)]
    >>> frames[0].save(gif, save_all=True, append_images=frames[1:], duration=1000, loop=0)
    >>> timeline = animation_timeline(gif)
    >>> timeline.container, timeline.width, timeline.height, timeline.delays_s
    ('gif', 64, 48, (1.0, 1.0, 1.0))
    >>> [round(f.pts_s, 1) for f in sample_animation_frames(gif)]
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from likeness.errors import MediaError
from likeness.media.images import _opened, _to_rgb8
from likeness.media.video import VideoFrame, sample_times

__all__ = [
    "MAX_ANIMATION_DECODE_PIXELS",
    "MAX_ANIMATION_FRAMES",
    "MAX_ANIMATION_PIXELS",
    "AnimationTimeline",
    "animation_timeline",
    "sample_animation_frames",
]

#: More frames than this is not an animation anyone watches (at 50 fps, over 3 minutes): refused.
MAX_ANIMATION_FRAMES = 10_000
#: Canvas pixels per frame (4K UHD is 8.3 M).
MAX_ANIMATION_PIXELS = 16_000_000
#: Pixels decoded per file at most (frames x canvas): about 1,100 frames of 480x270, a few seconds
#: of decoding; samples past it are dropped with a MediaError after the ones before.
MAX_ANIMATION_DECODE_PIXELS = 150_000_000
#: Delays below this play as ``DEFAULT_DELAY_S`` in browsers (GIF and WebP).
_MIN_DELAY_S = 0.02
DEFAULT_DELAY_S = 0.1
#: Pillow's bound on an acTL frame count; past it the file is read as a still.
_MAX_DECLARED_APNG_FRAMES = 0x80000000
#: Files bigger than this are not walked (the verifier refuses larger images before).
_MAX_SCAN_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class AnimationTimeline:
    """The frames of an animation as its container declares them.

    Attributes:
        container: ``"gif"``, ``"png"`` (APNG) or ``"webp"``.
        width, height: canvas size in pixels.
        delays_s: display time of each frame, seconds (browser rules applied).
        truncated: the structure ended before its trailer (frames listed are those complete).
        decoded_width, decoded_height: the canvas the decoder allocates: a GIF frame may reach
            past the declared canvas, and Pillow then grows the canvas to hold it (browsers
            clip the frame instead; so do the sampled frames). 0 means the declared size.
    """

    container: str
    width: int
    height: int
    delays_s: tuple[float, ...]
    truncated: bool = False
    decoded_width: int = 0
    decoded_height: int = 0

    @property
    def decoded_pixels(self) -> int:
        """Pixels of one decoded frame, the declared canvas or the grown one."""
        return max(self.width, self.decoded_width) * max(self.height, self.decoded_height)

    @property
    def frames(self) -> int:
        return len(self.delays_s)

    @property
    def duration_s(self) -> float:
        return float(sum(self.delays_s))

    def starts_s(self) -> list[float]:
        """Start time of every frame, seconds from the first."""
        starts, t = [], 0.0
        for delay in self.delays_s:
            starts.append(t)
            t += delay
        return starts


def _browser_delay(seconds: float) -> float:
    return DEFAULT_DELAY_S if seconds < _MIN_DELAY_S else seconds


class _Structure:
    """Bounded reader over the file's bytes; running past the end marks the walk truncated."""

    def __init__(self, data: bytes, source: Path, max_frames: int) -> None:
        self.data = data
        self.source = source
        self.max_frames = max_frames
        self.delays: list[float] = []
        #: Right and bottom edge of the frames that reach past the declared canvas.
        self.extent = (0, 0)
        #: An APNG's default image is not one of its frames (no frame control before it).
        self.hidden_default = False

    def extend_canvas(self, right: int, bottom: int) -> None:
        self.extent = (max(self.extent[0], right), max(self.extent[1], bottom))

    def need(self, start: int, count: int) -> bytes:
        if start + count > len(self.data):
            raise EOFError
        return self.data[start : start + count]

    def add_frame(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        if len(self.delays) > self.max_frames:
            raise MediaError(self.source, f"animation has more than {self.max_frames} frames; refused before decoding")


def _walk_gif(walk: _Structure) -> tuple[int, int, bool]:
    width, height, packed = struct.unpack("<HHB", walk.need(6, 5))
    pos = 13
    if packed & 0x80:
        pos += 3 * (2 ** ((packed & 0x07) + 1))
    delay = DEFAULT_DELAY_S
    try:
        while True:
            block = walk.need(pos, 1)[0]
            pos += 1
            if block == 0x3B:  # trailer
                return width, height, False
            if block == 0x21:  # extension: label, then data sub-blocks
                label = walk.need(pos, 1)[0]
                pos += 1
                if label == 0xF9 and walk.need(pos, 1)[0] >= 4:  # graphic control: the delay
                    delay = _browser_delay(struct.unpack("<H", walk.need(pos + 2, 2))[0] / 100.0)
                pos = _skip_sub_blocks(walk, pos)
            elif block == 0x2C:  # image descriptor: one frame
                left, top, frame_width, frame_height, packed = struct.unpack("<HHHHB", walk.need(pos, 9))
                walk.extend_canvas(left + frame_width, top + frame_height)
                pos += 9
                if packed & 0x80:
                    pos += 3 * (2 ** ((packed & 0x07) + 1))
                pos = _skip_sub_blocks(walk, pos + 1)  # after the LZW minimum code size
                walk.add_frame(delay)
                delay = DEFAULT_DELAY_S
            elif block == 0x00 and walk.delays:
                continue  # stray terminator some encoders write
            else:
                return width, height, True  # not a GIF block: the rest is damage
    except EOFError:
        return width, height, True


def _skip_sub_blocks(walk: _Structure, pos: int) -> int:
    data = walk.data
    while True:
        if pos >= len(data):
            raise EOFError
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size


def _walk_png(walk: _Structure) -> tuple[int, int, bool] | None:
    pos, width, height, animated, controls = 8, 0, 0, False, 0
    try:
        while True:
            length, kind = struct.unpack(">I4s", walk.need(pos, 8))
            body = pos + 8
            if kind == b"IHDR":
                width, height = struct.unpack(">II", walk.need(body, 8))
            elif kind == b"acTL":
                # The frames are the fcTL chunks that follow; the declared count only decides, as
                # in browsers and Pillow, that a second acTL or a count of 0 (or past 2^31) is no
                # animation at all: the PNG's image is shown as a still.
                declared = struct.unpack(">I", walk.need(body, 4))[0] if length >= 8 else 0
                controls += 1
                animated = controls == 1 and 0 < declared <= _MAX_DECLARED_APNG_FRAMES
            elif kind == b"fcTL":
                numerator, denominator = struct.unpack(">HH", walk.need(body + 20, 4))
                walk.add_frame(_browser_delay(numerator / (denominator or 100)))
            elif kind == b"IDAT" and animated and not walk.delays:
                walk.hidden_default = True  # shown only by viewers that do not animate PNG
            elif kind == b"IEND":
                return (width, height, False) if animated else None
            walk.need(body, length + 4)  # the chunk and its CRC are all there
            pos = body + length + 4
    except EOFError:
        return (width, height, True) if animated else None


def _walk_webp(walk: _Structure) -> tuple[int, int, bool] | None:
    riff_end = min(len(walk.data), 8 + struct.unpack("<I", walk.need(4, 4))[0])
    pos, width, height, animated = 12, 0, 0, False
    try:
        while pos + 8 <= riff_end:
            kind, length = struct.unpack("<4sI", walk.need(pos, 8))
            body = pos + 8
            if kind == b"VP8X":
                flags = walk.need(body, 1)[0]
                animated = bool(flags & 0x02)
                raw = walk.need(body + 4, 6)
                width = 1 + int.from_bytes(raw[:3], "little")
                height = 1 + int.from_bytes(raw[3:], "little")
            elif kind == b"ANMF":
                duration = int.from_bytes(walk.need(body + 12, 3), "little") / 1000.0
                walk.add_frame(_browser_delay(duration))
            walk.need(body, length)
            pos = body + length + (length & 1)
        return (width, height, pos < riff_end) if animated else None
    except EOFError:
        return (width, height, True) if animated else None


def animation_timeline(
    path: str | os.PathLike[str],
    *,
    max_frames: int = MAX_ANIMATION_FRAMES,
    max_pixels: int = MAX_ANIMATION_PIXELS,
) -> AnimationTimeline | None:
    """The frames of an animated GIF, WebP or PNG, without decoding; ``None`` for a still.

    Raises :class:`MediaError` naming ``path`` for a file that cannot be read, a canvas over
    ``max_pixels`` (or of zero size) and more than ``max_frames`` frames.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_SCAN_BYTES:
            raise MediaError(path, f"animated image too large: {size} bytes > {_MAX_SCAN_BYTES}")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise MediaError(path, "file not found") from exc
    except OSError as exc:
        raise MediaError(path, exc.strerror or type(exc).__name__) from exc
    walk = _Structure(data, path, max_frames)
    found: tuple[int, int, bool] | None
    try:
        if data[:6] in (b"GIF87a", b"GIF89a"):
            container, found = "gif", _walk_gif(walk)
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            container, found = "png", _walk_png(walk)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            container, found = "webp", _walk_webp(walk)
        else:
            return None
    except EOFError:
        raise MediaError(path, "truncated image header") from None
    # One frame after a hidden default image is still read as an animation: a still reader
    # would show the default image, which browsers never do.
    if found is None or len(walk.delays) < (1 if walk.hidden_default else 2):
        return None
    width, height, truncated = found
    if width < 1 or height < 1:
        raise MediaError(path, f"invalid animation canvas {width}x{height}")
    if width * height > max_pixels:
        raise MediaError(
            path,
            f"animation too large: {width}x{height} = {width * height} pixels per frame "
            f"exceeds the limit of {max_pixels}",
        )
    timeline = AnimationTimeline(
        container,
        width,
        height,
        tuple(walk.delays),
        truncated,
        decoded_width=walk.extent[0],
        decoded_height=walk.extent[1],
    )
    if timeline.decoded_pixels > max_pixels:
        # A few bytes of frame descriptor would otherwise make the decoder allocate gigabytes.
        raise MediaError(
            path,
            f"animation too large: a frame reaches {walk.extent[0]}x{walk.extent[1]} on a {width}x{height} "
            f"canvas, {timeline.decoded_pixels} pixels per decoded frame exceeds the limit of {max_pixels}",
        )
    return timeline


def sampled_indices(timeline: AnimationTimeline, *, every_s: float, max_frames: int) -> list[int]:
    """Frame indices for :func:`likeness.media.sample_times` targets: per target the frame on
    screen at that time, each frame at most once, in order.

    >>> t = AnimationTimeline("gif", 8, 8, (0.5,) * 10)   # 5 s, 10 frames
    >>> sampled_indices(t, every_s=1.0, max_frames=16)
    [0, 2, 4, 6, 8]
    """
    starts = timeline.starts_s()
    chosen: list[int] = []
    for target in sample_times(timeline.duration_s, every_s=every_s, max_frames=max_frames):
        index = max(0, bisect.bisect_right(starts, target + 1e-9) - 1)
        if not chosen or index > chosen[-1]:
            chosen.append(index)
    return chosen


def sample_animation_frames(
    path: str | os.PathLike[str],
    *,
    every_s: float = 1.0,
    max_frames: int = 16,
    timeline: AnimationTimeline | None = None,
    max_decode_pixels: int = MAX_ANIMATION_DECODE_PIXELS,
) -> Iterator[VideoFrame]:
    """Sampled frames of an animated image as :class:`VideoFrame` (``rgb`` the composited
    canvas, transparency over white; ``pts_s`` the frame's start time; ``index`` counts yielded
    frames).

    The timeline (``timeline`` or :func:`animation_timeline`) is read before this returns, so a
    refused file raises here; decoding errors are raised from the iterator after the frames
    decoded before them.
    """
    path = Path(path)
    if timeline is None:
        timeline = animation_timeline(path)
        if timeline is None:
            raise MediaError(path, "not an animated image")
    wanted = sampled_indices(timeline, every_s=every_s, max_frames=max_frames)
    affordable = max(1, max_decode_pixels // timeline.decoded_pixels)
    within = [i for i in wanted if i < affordable]
    return _decode_frames(path, timeline, within, dropped=len(wanted) - len(within), affordable=affordable)


def _check_decoded_size(size: tuple[int, int], timeline: AnimationTimeline, path: Path) -> None:
    """Refuse, before the frame is decoded, a canvas the decoder grew past what the walk found
    (the two parsers disagree on a crafted file)."""
    if size[0] * size[1] > timeline.decoded_pixels:
        raise MediaError(
            path,
            f"animation frame grows the canvas to {size[0]}x{size[1]}, past the "
            f"{timeline.decoded_pixels} pixels its structure declares; refused before decoding it",
        )


def _decode_frames(
    path: Path, timeline: AnimationTimeline, wanted: list[int], *, dropped: int, affordable: int
) -> Iterator[VideoFrame]:
    from PIL import Image, PngImagePlugin

    starts = timeline.starts_s()
    canvas = (0, 0, timeline.width, timeline.height)
    position = -1
    try:
        with open(path, "rb") as stream, _opened(stream) as image:
            # An APNG's default image that is not part of the animation is Pillow's frame 0;
            # browsers never show it, and the timeline lists the animation's frames only.
            hidden = 1 if getattr(image, "default_image", False) else 0
            if isinstance(image, PngImagePlugin.PngImageFile):
                # Pillow seeks no further than acTL's count, which a file may set below (or
                # above) its fcTL chunks; the frames held, as walked and bounded, are the clip.
                image.n_frames = hidden + timeline.frames
                image.is_animated = image.n_frames > 1
            for number, index in enumerate(wanted):
                # Frames are composited on the ones before: step through every frame up to it.
                while position < index:
                    position += 1
                    image.seek(position + hidden)  # loads the frame before, then reads this one's descriptor
                    _check_decoded_size(image.size, timeline, path)
                image.load()
                shown = image if image.size == (timeline.width, timeline.height) else image.crop(canvas)
                rgb = _to_rgb8(shown, source=path)
                if rgb.shape[:2] != (timeline.height, timeline.width):
                    raise ValueError(
                        f"frame is {rgb.shape[1]}x{rgb.shape[0]}, canvas {timeline.width}x{timeline.height}"
                    )
                yield VideoFrame(index=number, pts_s=starts[index], rgb=rgb)
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(path, f"image too large (decompression bomb): {exc}") from exc
    except MemoryError as exc:
        raise MediaError(path, "animation frame too large to decode in available memory") from exc
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise assorted types on hostile input
        reason = str(exc) or type(exc).__name__
        if position <= 0:
            raise MediaError(path, f"corrupt animation: no frame decodes ({reason})") from exc
        raise MediaError(
            path,
            f"animation decoding stopped at frame {position} "
            f"({starts[min(position, len(starts) - 1)]:.2f} s): {reason}",
        ) from exc
    if dropped:
        raise MediaError(
            path,
            f"animation longer than the decoding budget: frames after {affordable} "
            f"({starts[min(affordable, len(starts) - 1)]:.2f} s) not analysed "
            f"({dropped} samples dropped)",
        )
    if timeline.truncated:
        raise MediaError(path, f"truncated animation: its structure ends after frame {timeline.frames - 1}")
