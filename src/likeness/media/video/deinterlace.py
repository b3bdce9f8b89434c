"""Interlaced frames to progressive pictures with FFmpeg's bwdif (:class:`Deinterlacer`).

A 1080i frame holds two fields, 1/50 s apart at 25 fps. Swapping a face on the woven frame puts
one instant in both fields while the plate around it combs, so the render deinterlaces first:
one progressive picture per frame (bwdif ``mode=send_frame``), each field's missing lines
interpolated from its own field and its neighbours in time, so still areas keep their full
resolution and moving ones lose their combing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import av.error
import av.filter

#: The deinterlacers tried, best first: bwdif (yadif's interpolation with w3fdif's filters)
#: keeps fine detail better than yadif and cost about the same here (docs/render.md).
DEINTERLACERS = ("bwdif", "yadif")

# How FFmpeg's field orders (``VideoInfo.field_order``) read as the field shown first: "tb" is
# top coded first, bottom shown first. "interlaced" (order not said): each frame's own flag.
_PARITY = {"tt": "tff", "bt": "tff", "bb": "bff", "tb": "bff"}


def deinterlacer_available() -> str | None:
    """The first of :data:`DEINTERLACERS` this FFmpeg build has, or None."""
    return next((name for name in DEINTERLACERS if name in av.filter.filters_available), None)


class Deinterlacer:
    """One progressive picture per interlaced frame, in order, with the frame's own properties
    (colour tags, display matrix); each output comes one frame late (the filter looks ahead).

    ``push`` takes a decoded frame with a tag (its index and time) and yields the pictures that
    are ready with their tags; ``flush`` yields the rest at the end of the stream. A change of
    size or pixel format mid-stream flushes the graph and starts another.
    """

    def __init__(self, name: str, field_order: str | None) -> None:
        self.name = name
        self.parity = _PARITY.get(field_order or "", "auto")
        self._graph: Any = None
        self._shape: tuple[int, int, str] | None = None
        self._tags: deque[Any] = deque()

    def push(self, frame: av.VideoFrame, tag: Any) -> Iterator[tuple[av.VideoFrame, Any]]:
        shape = (frame.width, frame.height, frame.format.name)
        if shape != self._shape:
            yield from self.flush()
            self._graph, self._shape = self._build(frame), shape
        self._tags.append(tag)
        self._graph.push(frame)
        yield from self._ready()

    def flush(self) -> Iterator[tuple[av.VideoFrame, Any]]:
        if self._graph is not None:
            self._graph.push(None)
            yield from self._ready()
        self._graph, self._shape = None, None

    def _build(self, frame: av.VideoFrame) -> Any:
        graph = av.filter.Graph()
        source = graph.add_buffer(
            width=frame.width,
            height=frame.height,
            format=frame.format,
            time_base=frame.time_base or Fraction(1, 90_000),
        )
        # deint=all: the stream says it is interlaced, and frames of some codecs carry no flag.
        interpolate = graph.add(self.name, f"mode=send_frame:parity={self.parity}:deint=all")
        sink = graph.add("buffersink")
        source.link_to(interpolate)
        interpolate.link_to(sink)
        graph.configure()
        return graph

    def _ready(self) -> Iterator[tuple[av.VideoFrame, Any]]:
        while self._tags:
            try:
                picture = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            yield picture, self._tags.popleft()
